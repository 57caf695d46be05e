// batchbus dead-letters list|replay: what a processor's dead letter topic
// holds (docs/dead-letters.md), and sending job copies back to their job
// topic.
#include <iostream>
#include <map>

#include "strcat.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "admin.h"
#include "cli.h"
#include "dead_letter.h"
#include "output.h"
#include "simdjson.h"

namespace batchbus::cli {
namespace {

absl::StatusOr<std::vector<DeadLetter>> ReadDeadLetters(
    const Config& config, const std::string& topic, int partitions,
    const DeadLettersOptions& o) {
  auto rk = NewReader(config, "");
  if (!rk.ok()) return rk.status();
  kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(partitions));
  std::map<int, int64_t> last;  // Partition -> last offset to read.
  for (int p = 0; p < partitions; ++p) {
    if (o.partition >= 0 && p != o.partition) continue;
    int64_t low = 0, high = 0;
    if (rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
            rk->get(), topic.c_str(), p, &low, &high,
            kafka::ToMillis(kAdminTimeout))) {
      return kafka::ToStatus(e, StrCat("reading the offsets of ", topic,
                                             "[", p, "]"));
    }
    const int64_t first = std::max(low, o.from);
    const int64_t end = o.to >= 0 ? std::min(high - 1, o.to) : high - 1;
    if (first > end) continue;
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p)->offset =
        first;
    last[p] = end;
  }
  std::vector<DeadLetter> out;
  if (last.empty()) return out;
  if (rd_kafka_resp_err_t e = rd_kafka_assign(rk->get(), list.get())) {
    return kafka::ToStatus(e, StrCat("reading ", topic));
  }
  const absl::Time deadline = absl::Now() + absl::Seconds(60);
  while (!last.empty()) {
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          StrCat("reading ", topic, " took over 60 s; narrow it with "
                       "--partition/--from/--to"));
    }
    kafka::MessagePtr m(rd_kafka_consumer_poll(rk->get(), 200));
    if (!m) continue;
    auto it = last.find(m->partition);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (it != last.end() && m->offset > it->second) last.erase(it);
      continue;
    }
    if (m->err) {
      return kafka::ToStatus(m->err, StrCat("reading ", topic));
    }
    if (it == last.end() || m->offset > it->second) continue;
    out.push_back(FromMessage(m.get()));
    if (m->offset >= it->second) last.erase(it);
    if (o.limit > 0 && static_cast<int64_t>(out.size()) >= o.limit) break;
  }
  (void)rd_kafka_assign(rk->get(), nullptr);
  return out;
}

// The job topic a copy goes back to, or why it does not.
absl::StatusOr<std::string> ReplayTarget(const Config& config,
                                         const std::string& processor,
                                         const DeadLetter& d) {
  if (d.kind != DeadLetter::Kind::kFailedJob &&
      d.kind != DeadLetter::Kind::kUndeliveredJob) {
    return absl::FailedPreconditionError(
        StrCat("not a job (", d.KindName(), ")"));
  }
  std::string topic = d.OriginTopic();
  if (topic.empty()) {
    // A failed relay names no origin; the job's priority picks the topic.
    std::optional<Priority> priority;
    if (const std::string* h = d.Header("batchbus.priority")) {
      int p = -1;
      if (absl::SimpleAtoi(*h, &p) && p >= 0 && p < kNumPriorities) {
        priority = static_cast<Priority>(p);
      }
    }
    if (!priority) {
      simdjson::dom::parser parser;
      std::string_view name;
      if (parser.parse(d.value)["priority"].get_string().get(name) ==
          simdjson::SUCCESS) {
        priority = ParsePriority(name);
      }
    }
    if (!priority) {
      return absl::FailedPreconditionError("names no origin and no priority");
    }
    topic = config.TopicFor(processor, *priority);
  }
  for (Priority p : kAllPriorities) {
    if (config.TopicFor(processor, p) == topic) return topic;
  }
  return absl::FailedPreconditionError(StrCat(
      "its origin ", topic, " is not a job topic of ", processor));
}

struct Delivery {
  std::atomic<int64_t> ok{0};
  std::atomic<int64_t> failed{0};
  std::string first_error;
};

extern "C" void OnDelivered(rd_kafka_t*, const rd_kafka_message_t* m,
                            void*) noexcept {
  auto* d = static_cast<Delivery*>(m->_private);
  if (d == nullptr) return;
  if (m->err) {
    if (d->failed.fetch_add(1) == 0) d->first_error = rd_kafka_err2str(m->err);
  } else {
    d->ok.fetch_add(1);
  }
}

