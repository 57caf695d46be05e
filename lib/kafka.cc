#include "kafka.h"

#include <librdkafka/rdkafka_mock.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <future>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "strcat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "connect_failures.h"
#include "log.h"
#include "secrets.h"

namespace batchbus::kafka {

int ToMillis(absl::Duration d) {
  if (d <= absl::ZeroDuration()) return 0;
  if (d >= absl::Milliseconds(INT32_MAX)) return INT32_MAX;
  return static_cast<int>(absl::ToInt64Milliseconds(d + absl::Microseconds(999)));
}

absl::Status ToStatus(rd_kafka_resp_err_t err, std::string_view context) {
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return absl::OkStatus();
  std::string msg = StrCat(context, ": ", rd_kafka_err2str(err), " (",
                                 rd_kafka_err2name(err), ")");
  switch (err) {
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
      return absl::DeadlineExceededError(msg);
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
      return absl::UnavailableError(msg);
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      return absl::NotFoundError(msg);
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR__INVALID_ARG:
    case RD_KAFKA_RESP_ERR_INVALID_CONFIG:
      return absl::InvalidArgumentError(msg);
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
      return absl::ResourceExhaustedError(msg);
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
      return absl::PermissionDeniedError(msg);
    case RD_KAFKA_RESP_ERR__DESTROY:
    case RD_KAFKA_RESP_ERR__PURGE_QUEUE:
    case RD_KAFKA_RESP_ERR__PURGE_INFLIGHT:
      return absl::CancelledError(msg);
    default:
      return absl::InternalError(msg);
  }
}

namespace {

// The process-wide embedded clusters, one per broker count. They live until
// the process exits: submitters and processors created from "mock://" in one
// process must meet on the same cluster.
struct MockClusters {
  std::mutex mu;
  std::map<int, std::pair<rd_kafka_t*, rd_kafka_mock_cluster_t*>> clusters;
  // Every mock cluster this process knows, by bootstrap address: the mock
  // cluster does not serve CreateTopics, so topics are made through its API.
  std::map<std::string, rd_kafka_mock_cluster_t*> by_bootstrap;
};

MockClusters& Mocks() {
  static auto* mocks = new MockClusters;
  return *mocks;
}

absl::StatusOr<std::string> MockBootstrap(int brokers) {
  MockClusters& m = Mocks();
  std::lock_guard<std::mutex> lock(m.mu);
  auto it = m.clusters.find(brokers);
  if (it == m.clusters.end()) {
    char err[512];
    rd_kafka_conf_t* conf = MockHostConf();
    rd_kafka_conf_set(conf, "client.id", "batchbus-mock-host", err, sizeof err);
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (rk == nullptr) {
      rd_kafka_conf_destroy(conf);
      return absl::InternalError(StrCat("mock cluster host: ", err));
    }
    rd_kafka_mock_cluster_t* mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (mc == nullptr) {
      rd_kafka_destroy(rk);
      return absl::InternalError("could not start the embedded mock cluster");
    }
    log::Info("kafka", "embedded mock cluster with ", brokers, " broker(s) at ",
              rd_kafka_mock_cluster_bootstraps(mc),
              " (demo/test only: keeps about 5 MiB per partition)");
    it = m.clusters.emplace(brokers, std::make_pair(rk, mc)).first;
    m.by_bootstrap[rd_kafka_mock_cluster_bootstraps(mc)] = mc;
  }
  return std::string(rd_kafka_mock_cluster_bootstraps(it->second.second));
}

rd_kafka_mock_cluster_t* FindMock(const Config& config) {
  auto bootstrap = ResolveBootstrap(config);
  if (!bootstrap.ok()) return nullptr;
  MockClusters& m = Mocks();
  std::lock_guard<std::mutex> lock(m.mu);
  auto it = m.by_bootstrap.find(*bootstrap);
  return it == m.by_bootstrap.end() ? nullptr : it->second;
}

}  // namespace

rd_kafka_conf_t* MockHostConf() {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err);
  // The mock brokers' sockets take their options from the hosting handle.
  // With Nagle's algorithm on, a small response (a realtime job's produce
  // acknowledgement) waits for the client's delayed ACK: up to 40 ms.
  rd_kafka_conf_set(conf, "socket.nagle.disable", "true", err, sizeof err);
  return conf;
}

