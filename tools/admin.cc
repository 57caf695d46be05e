#include "strcat.h"
#include "admin.h"

#include <iostream>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cli.h"
#include "delay_tiers.h"

namespace batchbus::cli {

std::vector<TopicSpec> TopicsFor(const Config& config,
                                 const std::string& processor) {
  std::vector<TopicSpec> out;
  const std::string group = config.GroupIdFor(processor);
  for (Priority p : kAllPriorities) {
    out.push_back({config.TopicFor(processor, p),
                   StrCat("job ", PriorityName(p)),
                   p == Priority::kRealtime ? group + ".realtime" : group, p});
  }
  for (const DelayTier& tier : kDelayTiers) {
    out.push_back({DelayTopic(config, processor, tier),
                   StrCat("delay ", tier.name), group + ".delay",
                   std::nullopt});
  }
  out.push_back({config.DeadLetterTopicFor(processor), "dead letters", "",
                 std::nullopt});
  out.push_back({config.ReplyTopic(), "replies", "", std::nullopt});
  return out;
}

std::vector<std::string> ProcessorsIn(
    const Config& config, const std::map<std::string, int>& topics) {
  std::set<std::string> found;
  // A template puts the processor's name somewhere in the topic; try every
  // substring that could be it against TopicFor. Topics are few, names short.
  for (const auto& [topic, partitions] : topics) {
    for (Priority p : kAllPriorities) {
      const std::string probe = config.TopicFor("\x01", p);
      const size_t at = probe.find('\x01');
      if (at == std::string::npos) continue;
      const std::string prefix = probe.substr(0, at);
      const std::string suffix = probe.substr(at + 1);
      if (topic.size() <= prefix.size() + suffix.size()) continue;
      if (!absl::StartsWith(topic, prefix) || !absl::EndsWith(topic, suffix)) {
        continue;
      }
      const std::string name = topic.substr(
          prefix.size(), topic.size() - prefix.size() - suffix.size());
      if (config.TopicFor(name, p) == topic) found.insert(name);
    }
  }
  return {found.begin(), found.end()};
}

absl::StatusOr<kafka::KafkaPtr> NewReader(const Config& config,
                                          const std::string& group_id) {
  auto conf = kafka::MakeConf(
      config, kafka::Role::kConsumer,
      {{"group.id", group_id.empty() ? config.ns + ".cli" : group_id},
       {"enable.auto.commit", "false"},
       {"enable.auto.offset.store", "false"},
       {"allow.auto.create.topics", "false"},
       {"enable.partition.eof", "true"}});
  if (!conf.ok()) return conf.status();
  return kafka::MakeHandle(RD_KAFKA_CONSUMER, std::move(*conf));
}

absl::StatusOr<kafka::KafkaPtr> NewWriter(const Config& config) {
  auto conf = kafka::MakeConf(config, kafka::Role::kProducer,
                              {{"enable.idempotence", "true"},
                               {"linger.ms", "5"}});
  if (!conf.ok()) return conf.status();
  return kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
}

absl::StatusOr<std::map<std::string, int>> ListTopics(rd_kafka_t* rk) {
  const rd_kafka_metadata_t* raw = nullptr;
  if (rd_kafka_resp_err_t e = rd_kafka_metadata(
          rk, 1, nullptr, &raw, kafka::ToMillis(kAdminTimeout))) {
    return kafka::ToStatus(e, "reading the cluster's topics (metadata)");
  }
  kafka::MetadataPtr md(raw);
  std::map<std::string, int> out;
  for (int i = 0; i < md->topic_cnt; ++i) {
    const rd_kafka_metadata_topic_t& t = md->topics[i];
    if (t.err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    if (absl::StartsWith(t.topic, "__")) continue;
    out[t.topic] = t.partition_cnt;
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> ChooseProcessors(
    const Config& config, const std::map<std::string, int>& topics,
    const std::string& processor) {
  if (!processor.empty()) return std::vector<std::string>{processor};
  std::vector<std::string> found = ProcessorsIn(config, topics);
  if (found.empty()) {
    return absl::NotFoundError(StrCat(
        "no processor has job topics in namespace '", config.ns,
        "' (looked for ", config.TopicFor("<processor>", Priority::kNormal),
        " and the like); name one with --processor, or check --namespace"));
  }
  return found;
}

int ExitFor(const absl::Status& status) {
  if (status.ok()) return kExitOk;
  if (absl::IsUnavailable(status) || absl::IsDeadlineExceeded(status)) {
    return kExitUnavailable;
  }
  if (absl::IsInvalidArgument(status)) return kExitUsage;
  return kExitFailed;
}

}  // namespace batchbus::cli
