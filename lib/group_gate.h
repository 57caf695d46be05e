// Group gate: per-group rate limits (Config::group_max_rate, jobs/s) and
// pauses (Processor::PauseGroup). It says when a job of a group may be
// handed out; one that may not go now is sent to a delay tier until its
// slot, with the slot already taken (wire field `reserved`), so a held job
// never holds back a job of another group or priority, and held jobs wait
// in Kafka, not in memory. When a pause ends, the held jobs come back one
// slot apart at the group's rate (all at once for a group without one).
//
// The rate is a processor instance's: n processors of one name together
// hand out up to n times max_rate.
//
// Pure: no Kafka, no clock of its own (callers pass `now`). Threads: not
// thread-safe; the processor calls it under its state lock.
#ifndef BATCHBUS_LIB_GROUP_GATE_H_
#define BATCHBUS_LIB_GROUP_GATE_H_

#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"

namespace batchbus {

class GroupGate {
 public:
  explicit GroupGate(const std::map<std::string, double, std::less<>>& rates);

  // True when no group has a rate or a pause: every job goes at once.
  bool open() const { return gates_.empty(); }

  // When the next job of `group` may be handed out: `now`, or later (the
  // slot it takes). `reserved`: the job already took its slot, and goes
  // unless its group is paused.
  absl::Time Admit(std::string_view group, bool reserved, absl::Time now);

  // Holds `group` until `until` (the past: resumes it).
  void Pause(std::string_view group, absl::Time until);

 private:
  struct Gate {
    absl::Duration interval = absl::ZeroDuration();  // 1 / rate; 0: no rate.
    absl::Time next_free = absl::InfinitePast();
    absl::Time paused_until = absl::InfinitePast();
  };
  absl::flat_hash_map<std::string, Gate> gates_;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_GROUP_GATE_H_
