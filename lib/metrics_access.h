// What batchbus/metrics.h reads of a Submitter or a Processor: each adds
// its samples to a MetricsWriter (defined next to the Impl it reads).
#ifndef BATCHBUS_LIB_METRICS_ACCESS_H_
#define BATCHBUS_LIB_METRICS_ACCESS_H_

#include "batchbus/processor.h"
#include "batchbus/submitter.h"
#include "metrics_writer.h"

namespace batchbus {

class MetricsAccess {
 public:
  static void Collect(const Submitter& submitter, MetricsWriter& w);  // submitter.cc
  static void Collect(const Processor& processor, MetricsWriter& w);  // processor.cc
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_METRICS_ACCESS_H_
