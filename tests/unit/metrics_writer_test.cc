// The Prometheus text the metrics writer renders: one HELP and TYPE per
// family however many sources add to it, escaped label values, and
// cumulative histogram buckets ending in +Inf with _sum and _count.
#include "metrics_writer.h"

#include <gtest/gtest.h>

namespace batchbus {
namespace {

TEST(MetricsWriterTest, FamiliesAreWrittenOnceWithTheirSamplesTogether) {
  MetricsWriter w;
  w.Counter("jobs", "Jobs.", {{"instance", "a"}}, 3);
  w.Gauge("inflight", "In flight.", {{"instance", "a"}}, 1.5);
  w.Counter("jobs", "Jobs.", {{"instance", "b"}}, 4);
  std::string out;
  w.Render(out);
  EXPECT_EQ(out,
            "# HELP jobs_total Jobs.\n# TYPE jobs_total counter\n"
            "jobs_total{instance=\"a\"} 3\njobs_total{instance=\"b\"} 4\n"
            "# HELP inflight In flight.\n# TYPE inflight gauge\n"
            "inflight{instance=\"a\"} 1.5\n");
}

TEST(MetricsWriterTest, LabelValuesAndHelpAreEscaped) {
  MetricsWriter w;
  w.Gauge("g", "a \\ b\nc", {{"group", "say \"hi\"\\\n"}}, 0);
  std::string out;
  w.Render(out);
  EXPECT_EQ(out,
            "# HELP g a \\\\ b\\nc\n# TYPE g gauge\n"
            "g{group=\"say \\\"hi\\\"\\\\\\n\"} 0\n");
}

TEST(MetricsWriterTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Histogram h;
  h.Record(absl::Microseconds(100));   // <= 0.0005
  h.Record(absl::Milliseconds(3));     // <= 0.005
  h.Record(absl::Milliseconds(3));
  h.Record(absl::Seconds(100));        // beyond the last bound
  MetricsWriter w;
  w.Histogram("rt_seconds", "Round trips.", {{"priority", "normal"}}, h.Get());
  std::string out;
  w.Render(out);
  EXPECT_NE(out.find("# TYPE rt_seconds histogram\n"), std::string::npos);
  EXPECT_NE(out.find("rt_seconds_bucket{priority=\"normal\",le=\"0.0005\"} 1\n"),
            std::string::npos) << out;
  EXPECT_NE(out.find("rt_seconds_bucket{priority=\"normal\",le=\"0.0025\"} 1\n"),
            std::string::npos) << out;
  EXPECT_NE(out.find("rt_seconds_bucket{priority=\"normal\",le=\"0.005\"} 3\n"),
            std::string::npos) << out;
  EXPECT_NE(out.find("rt_seconds_bucket{priority=\"normal\",le=\"60\"} 3\n"),
            std::string::npos) << out;
  EXPECT_NE(out.find("rt_seconds_bucket{priority=\"normal\",le=\"+Inf\"} 4\n"),
            std::string::npos) << out;
  EXPECT_NE(out.find("rt_seconds_count{priority=\"normal\"} 4\n"),
            std::string::npos) << out;
  EXPECT_NE(out.find("rt_seconds_sum{priority=\"normal\"} 100.0061"),
            std::string::npos) << out;
}

}  // namespace
}  // namespace batchbus
