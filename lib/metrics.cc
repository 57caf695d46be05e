#include "batchbus/metrics.h"

#include "metrics_access.h"

namespace batchbus {

void WriteMetrics(const Submitter& submitter, std::string& out) {
  MetricsWriter w;
  MetricsAccess::Collect(submitter, w);
  w.Render(out);
}

void WriteMetrics(const Processor& processor, std::string& out) {
  MetricsWriter w;
  MetricsAccess::Collect(processor, w);
  w.Render(out);
}

void WriteMetrics(const Submitter& submitter, const Processor& processor,
                  std::string& out) {
  MetricsWriter w;
  MetricsAccess::Collect(submitter, w);
  MetricsAccess::Collect(processor, w);
  w.Render(out);
}

}  // namespace batchbus
