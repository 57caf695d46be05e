// What the command line asks Kafka about a batchbus deployment: the topics
// a processor uses, which processors exist, and clients for looking.
//
// Names come from the library's own Config (TopicFor, GroupIdFor,
// DeadLetterTopicFor, ReplyTopic) and delay tiers (lib/delay_tiers.h), so
// the tool and the library cannot disagree about them.
#ifndef BATCHBUS_TOOLS_ADMIN_H_
#define BATCHBUS_TOOLS_ADMIN_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "batchbus/config.h"
#include "kafka.h"

namespace batchbus::cli {

inline constexpr absl::Duration kAdminTimeout = absl::Seconds(10);

struct TopicSpec {
  std::string name;
  std::string role;    // "job realtime", "delay 1s", "dead letters", ...
  std::string group;   // Consumer group that reads it; empty for none.
  std::optional<Priority> priority;  // For job topics.
};

// Every topic a processor named `processor` reads or writes, in the order
// an operator reads them: job topics by priority, delay tiers, dead
// letters, replies.
std::vector<TopicSpec> TopicsFor(const Config& config,
                                 const std::string& processor);

// Names of the processors that have at least one job topic among
// `topics` (by the config's topic templates), sorted.
std::vector<std::string> ProcessorsIn(const Config& config,
                                      const std::map<std::string, int>& topics);

// A consumer handle that joins no group (offsets are read for `group_id`,
// never committed) and creates no topic.
absl::StatusOr<kafka::KafkaPtr> NewReader(const Config& config,
                                          const std::string& group_id);
absl::StatusOr<kafka::KafkaPtr> NewWriter(const Config& config);

// Every topic of the cluster with its partition count (internal ones
// excluded). Unavailable when the cluster does not answer.
absl::StatusOr<std::map<std::string, int>> ListTopics(rd_kafka_t* rk);

// The processors to report on: `processor` when set, else every one found.
absl::StatusOr<std::vector<std::string>> ChooseProcessors(
    const Config& config, const std::map<std::string, int>& topics,
    const std::string& processor);

// Exit status for a status from talking to the cluster.
int ExitFor(const absl::Status& status);

}  // namespace batchbus::cli

#endif  // BATCHBUS_TOOLS_ADMIN_H_
