// batchbus topics: which topics a processor uses and whether they exist.
#include <iostream>
#include <set>

#include "strcat.h"
#include "absl/strings/str_cat.h"
#include "admin.h"
#include "cli.h"
#include "output.h"

namespace batchbus::cli {

int RunTopics(const Config& config, const GlobalOptions& global,
              const TopicsOptions& o) {
  auto rk = NewReader(config, "");
  if (!rk.ok()) {
    std::cerr << "batchbus topics: " << rk.status().message() << "\n";
    return ExitFor(rk.status());
  }
  auto topics = ListTopics(rk->get());
  if (!topics.ok()) {
    std::cerr << "batchbus topics: " << topics.status().message() << "\n";
    return ExitFor(topics.status());
  }
  auto processors = ChooseProcessors(config, *topics, o.processor);
  if (!processors.ok()) {
    std::cerr << "batchbus topics: " << processors.status().message() << "\n";
    return kExitFailed;
  }

  std::set<std::string> created;
  if (o.create) {
    std::vector<std::string> missing;
    for (const std::string& p : *processors) {
      for (const TopicSpec& t : TopicsFor(config, p)) {
        if (!topics->count(t.name)) missing.push_back(t.name);
      }
    }
    if (!missing.empty()) {
      Config creating = config;
      creating.create_topics = true;
      if (absl::Status s = kafka::EnsureTopics(rk->get(), creating, missing,
                                               absl::Seconds(30));
          !s.ok()) {
        std::cerr << "batchbus topics: " << s.message() << "\n";
        return ExitFor(s);
      }
      created.insert(missing.begin(), missing.end());
      auto again = ListTopics(rk->get());
      if (!again.ok()) {
        std::cerr << "batchbus topics: " << again.status().message() << "\n";
        return ExitFor(again.status());
      }
      *topics = std::move(*again);
    }
  }

  int missing = 0;
  Table table({"processor", "topic", "role", "partitions", "expected",
               "state"});
  for (const std::string& p : *processors) {
    for (const TopicSpec& t : TopicsFor(config, p)) {
      auto it = topics->find(t.name);
      std::string state;
      if (it == topics->end()) {
        state = "MISSING";
        ++missing;
      } else if (created.count(t.name)) {
        state = "created";
      } else if (it->second != config.topic_partitions) {
        state = "ok (partitions differ from topic_partitions)";
      } else {
        state = "ok";
      }
      const int partitions = it == topics->end() ? 0 : it->second;
      if (global.json) {
        JsonLine j;
        j.Str("processor", p).Str("topic", t.name).Str("role", t.role);
        j.Bool("exists", it != topics->end());
        if (it != topics->end()) j.Int("partitions", partitions);
        j.Int("expected_partitions", config.topic_partitions);
        j.Bool("created", created.count(t.name) > 0);
        std::cout << j.Done() << "\n";
      } else {
        table.AddRow({p, t.name, t.role,
                      it == topics->end() ? "-" : StrCat(partitions),
                      StrCat(config.topic_partitions), state});
      }
    }
  }
  if (!global.json) {
    std::cout << table.Render();
    if (missing > 0) {
      std::cout << "\n" << missing
                << " topic(s) missing: `batchbus topics --create` creates "
                   "them, or a Submitter or Processor does at start with "
                   "create_topics = true\n";
    }
  }
  return missing > 0 ? kExitFailed : kExitOk;
}

}  // namespace batchbus::cli
