// Prometheus text exposition (format 0.0.4): collects samples by metric
// family, from any number of submitters and processors, and renders each
// family once, with its HELP and TYPE lines, however many sources added to
// it.
//
// Threads: not thread-safe; one writer per scrape.
#ifndef BATCHBUS_LIB_METRICS_WRITER_H_
#define BATCHBUS_LIB_METRICS_WRITER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "histogram.h"

namespace batchbus {

class MetricsWriter {
 public:
  using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

  // `name` without the _total suffix, which the writer adds.
  void Counter(std::string_view name, std::string_view help,
               const Labels& labels, uint64_t value);
  void Gauge(std::string_view name, std::string_view help,
             const Labels& labels, double value);
  // `name` in seconds: _bucket, _sum and _count samples.
  void Histogram(std::string_view name, std::string_view help,
                 const Labels& labels, const Histogram::Snapshot& h);

  // Appends every family, in the order each was first added.
  void Render(std::string& out) const;

 private:
  struct Family {
    std::string name;
    std::string_view type;
    std::string help;
    std::string samples;
  };
  Family& FamilyOf(std::string_view name, std::string_view type,
                   std::string_view help);

  std::vector<Family> families_;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_METRICS_WRITER_H_
