// batchbus/metrics.h — a submitter's or a processor's metrics as Prometheus
// text (exposition format 0.0.4), for an application's own /metrics route.
// Config::metrics_port serves the same text from the library instead.
//
// Every Stats counter is a `batchbus_submitter_*_total` or
// `batchbus_processor_*_total` counter; the in-flight figures, ready jobs
// and the pacing rate are gauges; round trips (submitter, per priority) and
// handler times (processor, per group) are histograms in seconds.
// docs/operations.md lists every name. Submitter samples carry the label
// `instance` (Submitter::instance_id()), processor samples `processor`.
//
// Thread-safety: safe from any thread, while jobs flow.
#ifndef BATCHBUS_METRICS_H_
#define BATCHBUS_METRICS_H_

#include <string>

#include "batchbus/processor.h"
#include "batchbus/submitter.h"

namespace batchbus {

// Appends the text to `out`.
void WriteMetrics(const Submitter& submitter, std::string& out);
void WriteMetrics(const Processor& processor, std::string& out);

// Both in one exposition (each metric family once): for an application
// that runs a submitter and a processor and serves one /metrics.
void WriteMetrics(const Submitter& submitter, const Processor& processor,
                  std::string& out);

}  // namespace batchbus

#endif  // BATCHBUS_METRICS_H_