void RegisterMockCluster(rd_kafka_mock_cluster_t* cluster) {
  MockClusters& m = Mocks();
  std::lock_guard<std::mutex> lock(m.mu);
  m.by_bootstrap[rd_kafka_mock_cluster_bootstraps(cluster)] = cluster;
}

void UnregisterMockCluster(rd_kafka_mock_cluster_t* cluster) {
  MockClusters& m = Mocks();
  std::lock_guard<std::mutex> lock(m.mu);
  m.by_bootstrap.erase(rd_kafka_mock_cluster_bootstraps(cluster));
}

namespace {

// Opens and at once closes a connection to the mock cluster's first broker:
// its thread wakes up to accept it, and serves the commands waiting for it.
void KnockOnMock(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  (void)connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  close(fd);
}

}  // namespace

absl::Status RunMockCommand(rd_kafka_mock_cluster_t* mock,
                            absl::FunctionRef<absl::Status()> command) {
  // The mock cluster's thread sleeps in poll() for up to 1 s between its
  // timers, and librdkafka 2.0 sometimes does not wake it for a queued
  // command: then each rd_kafka_mock_*() call takes a whole second (about
  // one call in four on a fresh cluster). A connection to one of its
  // brokers wakes it as well, so while the command waits, knock every 2 ms.
  int port = 0;
  const std::string_view bootstraps = rd_kafka_mock_cluster_bootstraps(mock);
  const size_t colon = bootstraps.find(':');
  if (colon != std::string_view::npos) {
    const std::string_view rest = bootstraps.substr(colon + 1);
    (void)absl::SimpleAtoi(std::string(rest.substr(0, rest.find(','))), &port);
  }
  std::promise<absl::Status> done;
  std::future<absl::Status> result = done.get_future();
  std::thread runner([&] { done.set_value(command()); });
  while (port > 0 && result.wait_for(std::chrono::milliseconds(2)) !=
                         std::future_status::ready) {
    KnockOnMock(port);
  }
  runner.join();
  return result.get();
}

absl::StatusOr<std::string> ResolveBootstrap(const Config& config) {
  std::string_view b = config.brokers;
  auto consume_prefix = [&b](std::string_view prefix) {
    if (b.substr(0, prefix.size()) != prefix) return false;
    b.remove_prefix(prefix.size());
    return true;
  };
  if (consume_prefix("mock://")) {
    int n = 1;
    if (!b.empty() && !absl::SimpleAtoi(ToAbsl(b), &n)) {
      return absl::InvalidArgumentError(
          StrCat("brokers '", config.brokers, "': expected mock://N"));
    }
    return MockBootstrap(std::max(n, 1));
  }
  if (consume_prefix("kafka://") && !b.empty()) return std::string(b);
  return absl::InvalidArgumentError(StrCat(
      "brokers '", config.brokers,
      "': expected mock://[N] or kafka://host:port[,host:port...]"));
}

namespace {

constexpr std::string_view kProducerScope = "producer.";
constexpr std::string_view kConsumerScope = "consumer.";

// The property a config.kafka key sets for `role`, or empty when the key is
// scoped to the other role.
std::string_view PropertyFor(std::string_view key, Role role) {
  const std::string_view mine =
      role == Role::kProducer ? kProducerScope : kConsumerScope;
  const std::string_view other =
      role == Role::kProducer ? kConsumerScope : kProducerScope;
  if (key.substr(0, mine.size()) == mine) return key.substr(mine.size());
  if (key.substr(0, other.size()) == other) return {};
  return key;
}

}  // namespace

namespace {

// librdkafka's lines, through batchbus's sink (syslog levels).
void RdkafkaLog(const rd_kafka_t* rk, int level, const char* facility,
                const char* text) {
  const log::Level l = level <= 3   ? log::Level::kError
                       : level == 4 ? log::Level::kWarning
                       : level <= 6 ? log::Level::kInfo
                                    : log::Level::kDebug;
  NoteConnectFailure(rd_kafka_name(rk), facility, text);
  if (!log::Enabled(l)) return;
  log::Emit(l, "librdkafka", text,
            {{"facility", facility}, {"client", rd_kafka_name(rk)}});
}

}  // namespace

