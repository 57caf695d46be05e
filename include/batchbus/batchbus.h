// batchbus/batchbus.h — the whole public API in one include.
#ifndef BATCHBUS_BATCHBUS_H_
#define BATCHBUS_BATCHBUS_H_

#include "batchbus/config.h"
#include "batchbus/job.h"
#include "batchbus/processor.h"
#include "batchbus/submitter.h"

#endif  // BATCHBUS_BATCHBUS_H_