int Replay(const Config& config, const GlobalOptions& global,
           const DeadLettersOptions& o, const std::vector<DeadLetter>& copies) {
  auto conf = kafka::MakeConf(config, kafka::Role::kProducer,
                              {{"enable.idempotence", "true"},
                               {"linger.ms", "5"}});
  if (!conf.ok()) {
    std::cerr << "batchbus dead-letters: " << conf.status().message() << "\n";
    return ExitFor(conf.status());
  }
  rd_kafka_conf_set_dr_msg_cb(conf->get(), &OnDelivered);
  auto rk = kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
  if (!rk.ok()) {
    std::cerr << "batchbus dead-letters: " << rk.status().message() << "\n";
    return ExitFor(rk.status());
  }
  Delivery delivery;
  int64_t sent = 0, skipped = 0;
  std::map<std::string, int64_t> skipped_why;
  Progress progress("replayed", copies.size());
  for (const DeadLetter& d : copies) {
    auto target = ReplayTarget(config, o.processor, d);
    if (!target.ok()) {
      ++skipped;
      ++skipped_why[std::string(target.status().message())];
      if (global.json) {
        std::cout << JsonLine().Int("partition", d.partition)
                         .Int("offset", d.offset).Str("status", "skipped")
                         .Str("reason", std::string(target.status().message())).Done()
                  << "\n";
      }
      continue;
    }
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR_NO_ERROR;
    do {
      e = rd_kafka_producev(
          rk->get(), RD_KAFKA_V_TOPIC(target->c_str()),
          RD_KAFKA_V_KEY(d.key.data(), d.key.size()),
          RD_KAFKA_V_VALUE(const_cast<char*>(d.value.data()), d.value.size()),
          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_OPAQUE(&delivery), RD_KAFKA_V_END);
      if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) rd_kafka_poll(rk->get(), 50);
    } while (e == RD_KAFKA_RESP_ERR__QUEUE_FULL);
    if (e) {
      std::cerr << "batchbus dead-letters: sending " << d.partition << "@"
                << d.offset << " to " << *target << ": " << rd_kafka_err2str(e)
                << "\n";
      delivery.failed.fetch_add(1);
      continue;
    }
    ++sent;
    if (global.json) {
      std::cout << JsonLine().Int("partition", d.partition)
                       .Int("offset", d.offset).Str("status", "sent")
                       .Str("topic", *target).Str("key", d.key).Done()
                << "\n";
    }
    rd_kafka_poll(rk->get(), 0);
    if (o.progress) progress.Update(delivery.ok.load());
  }
  rd_kafka_flush(rk->get(), 30000);
  if (o.progress) progress.Finish(delivery.ok.load());
  const int64_t ok = delivery.ok.load();
  const int64_t failed = delivery.failed.load();
  if (global.json) {
    std::cout << JsonLine().Int("selected", copies.size()).Int("replayed", ok)
                     .Int("failed", failed).Int("skipped", skipped).Done()
              << "\n";
  } else {
    std::cout << "replayed " << ok << " of " << copies.size()
              << " message(s) to their job topic";
    if (failed > 0) std::cout << ", " << failed << " failed";
    if (skipped > 0) std::cout << ", " << skipped << " skipped";
    std::cout << "\n";
    for (const auto& [why, n] : skipped_why) {
      std::cout << "  skipped " << n << ": " << why << "\n";
    }
    if (failed > 0 && !delivery.first_error.empty()) {
      std::cout << "  first failure: " << delivery.first_error << "\n";
    }
  }
  return failed > 0 || (sent - ok) > 0 ? kExitFailed : kExitOk;
}

}  // namespace

int RunDeadLetters(const Config& config, const GlobalOptions& global,
                   const DeadLettersOptions& o) {
  const std::string topic = config.DeadLetterTopicFor(o.processor);
  auto rk = NewReader(config, "");
  if (!rk.ok()) {
    std::cerr << "batchbus dead-letters: " << rk.status().message() << "\n";
    return ExitFor(rk.status());
  }
  auto partitions = kafka::PartitionCount(rk->get(), config, topic, kAdminTimeout);
  if (!partitions.ok()) {
    std::cerr << "batchbus dead-letters: " << partitions.status().message()
              << "\n";
    return ExitFor(partitions.status());
  }
  auto copies = ReadDeadLetters(config, topic, *partitions, o);
  if (!copies.ok()) {
    std::cerr << "batchbus dead-letters: " << copies.status().message() << "\n";
    return ExitFor(copies.status());
  }
  if (o.action == "replay") return Replay(config, global, o, *copies);

  Table table({"partition", "offset", "time", "kind", "attempts", "key",
               "origin", "error"});
  for (const DeadLetter& d : *copies) {
    if (global.json) {
      std::cout << d.ToJson() << "\n";
      continue;
    }
    const std::string* attempts = d.Header("batchbus.attempts");
    table.AddRow({StrCat(d.partition), StrCat(d.offset),
                  TimeText(d.time), std::string(d.KindName()),
                  attempts ? *attempts : "-", d.key.empty() ? "-" : d.key,
                  Ellipsize(d.Origin(), 48), Ellipsize(d.Error(), 60)});
  }
  if (!global.json) {
    std::cout << table.Render();
    std::cout << copies->size() << " message(s) in " << topic << "\n";
  }
  return kExitOk;
}

}  // namespace batchbus::cli