// A mock cluster is "mock://", or one that a test or benchmark created
// and registered under its address.
static bool OnMock(const Config& config) {
  return absl::StartsWith(config.brokers, "mock://") || FindMock(config) != nullptr;
}

const char* GroupSessionTimeoutMs(const Config& config) {
  return OnMock(config) ? "6000" : "15000";
}

void QuickFetchOnEmbedded(const Config& config, rd_kafka_conf_t* conf) {
  if (!OnMock(config) || UserSets(config, Role::kConsumer, "fetch.wait.max.ms")) {
    return;
  }
  char err[512];
  rd_kafka_conf_set(conf, "fetch.wait.max.ms", "1", err, sizeof err);
}

absl::Status SetStaticMembership(const Config& config, rd_kafka_conf_t* conf) {
  if (config.processor_instance.empty() ||
      UserSets(config, Role::kConsumer, "group.instance.id")) {
    return absl::OkStatus();
  }
  char err[512];
  if (rd_kafka_conf_set(conf, "group.instance.id",
                        config.processor_instance.c_str(), err,
                        sizeof err) != RD_KAFKA_CONF_OK) {
    return absl::InvalidArgumentError(StrCat(
        "processor_instance '", config.processor_instance, "': ", err));
  }
  return absl::OkStatus();
}

bool UserSets(const Config& config, Role role, const std::string& property) {
  const std::string_view scope =
      role == Role::kProducer ? kProducerScope : kConsumerScope;
  return config.kafka.count(property) > 0 ||
         config.kafka.count(StrCat(scope, property)) > 0;
}

absl::StatusOr<ConfPtr> MakeConf(
    const Config& config, Role role,
    const std::vector<std::pair<std::string, std::string>>& defaults) {
  auto bootstrap = ResolveBootstrap(config);
  if (!bootstrap.ok()) return bootstrap.status();
  ConfPtr conf(rd_kafka_conf_new());
  rd_kafka_conf_set_log_cb(conf.get(), &RdkafkaLog);
  char err[512];
  auto set = [&](const std::string& k, const std::string& v) -> absl::Status {
    if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), err, sizeof err) !=
        RD_KAFKA_CONF_OK) {
      return absl::InvalidArgumentError(
          StrCat("kafka property '", k, "' = '", Shown(k, v), "': ", err));
    }
    return absl::OkStatus();
  };
  if (auto s = set("bootstrap.servers", *bootstrap); !s.ok()) return s;
  if (auto s = set("client.id", config.client_id); !s.ok()) return s;
  for (const auto& [k, v] : defaults) {
    if (UserSets(config, role, k)) continue;
    if (auto s = set(k, v); !s.ok()) return s;
  }
  // Shared properties first, so that role-scoped ones override them.
  for (bool scoped : {false, true}) {
    for (const auto& [k, v] : config.kafka) {
      const std::string_view property = PropertyFor(k, role);
      const bool is_scoped = property.size() != k.size();
      if (property.empty() || is_scoped != scoped) continue;
      if (auto s = set(std::string(property), v); !s.ok()) {
        return absl::InvalidArgumentError(
            StrCat("config key 'kafka.", k, "': ", s.message()));
      }
    }
  }
  return conf;
}

absl::StatusOr<KafkaPtr> MakeHandle(rd_kafka_type_t type, ConfPtr conf) {
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(type, conf.get(), err, sizeof err);
  if (rk == nullptr) {
    return absl::InvalidArgumentError(
        StrCat("could not create the Kafka client: ", err));
  }
  conf.release();  // Owned by rk now.
  return KafkaPtr(rk);
}

