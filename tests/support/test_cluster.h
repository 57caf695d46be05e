// Test support: a cluster per test (librdkafka's mock cluster, or the real
// broker named by $BATCHBUS_TEST_BROKERS), configs with a namespace of their
// own, and a thread-safe collector of job results.
#ifndef BATCHBUS_TESTS_SUPPORT_TEST_CLUSTER_H_
#define BATCHBUS_TESTS_SUPPORT_TEST_CLUSTER_H_

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/clock.h"
#include "batchbus/batchbus.h"
#include "gtest/gtest.h"
#include "kafka.h"

namespace batchbus::testing {

// An embedded mock cluster owned by one test.
class MockCluster {
 public:
  explicit MockCluster(int brokers = 1) {
    char err[256];
    host_ = rd_kafka_new(RD_KAFKA_PRODUCER, kafka::MockHostConf(), err,
                         sizeof err);
    cluster_ = rd_kafka_mock_cluster_new(host_, brokers);
    kafka::RegisterMockCluster(cluster_);
  }
  ~MockCluster() {
    kafka::UnregisterMockCluster(cluster_);
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(host_);
  }
  rd_kafka_mock_cluster_t* get() const { return cluster_; }
  std::string bootstrap() const {
    return rd_kafka_mock_cluster_bootstraps(cluster_);
  }

 private:
  rd_kafka_t* host_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
};

inline std::string UniqueNamespace() {
  static std::atomic<int> counter{0};
  return "t" + JobId::Random().ToString().substr(0, 8) + "-" +
         std::to_string(counter++);
}

// Collects terminal results; counts callbacks per job so that a second
// callback for one job is visible.
class Collector {
 public:
  Submitter::Callback Callback() {
    return [this](const JobResult& r) { Add(r); };
  }
  void Add(const JobResult& r) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& entry = results_[r.job_id];
    ++entry.first;
    entry.second = r;
    ++total_;
    cv_.notify_all();
  }
  // Waits until `n` callbacks arrived; false on timeout.
  bool WaitFor(size_t n, absl::Duration timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                        [&] { return total_ >= n; });
  }
  size_t total() const {
    std::lock_guard<std::mutex> lock(mu_);
    return total_;
  }
  size_t distinct() const {
    std::lock_guard<std::mutex> lock(mu_);
    return results_.size();
  }
  size_t Count(JobStatus status) const {
    std::lock_guard<std::mutex> lock(mu_);
    size_t n = 0;
    for (const auto& [id, entry] : results_) n += entry.second.status == status;
    return n;
  }
  size_t MaxCallbacksPerJob() const {
    std::lock_guard<std::mutex> lock(mu_);
    size_t m = 0;
    for (const auto& [id, entry] : results_) m = std::max(m, entry.first);
    return m;
  }
  JobResult Get(const JobId& id) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = results_.find(id);
    return it == results_.end() ? JobResult{} : it->second.second;
  }
  std::vector<JobResult> All() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<JobResult> out;
    for (const auto& [id, entry] : results_) out.push_back(entry.second);
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  absl::flat_hash_map<JobId, std::pair<size_t, JobResult>> results_;
  size_t total_ = 0;
};

// Runs Processor::Run on a thread until destroyed.
class RunningProcessor {
 public:
  RunningProcessor(const Config& config, const std::string& name,
                   absl::flat_hash_map<std::string, Processor::Handler> handlers) {
    auto p = Processor::Create(config, name);
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return;
    processor_ = std::move(*p);
    thread_ = std::thread([this, handlers = std::move(handlers)] {
      run_status_ = processor_->Run(handlers);
    });
  }
  ~RunningProcessor() { Stop(); }
  void Stop() {
    if (!processor_) return;
    processor_->Shutdown();
    if (thread_.joinable()) thread_.join();
    EXPECT_TRUE(run_status_.ok()) << run_status_;
    (void)processor_->Close(absl::Seconds(10));
  }
  Processor* operator->() { return processor_.get(); }
  Processor* get() { return processor_.get(); }

 private:
  std::unique_ptr<Processor> processor_;
  std::thread thread_;
  absl::Status run_status_;
};

inline Processor::Handler Echo() {
  return [](Task& task) {
    absl::Status s = task.Complete(task.data());
    EXPECT_TRUE(s.ok()) << s << " data=" << task.data();
  };
}

inline Job MakeJob(const std::string& processor, Priority priority,
                   std::string data = "{\"n\":1}",
                   std::string group = "echo") {
  Job job;
  job.processor = processor;
  job.group = std::move(group);
  job.priority = priority;
  job.data = std::move(data);
  return job;
}

// Polls `pred` until true or `timeout`.
inline bool Eventually(const std::function<bool()>& pred,
                       absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return pred();
}

