#include "group_gate.h"

#include <algorithm>

namespace batchbus {

GroupGate::GroupGate(const std::map<std::string, double, std::less<>>& rates) {
  for (const auto& [group, rate] : rates) {
    if (rate > 0) gates_[group].interval = absl::Seconds(1) / rate;
  }
}

absl::Time GroupGate::Admit(std::string_view group, bool reserved,
                            absl::Time now) {
  auto it = gates_.find(absl::string_view(group.data(), group.size()));
  if (it == gates_.end()) return now;
  Gate& g = it->second;
  const absl::Time start = std::max(now, g.paused_until);
  if (reserved && start == now) return now;
  if (g.interval == absl::ZeroDuration()) return start;
  // One slot every interval, none saved up while idle: a burst is spread,
  // never let through at once.
  const absl::Time slot = std::max(start, g.next_free);
  g.next_free = slot + g.interval;
  return slot;
}

void GroupGate::Pause(std::string_view group, absl::Time until) {
  gates_[std::string(group)].paused_until = until;
}

}  // namespace batchbus