namespace {

// How often a wait for metadata checks for a refused TLS handshake or
// SASL login, which librdkafka would retry until the wait's end.
constexpr absl::Duration kConnectFailureCheck = absl::Milliseconds(500);

// The cluster's metadata within `timeout`; a connect failure (see
// connect_failures.h) ends the wait at once.
absl::StatusOr<MetadataPtr> ReadMetadata(rd_kafka_t* rk, const Config& config,
                                         absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  TakeConnectFailure(rd_kafka_name(rk));  // Only failures from now on count.
  while (true) {
    const absl::Duration slice =
        std::max(std::min(deadline - absl::Now(), kConnectFailureCheck),
                 absl::Milliseconds(1));
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t err =
        rd_kafka_metadata(rk, 1, nullptr, &md, ToMillis(slice));
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return MetadataPtr(md);
    if (auto failure = TakeConnectFailure(rd_kafka_name(rk))) {
      return ConnectFailureStatus(config, *failure, rd_kafka_version());
    }
    if (absl::Now() >= deadline || (err != RD_KAFKA_RESP_ERR__TIMED_OUT &&
                                    err != RD_KAFKA_RESP_ERR__TRANSPORT)) {
      return ToStatus(err, "reading cluster metadata");
    }
    // The connection the request went out on dropped (a broker restarting,
    // or closing it): another broker, or the same one reconnected, may answer.
    if (err == RD_KAFKA_RESP_ERR__TRANSPORT) {
      absl::SleepFor(std::min(deadline - absl::Now(), absl::Milliseconds(100)));
    }
  }
}

// Topics from `wanted` that the cluster lists, with partition counts.
absl::StatusOr<std::map<std::string, int>> ListTopics(
    rd_kafka_t* rk, const Config& config, const std::vector<std::string>& wanted,
    absl::Duration timeout) {
  auto owner = ReadMetadata(rk, config, timeout);
  if (!owner.ok()) return owner.status();
  const rd_kafka_metadata_t* md = owner->get();
  std::map<std::string, int> found;
  for (int i = 0; i < md->topic_cnt; ++i) {
    const auto& t = md->topics[i];
    if (t.err) continue;
    // A topic counts once every partition has a leader: right after
    // creation a real cluster still elects them.
    bool ready = t.partition_cnt > 0;
    for (int p = 0; p < t.partition_cnt; ++p) {
      ready &= t.partitions[p].err == 0 && t.partitions[p].leader >= 0;
    }
    if (!ready) continue;
    if (std::find(wanted.begin(), wanted.end(), t.topic) != wanted.end()) {
      found[t.topic] = t.partition_cnt;
    }
  }
  return found;
}

absl::Status CreateTopics(rd_kafka_t* rk, const Config& config,
                          const std::vector<std::string>& topics,
                          absl::Duration timeout) {
  if (rd_kafka_mock_cluster_t* mock = FindMock(config)) {
    return RunMockCommand(mock, [&]() -> absl::Status {
      for (const auto& t : topics) {
        if (rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(
                mock, t.c_str(), config.topic_partitions,
                config.replication_factor)) {
          if (e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
            return ToStatus(e, StrCat("creating topic ", t,
                                      " on the mock cluster"));
          }
        }
      }
      return absl::OkStatus();
    });
  }
  char err[512];
  std::vector<NewTopicPtr> owned;
  std::vector<rd_kafka_NewTopic_t*> raw;
  for (const auto& t : topics) {
    rd_kafka_NewTopic_t* nt = rd_kafka_NewTopic_new(
        t.c_str(), config.topic_partitions, config.replication_factor, err,
        sizeof err);
    if (nt == nullptr) {
      return absl::InvalidArgumentError(StrCat("topic ", t, ": ", err));
    }
    if (config.min_insync_replicas > 0) {
      const std::string isr = StrCat(config.min_insync_replicas);
      if (rd_kafka_NewTopic_set_config(nt, "min.insync.replicas",
                                       isr.c_str()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_NewTopic_destroy(nt);
        return absl::InvalidArgumentError(
            StrCat("topic ", t, ": cannot set min.insync.replicas"));
      }
    }
    owned.emplace_back(nt);
    raw.push_back(nt);
  }
  QueuePtr queue(rd_kafka_queue_new(rk));
  AdminOptionsPtr options(
      rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS));
  rd_kafka_AdminOptions_set_operation_timeout(options.get(), ToMillis(timeout),
                                              err, sizeof err);
  rd_kafka_CreateTopics(rk, raw.data(), raw.size(), options.get(),
                        queue.get());
  EventPtr event(rd_kafka_queue_poll(queue.get(), ToMillis(timeout) + 1000));
  if (!event) {
    return absl::DeadlineExceededError(
        StrCat("creating topics ", absl::StrJoin(topics, ", "),
                     ": no answer from the cluster"));
  }
  if (rd_kafka_event_error(event.get())) {
    return ToStatus(rd_kafka_event_error(event.get()),
                    StrCat("creating topics ", absl::StrJoin(topics, ", ")));
  }
  const rd_kafka_CreateTopics_result_t* result =
      rd_kafka_event_CreateTopics_result(event.get());
  size_t n = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreateTopics_result_topics(result, &n);
  for (size_t i = 0; i < n; ++i) {
    rd_kafka_resp_err_t e = rd_kafka_topic_result_error(results[i]);
    if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      const char* why = rd_kafka_topic_result_error_string(results[i]);
      return ToStatus(e, StrCat("creating topic ",
                                      rd_kafka_topic_result_name(results[i]),
                                      why ? StrCat(" (", why, ")") : ""));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status EnsureTopics(rd_kafka_t* rk, const Config& config,
                          const std::vector<std::string>& topics,
                          absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::set<std::string> unique(topics.begin(), topics.end());
  std::vector<std::string> wanted(unique.begin(), unique.end());
  auto found = ListTopics(rk, config, wanted, timeout);
  if (!found.ok()) return found.status();
  std::vector<std::string> missing;
  for (const auto& t : wanted) {
    if (!found->count(t)) missing.push_back(t);
  }
  if (missing.empty()) return absl::OkStatus();
  if (!config.create_topics) {
    return absl::FailedPreconditionError(StrCat(
        "topic(s) ", absl::StrJoin(missing, ", "),
        " do not exist and create_topics is false. Create them, e.g. "
        "`kafka-topics.sh --create --topic ", missing.front(),
        " --partitions ", config.topic_partitions, " --replication-factor ",
        config.replication_factor, "`, or set create_topics = true"));
  }
  log::Info("kafka", "creating topics ", absl::StrJoin(missing, ", "));
  if (auto s = CreateTopics(rk, config, missing,
                            std::max(deadline - absl::Now(),
                                     absl::Milliseconds(100)));
      !s.ok()) {
    return s;
  }
  // Wait until the new topics show in metadata, so that producers and
  // consumers started next see their partitions.
  while (true) {
    auto now_found = ListTopics(rk, config, missing, absl::Seconds(2));
    if (now_found.ok() && now_found->size() == missing.size()) {
      return absl::OkStatus();
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          StrCat("created topics ", absl::StrJoin(missing, ", "),
                       " but they did not appear in metadata in time"));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
}

void DestroyWithin(KafkaPtr rk, int flags, absl::Time deadline) {
  if (!rk) return;
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> finished = done->get_future();
  rd_kafka_t* handle = rk.release();
  std::thread destroyer([handle, flags, done] {
    rd_kafka_destroy_flags(handle, flags);
    done->set_value();
  });
  const absl::Duration left = std::max(deadline - absl::Now(),
                                       absl::Milliseconds(100));
  if (finished.wait_for(absl::ToChronoNanoseconds(left)) ==
      std::future_status::ready) {
    destroyer.join();
    return;
  }
  log::Warning("kafka", "the Kafka client is still shutting down after the close "
               "timeout; finishing in the background (bounded by "
               "session.timeout.ms)");
  destroyer.detach();
}

absl::StatusOr<int> PartitionCount(rd_kafka_t* rk, const Config& config,
                                   const std::string& topic,
                                   absl::Duration timeout) {
  auto found = ListTopics(rk, config, {topic}, timeout);
  if (!found.ok()) return found.status();
  auto it = found->find(topic);
  if (it == found->end()) {
    return absl::NotFoundError(StrCat("topic ", topic, " does not exist"));
  }
  return it->second;
}

}  // namespace batchbus::kafka
