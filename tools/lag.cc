// batchbus lag: committed and end offsets of a processor's consumer groups,
// and who is in them.
#include <iostream>
#include <map>

#include "strcat.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "admin.h"
#include "cli.h"
#include "group_members.h"
#include "output.h"

namespace batchbus::cli {
namespace {

struct PartitionLag {
  int partition = 0;
  int64_t committed = -1;  // -1: the group committed nothing here.
  int64_t low = 0;
  int64_t end = 0;
  int64_t lag() const { return committed >= 0 ? end - committed : end - low; }
};

// Committed offsets of `group` and watermarks of every partition of
// `topic`.
absl::StatusOr<std::vector<PartitionLag>> ReadLag(const Config& config,
                                                  const std::string& group,
                                                  const std::string& topic,
                                                  int partitions) {
  auto rk = NewReader(config, group);
  if (!rk.ok()) return rk.status();
  kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(partitions));
  for (int p = 0; p < partitions; ++p) {
    rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), p);
  }
  if (rd_kafka_resp_err_t e = rd_kafka_committed(
          rk->get(), list.get(), kafka::ToMillis(kAdminTimeout))) {
    return kafka::ToStatus(
        e, StrCat("reading the committed offsets of group ", group));
  }
  std::vector<PartitionLag> out;
  for (int i = 0; i < list->cnt; ++i) {
    const rd_kafka_topic_partition_t& tp = list->elems[i];
    PartitionLag l;
    l.partition = tp.partition;
    l.committed = tp.err == RD_KAFKA_RESP_ERR_NO_ERROR ? tp.offset : -1;
    if (l.committed < 0) l.committed = -1;
    if (rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
            rk->get(), topic.c_str(), tp.partition, &l.low, &l.end,
            kafka::ToMillis(kAdminTimeout))) {
      return kafka::ToStatus(e, StrCat("reading the end offsets of ",
                                             topic, "[", tp.partition, "]"));
    }
    out.push_back(l);
  }
  rd_kafka_consumer_close(rk->get());
  return out;
}

std::string Offset(int64_t o) { return o < 0 ? "-" : StrCat(o); }

}  // namespace

int RunLag(const Config& config, const GlobalOptions& global,
           const LagOptions& o) {
  auto rk = NewReader(config, "");
  if (!rk.ok()) {
    std::cerr << "batchbus lag: " << rk.status().message() << "\n";
    return ExitFor(rk.status());
  }
  auto topics = ListTopics(rk->get());
  if (!topics.ok()) {
    std::cerr << "batchbus lag: " << topics.status().message() << "\n";
    return ExitFor(topics.status());
  }
  auto processors = ChooseProcessors(config, *topics, o.processor);
  if (!processors.ok()) {
    std::cerr << "batchbus lag: " << processors.status().message() << "\n";
    return kExitFailed;
  }

  Table lag_table({"processor", "priority", "topic", "partition", "committed",
                   "end", "lag"});
  Table member_table({"processor", "group", "state", "members"});
  bool failed = false;
  for (const std::string& p : *processors) {
    std::map<std::string, bool> groups;  // In first-seen order below.
    std::vector<std::string> group_order;
    for (const TopicSpec& t : TopicsFor(config, p)) {
      if (t.group.empty()) continue;
      if (!groups.count(t.group)) {
        groups[t.group] = true;
        group_order.push_back(t.group);
      }
      const bool delay = !t.priority.has_value();
      const std::string what =
          t.priority ? std::string(PriorityName(*t.priority)) : t.role;
      auto it = topics->find(t.name);
      if (it == topics->end()) {
        if (!delay) {
          if (global.json) {
            std::cout << JsonLine().Str("processor", p).Str("priority", what)
                             .Str("topic", t.name).Str("group", t.group)
                             .Bool("exists", false).Done()
                      << "\n";
          } else {
            lag_table.AddRow({p, what, t.name, "-", "-", "-", "missing"});
          }
        }
        continue;
      }
      auto lags = ReadLag(config, t.group, t.name, it->second);
      if (!lags.ok()) {
        std::cerr << "batchbus lag: " << lags.status().message() << "\n";
        failed = true;
        continue;
      }
      int64_t tier_end = 0, tier_lag = 0;
      for (const PartitionLag& l : *lags) {
        if (global.json) {
          JsonLine j;
          j.Str("processor", p).Str("priority", what).Str("topic", t.name)
              .Str("group", t.group).Int("partition", l.partition);
          if (l.committed >= 0) {
            j.Int("committed", l.committed);
          } else {
            j.Null("committed");
          }
          j.Int("end", l.end).Int("lag", l.lag());
          std::cout << j.Done() << "\n";
        } else if (!delay) {
          lag_table.AddRow({p, what, t.name, StrCat(l.partition),
                            Offset(l.committed), StrCat(l.end),
                            StrCat(l.lag())});
        }
        tier_end += l.end;
        tier_lag += l.lag();
      }
      // Delay tiers hold jobs that wait on purpose: one line per tier,
      // and only when something is (or was) in it.
      if (delay && !global.json && tier_end > 0) {
        lag_table.AddRow({p, what, t.name, "all", "-", StrCat(tier_end),
                          StrCat(tier_lag)});
      }
    }
    for (const std::string& g : group_order) {
      auto members = DescribeGroup(rk->get(), g);
      if (global.json) {
        JsonLine j;
        j.Str("processor", p).Str("group", g);
        if (!members.ok()) {
          j.Str("error", std::string(members.status().message()));
        } else {
          j.Str("state", members->state);
          std::string list = "[";
          for (size_t i = 0; i < members->members.size(); ++i) {
            const GroupMember& m = members->members[i];
            if (i > 0) list += ",";
            list += JsonLine()
                        .Str("client_id", m.client_id)
                        .Str("host", m.client_host)
                        .Str("member_id", m.member_id)
                        .Str("assignment", m.AssignmentText())
                        .Done();
          }
          list += "]";
          j.Raw("members", list);
        }
        std::cout << j.Done() << "\n";
        continue;
      }
      if (!members.ok()) {
        member_table.AddRow({p, g, "?", std::string(members.status().message())});
        continue;
      }
      std::vector<std::string> names;
      for (const GroupMember& m : members->members) {
        names.push_back(StrCat(m.client_id, "@", m.client_host,
                                     m.assignment.empty() ? "" : " ",
                                     m.AssignmentText()));
      }
      member_table.AddRow({p, g, members->state,
                           names.empty() ? "(none)" : absl::StrJoin(names, "; ")});
    }
  }
  if (!global.json) {
    std::cout << lag_table.Render() << "\n" << member_table.Render();
  }
  return failed ? kExitFailed : kExitOk;
}

}  // namespace batchbus::cli