// A message read back, copied out of librdkafka (a consumer cannot be
// destroyed while one of its messages lives).
struct ReadMessage {
  std::string payload;
  std::vector<std::pair<std::string, std::string>> headers;
  // The value of the last header `name`; empty when there is none.
  std::string Header(std::string_view name) const {
    for (auto it = headers.rbegin(); it != headers.rend(); ++it) {
      if (it->first == name) return it->second;
    }
    return "";
  }
};

// The first message on `topic` that `accept` takes (any, by default), read
// from its beginning by a group of its own; nothing when none came within
// `timeout`. Messages of different partitions come in no set order.
inline std::optional<ReadMessage> FirstMessageOn(
    const Config& config, const std::string& topic, absl::Duration timeout,
    const std::function<bool(const ReadMessage&)>& accept = nullptr) {
  auto conf = kafka::MakeConf(config, kafka::Role::kConsumer,
                              {{"group.id", config.ns + ".reader." + topic},
                               {"auto.offset.reset", "earliest"}});
  EXPECT_TRUE(conf.ok()) << conf.status();
  if (!conf.ok()) return std::nullopt;
  auto consumer = kafka::MakeHandle(RD_KAFKA_CONSUMER, std::move(*conf));
  EXPECT_TRUE(consumer.ok()) << consumer.status();
  if (!consumer.ok()) return std::nullopt;
  kafka::PartitionListPtr topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(), topic.c_str(),
                                    RD_KAFKA_PARTITION_UA);
  EXPECT_EQ(rd_kafka_subscribe(consumer->get(), topics.get()), 0);
  std::optional<ReadMessage> found;
  const absl::Time deadline = absl::Now() + timeout;
  while (!found && absl::Now() < deadline) {
    kafka::MessagePtr m(rd_kafka_consumer_poll(consumer->get(), 200));
    if (!m || m->err) continue;
    found.emplace();
    found->payload.assign(static_cast<const char*>(m->payload), m->len);
    rd_kafka_headers_t* headers = nullptr;
    if (rd_kafka_message_headers(m.get(), &headers) != 0) {
      if (accept && !accept(*found)) found.reset();
      continue;
    }
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    for (size_t i = 0;
         rd_kafka_header_get_all(headers, i, &name, &value, &size) == 0; ++i) {
      found->headers.emplace_back(
          name, std::string(static_cast<const char*>(value), size));
    }
    if (accept && !accept(*found)) found.reset();
  }
  rd_kafka_consumer_close(consumer->get());
  return found;
}

// The real broker for the kafka tier: $BATCHBUS_TEST_BROKERS, else
// kafka://127.0.0.1:$BATCHBUS_KAFKA_PORT (default 9092), as started by
// scripts/kafka.
inline std::string RealBrokers() {
  if (const char* b = std::getenv("BATCHBUS_TEST_BROKERS")) return b;
  const char* port = std::getenv("BATCHBUS_KAFKA_PORT");
  return std::string("kafka://127.0.0.1:") + (port ? port : "9092");
}

// True when this test program runs against a real broker. The same test
// sources build twice: against a mock cluster per test (ctest label `mock`)
// and against the real broker (label `kafka`, BATCHBUS_TEST_BACKEND_KAFKA).
constexpr bool kRealBroker =
#ifdef BATCHBUS_TEST_BACKEND_KAFKA
    true;
#else
    false;
#endif

// Base fixture: a cluster and a namespace of its own per test.
class ClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kRealBroker) {
      config_.brokers = RealBrokers();
    } else {
      mock_ = std::make_unique<MockCluster>();
      config_.brokers = "kafka://" + mock_->bootstrap();
    }
    config_.ns = UniqueNamespace();
    config_.close_timeout = absl::Seconds(2);
    config_.For(Priority::kNormal).max_linger = absl::Milliseconds(20);
    config_.For(Priority::kSlow).max_linger = absl::Milliseconds(50);
  }
  void TearDown() override { mock_.reset(); }

  // A submitter on `config`. When Create fails, the test fails with its
  // status (an exception that GoogleTest reports), never with a null one.
  std::unique_ptr<Submitter> NewSubmitter(const Config& config) {
    auto s = Submitter::Create(config);
    if (!s.ok()) {
      throw std::runtime_error("Submitter::Create failed: " +
                               s.status().ToString());
    }
    return std::move(*s);
  }
  std::unique_ptr<Submitter> NewSubmitter() { return NewSubmitter(config_); }

  // Null on the real broker.
  rd_kafka_mock_cluster_t* mock() { return mock_ ? mock_->get() : nullptr; }

  std::unique_ptr<MockCluster> mock_;
  Config config_;
};

}  // namespace batchbus::testing

#endif  // BATCHBUS_TESTS_SUPPORT_TEST_CLUSTER_H_
