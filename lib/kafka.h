// Everything that touches librdkafka's C API directly: owning handles,
// error mapping, configuration, the embedded mock cluster and topic setup.
#ifndef BATCHBUS_LIB_KAFKA_H_
#define BATCHBUS_LIB_KAFKA_H_

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "batchbus/config.h"

namespace batchbus::kafka {

// One owner per librdkafka handle type.
struct Deleter {
  void operator()(rd_kafka_t* p) const { rd_kafka_destroy(p); }
  void operator()(rd_kafka_conf_t* p) const { rd_kafka_conf_destroy(p); }
  void operator()(rd_kafka_topic_t* p) const { rd_kafka_topic_destroy(p); }
  void operator()(rd_kafka_queue_t* p) const { rd_kafka_queue_destroy(p); }
  void operator()(rd_kafka_message_t* p) const { rd_kafka_message_destroy(p); }
  void operator()(rd_kafka_event_t* p) const { rd_kafka_event_destroy(p); }
  void operator()(rd_kafka_error_t* p) const { rd_kafka_error_destroy(p); }
  void operator()(rd_kafka_topic_partition_list_t* p) const {
    rd_kafka_topic_partition_list_destroy(p);
  }
  void operator()(rd_kafka_AdminOptions_t* p) const {
    rd_kafka_AdminOptions_destroy(p);
  }
  void operator()(rd_kafka_NewTopic_t* p) const { rd_kafka_NewTopic_destroy(p); }
  void operator()(const rd_kafka_metadata_t* p) const {
    rd_kafka_metadata_destroy(p);
  }
};
using KafkaPtr = std::unique_ptr<rd_kafka_t, Deleter>;
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, Deleter>;
using TopicPtr = std::unique_ptr<rd_kafka_topic_t, Deleter>;
using QueuePtr = std::unique_ptr<rd_kafka_queue_t, Deleter>;
using MessagePtr = std::unique_ptr<rd_kafka_message_t, Deleter>;
using EventPtr = std::unique_ptr<rd_kafka_event_t, Deleter>;
using ErrorPtr = std::unique_ptr<rd_kafka_error_t, Deleter>;
using PartitionListPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, Deleter>;
using AdminOptionsPtr = std::unique_ptr<rd_kafka_AdminOptions_t, Deleter>;
using NewTopicPtr = std::unique_ptr<rd_kafka_NewTopic_t, Deleter>;
using MetadataPtr = std::unique_ptr<const rd_kafka_metadata_t, Deleter>;

// Maps a librdkafka error to an absl::Status; `context` says what was being
// done. The one place error codes are translated.
absl::Status ToStatus(rd_kafka_resp_err_t err, std::string_view context);

// Bootstrap servers for config.brokers; "mock://[N]" starts (once per
// process) the embedded mock cluster and returns its address.
absl::StatusOr<std::string> ResolveBootstrap(const Config& config);

// The configuration for a handle that hosts a mock cluster
// (rd_kafka_mock_cluster_new), as the embedded one is set up: quiet, and no
// Nagle delays on the mock brokers' sockets. The caller owns it.
rd_kafka_conf_t* MockHostConf();

// Makes a mock cluster created elsewhere (tests, benchmarks) known, so that
// EnsureTopics creates topics on it through the mock API.
void RegisterMockCluster(rd_kafka_mock_cluster_t* cluster);
void UnregisterMockCluster(rd_kafka_mock_cluster_t* cluster);

// Runs `command`, which calls rd_kafka_mock_*() functions on `mock`, and
// keeps the mock cluster's thread awake until it returns (librdkafka 2.0
// can leave such a call waiting for a second; see kafka.cc).
absl::Status RunMockCommand(rd_kafka_mock_cluster_t* mock,
                            absl::FunctionRef<absl::Status()> command);

// Which kind of client a configuration is for. config.kafka keys that start
// with "producer." or "consumer." apply to that kind only (prefix removed);
// the others apply to both.
enum class Role { kProducer, kConsumer };

// A librdkafka configuration: bootstrap servers and client id from `config`,
// then `defaults`, then the user's properties for `role` from config.kafka
// (they win over the defaults, and role-scoped ones over shared ones).
absl::StatusOr<ConfPtr> MakeConf(
    const Config& config, Role role,
    const std::vector<std::pair<std::string, std::string>>& defaults);

// session.timeout.ms of the processor's consumer groups: 15 s on a real
// broker. It must outlast a broker's failover: the controller fences a dead
// broker only after broker.session.timeout.ms (9 s by default) and then
// elects new leaders and group coordinators. A consumer that hears nothing
// from its coordinator for a whole session revokes its partitions and
// rejoins, so a shorter session turns every broker death into a rebalance
// of every group (and the uncommitted batches are processed again). The
// cost: a processor that dies and is not restarted keeps its partitions
// this long (processor_instance makes a restarted one take them back at
// once). A mock cluster has no failover, and its rebalances wait out the
// session of members that are slow to rejoin: there it is 6 s, the
// broker's minimum.
const char* GroupSessionTimeoutMs(const Config& config);

// True when the user set librdkafka property `property` for `role`.
bool UserSets(const Config& config, Role role, const std::string& property);

// For a realtime consumer: on the embedded cluster (mock://), whose fetches
// wait their whole fetch.wait.max.ms even when data arrives, the wait is
// 1 ms (unless the user set it). A real broker answers a waiting fetch as
// soon as data arrives, so there the longer wait costs no latency and
// saves idle fetches.
void QuickFetchOnEmbedded(const Config& config, rd_kafka_conf_t* conf);

// For a processor's consumer: group.instance.id = config.processor_instance
// (static membership) when that is set and the user did not set the
// property.
absl::Status SetStaticMembership(const Config& config, rd_kafka_conf_t* conf);

// Creates a handle, taking ownership of `conf`.
absl::StatusOr<KafkaPtr> MakeHandle(rd_kafka_type_t type, ConfPtr conf);

// Makes sure `topics` exist. With config.create_topics, missing ones are
// created (config.topic_partitions, config.replication_factor); otherwise a
// missing topic is FailedPrecondition naming it and saying how to create it.
// A broker refusing the TLS handshake or the SASL login ends the wait at
// once with Unauthenticated naming the cause (connect_failures.h).
absl::Status EnsureTopics(rd_kafka_t* rk, const Config& config,
                          const std::vector<std::string>& topics,
                          absl::Duration timeout);

// Partitions of `topic`, from the cluster's metadata.
absl::StatusOr<int> PartitionCount(rd_kafka_t* rk, const Config& config,
                                   const std::string& topic,
                                   absl::Duration timeout);

// Destroys `rk` (rd_kafka_destroy_flags with `flags`), waiting at most until
// `deadline`. librdkafka may take up to session.timeout.ms to let go of a
// consumer group whose coordinator is unreachable; past the deadline the
// destruction finishes on a detached thread, so the caller's wait stays
// bounded. No callback into the caller's objects runs after this returns:
// handles are destroyed without polling.
void DestroyWithin(KafkaPtr rk, int flags, absl::Time deadline);

int ToMillis(absl::Duration d);

}  // namespace batchbus::kafka

#endif  // BATCHBUS_LIB_KAFKA_H_
