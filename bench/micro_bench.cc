// Microbenchmarks of batchbus' per-job path (issue 4): what one job costs in
// the encoder, the validator, the decoders, the id generator and Submit().
// Every benchmark reports items/s where one item is one job, so the
// "time/item" of each line is a per-job cost.
//
//   build/release/bench/micro_bench --benchmark_repetitions=5 \
//       --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "batchbus/batchbus.h"
#include "json.h"
#include "kafka.h"
#include "wire.h"

namespace batchbus {
namespace {

constexpr size_t kJobBytes = 200;
constexpr size_t kBatchJobs = 500;

// A JSON object of exactly `bytes` bytes (for bytes >= 8).
std::string MakeData(size_t bytes) {
  if (bytes < 8) return "1";
  return "{\"d\":\"" + std::string(bytes - 8, 'x') + "\"}";
}

const std::string& Data() {
  static const std::string data = MakeData(kJobBytes);
  return data;
}

const std::string kInstance = "0123456789abcdef0123456789abcdef";

wire::BatchHeader Header() {
  return {kInstance, 42, "batchbus.replies", 3, "bench", Priority::kNormal};
}

std::string MakeBatch(size_t jobs, std::vector<JobId>* ids = nullptr) {
  wire::BatchWriter w;
  w.Begin(Header());
  for (size_t i = 0; i < jobs; ++i) {
    JobId id = JobId::Random();
    if (ids) ids->push_back(id);
    w.AddJob(id, "echo", Data());
  }
  return w.Finish();
}

// Encoding: one job appended to an open batch; a batch is finished and a new
// one begun every 500 jobs (that cost is included, amortised).
void BM_BatchWriterAddJob(benchmark::State& state) {
  wire::BatchWriter w;
  const JobId id = JobId::Random();
  size_t n = 0;
  w.Begin(Header());
  for (auto _ : state) {
    w.AddJob(id, "echo", Data());
    if (++n == kBatchJobs) {
      benchmark::DoNotOptimize(w.Finish());
      w.Begin(Header());
      n = 0;
    }
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * kJobBytes);
}
BENCHMARK(BM_BatchWriterAddJob);

// Validation of a job's data at Submit (simdjson DOM, thread-local parser).
void BM_JsonValidate(benchmark::State& state) {
  const std::string data = MakeData(static_cast<size_t>(state.range(0)));
  for (auto _ : state) {
    absl::Status s = json::Validate(data, "job data");
    benchmark::DoNotOptimize(s);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * data.size());
}
BENCHMARK(BM_JsonValidate)->Arg(kJobBytes)->Arg(2000);

// Decoding a 500-job batch in the processor; reported per job.
void BM_DecodeBatch(benchmark::State& state) {
  const size_t jobs = static_cast<size_t>(state.range(0));
  const std::string payload = MakeBatch(jobs);
  wire::Decoder decoder;
  wire::DecodedBatch out;
  for (auto _ : state) {
    absl::Status s = decoder.DecodeBatch(payload, out);
    if (!s.ok()) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(out.jobs.data());
  }
  state.SetItemsProcessed(state.iterations() * jobs);
  state.SetBytesProcessed(state.iterations() * payload.size());
}
BENCHMARK(BM_DecodeBatch)->Arg(kBatchJobs)->Arg(1);

// One result appended in the processor (echo: the job's data is the result).
void BM_ResultWriterAddOk(benchmark::State& state) {
  wire::ResultWriter w;
  const JobId id = JobId::Random();
  uint32_t i = 0;
  w.Begin(kInstance);
  for (auto _ : state) {
    w.AddOk(7, i, id, Data());
    if (++i == kBatchJobs) {
      benchmark::DoNotOptimize(w.Finish());
      w.Begin(kInstance);
      i = 0;
    }
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ResultWriterAddOk);

// Decoding a result message of 500 results at the submitter; per result.
void BM_DecodeResults(benchmark::State& state) {
  wire::ResultWriter w;
  w.Begin(kInstance);
  for (uint32_t i = 0; i < kBatchJobs; ++i) {
    w.AddOk(7, i, JobId::Random(), Data());
  }
  const std::string payload = w.Finish();
  wire::Decoder decoder;
  std::vector<wire::ResultEntry> entries;
  std::string_view instance;
  for (auto _ : state) {
    absl::Status s = decoder.DecodeResults(payload, instance, entries);
    if (!s.ok()) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(entries.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatchJobs);
  state.SetBytesProcessed(state.iterations() * payload.size());
}
BENCHMARK(BM_DecodeResults);

// Both halves of a result's trip: AddOk then (amortised) DecodeResults.
void BM_ResultRoundTrip(benchmark::State& state) {
  wire::ResultWriter w;
  wire::Decoder decoder;
  std::vector<wire::ResultEntry> entries;
  std::string_view instance;
  const JobId id = JobId::Random();
  for (auto _ : state) {
    w.Begin(kInstance);
    for (uint32_t i = 0; i < kBatchJobs; ++i) w.AddOk(7, i, id, Data());
    const std::string payload = w.Finish();
    absl::Status s = decoder.DecodeResults(payload, instance, entries);
    if (!s.ok()) state.SkipWithError("decode failed");
    benchmark::DoNotOptimize(entries.data());
  }
  state.SetItemsProcessed(state.iterations() * kBatchJobs);
}
BENCHMARK(BM_ResultRoundTrip);

// A fresh id and its text form.
void BM_JobIdRandomAppendTo(benchmark::State& state) {
  std::string out;
  out.reserve(64);
  for (auto _ : state) {
    out.clear();
    JobId::Random().AppendTo(out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_JobIdRandomAppendTo);

// Submitter::Submit() into an open batch (validation, id, lock, encode,
// callback stored; every 500th call publishes a batch to an embedded mock
// cluster). Nothing answers, so jobs stay in flight: iterations are capped.
class MockHost {
 public:
  MockHost() {
    char err[256];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
    host_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    cluster_ = rd_kafka_mock_cluster_new(host_, 1);
    kafka::RegisterMockCluster(cluster_);
  }
  ~MockHost() {
    kafka::UnregisterMockCluster(cluster_);
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(host_);
  }
  std::string bootstrap() const {
    return rd_kafka_mock_cluster_bootstraps(cluster_);
  }

 private:
  rd_kafka_t* host_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

void BM_SubmitterSubmit(benchmark::State& state) {
  MockHost host;
  Config config;
  config.brokers = "kafka://" + host.bootstrap();
  config.ns = "micro";
  config.max_inflight_jobs = 10'000'000;
  config.max_inflight_bytes = 8ull << 30;
  config.backpressure = BackpressurePolicy::kFail;
  config.close_timeout = absl::Milliseconds(200);
  config.For(Priority::kNormal).max_jobs = kBatchJobs;
  config.For(Priority::kNormal).max_linger = absl::Seconds(60);
  config.For(Priority::kNormal).batch_timeout = absl::Seconds(600);
  auto submitter = Submitter::Create(config);
  if (!submitter.ok()) {
    state.SkipWithError("no submitter");
    return;
  }
  std::atomic<uint64_t> callbacks{0};
  Job job;
  job.processor = "bench";
  job.group = "echo";
  job.data = Data();
  for (auto _ : state) {
    job.id = JobId();
    absl::Status s = (*submitter)->Submit(
        job, [&callbacks](const JobResult&) { ++callbacks; });
    if (!s.ok()) state.SkipWithError("submit failed");
  }
  state.SetItemsProcessed(state.iterations());
  // Outside the timed loop: ends the jobs still in flight.
  (void)(*submitter)->Close(absl::Milliseconds(100));
}
BENCHMARK(BM_SubmitterSubmit)->Iterations(200000)->Repetitions(1);

}  // namespace
}  // namespace batchbus

BENCHMARK_MAIN();
