#include "metrics_writer.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "strcat.h"

namespace batchbus {
namespace {

// Label values escape backslash, double quote and newline.
void AppendEscaped(std::string& out, std::string_view value) {
  for (char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
}

// HELP text escapes backslash and newline.
std::string EscapeHelp(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void AppendLabels(std::string& out, const MetricsWriter::Labels& labels,
                  std::string_view le = {}) {
  if (labels.empty() && le.empty()) return;
  out += '{';
  bool first = true;
  for (const auto& [key, value] : labels) {
    if (!first) out += ',';
    first = false;
    out.append(key);
    out += "=\"";
    AppendEscaped(out, value);
    out += '"';
  }
  if (!le.empty()) {
    if (!first) out += ',';
    out += "le=\"";
    out.append(le);
    out += '"';
  }
  out += '}';
}

std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  // The shortest form that reads back as the same double.
  char buf[32];
  for (int precision = 15; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

void AppendSample(std::string& out, std::string_view name,
                  const MetricsWriter::Labels& labels, std::string_view value,
                  std::string_view le = {}) {
  out.append(name);
  AppendLabels(out, labels, le);
  out += ' ';
  out.append(value);
  out += '\n';
}

}  // namespace

MetricsWriter::Family& MetricsWriter::FamilyOf(std::string_view name,
                                               std::string_view type,
                                               std::string_view help) {
  for (Family& f : families_) {
    if (f.name == name) return f;
  }
  families_.push_back(Family{std::string(name), type, EscapeHelp(help), {}});
  return families_.back();
}

void MetricsWriter::Counter(std::string_view name, std::string_view help,
                            const Labels& labels, uint64_t value) {
  // Text format 0.0.4 names a counter's family by its sample, _total
  // included.
  const std::string total = StrCat(name, "_total");
  Family& f = FamilyOf(total, "counter", help);
  AppendSample(f.samples, total, labels, StrCat(value));
}

void MetricsWriter::Gauge(std::string_view name, std::string_view help,
                          const Labels& labels, double value) {
  Family& f = FamilyOf(name, "gauge", help);
  AppendSample(f.samples, name, labels, FormatDouble(value));
}

void MetricsWriter::Histogram(std::string_view name, std::string_view help,
                              const Labels& labels,
                              const batchbus::Histogram::Snapshot& h) {
  Family& f = FamilyOf(name, "histogram", help);
  const std::string bucket = StrCat(name, "_bucket");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < batchbus::Histogram::kBounds.size(); ++i) {
    cumulative += h.counts[i];
    AppendSample(f.samples, bucket, labels, StrCat(cumulative),
                 FormatDouble(batchbus::Histogram::kBounds[i]));
  }
  AppendSample(f.samples, bucket, labels, StrCat(h.count), "+Inf");
  AppendSample(f.samples, StrCat(name, "_sum"), labels,
               FormatDouble(h.sum_seconds));
  AppendSample(f.samples, StrCat(name, "_count"), labels, StrCat(h.count));
}

void MetricsWriter::Render(std::string& out) const {
  for (const Family& f : families_) {
    out += StrCat("# HELP ", f.name, " ", f.help, "\n# TYPE ", f.name, " ",
                  f.type, "\n");
    out += f.samples;
  }
}

}  // namespace batchbus
