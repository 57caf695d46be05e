// Delay tiers: where jobs wait that may not be handed out yet (delayed jobs,
// retries). Each tier is a topic, "{namespace}.{processor}.delay-<name>",
// whose messages all wait the tier's delay from the moment they were
// written, so a partition's head is always its next message due: the delay
// line pauses the partition until then (lib/delay_line.h). A job due later
// than its tier's delay is passed on to the tier that fits what is left,
// and to its priority's job topic once due. Nothing waits in memory.
//
// A message in a tier is a one-job batch (docs/wire-format.md) whose job
// carries its original seq and index, so its result finds its submitter's
// job; its headers say its priority and when it is due.
#ifndef BATCHBUS_LIB_DELAY_TIERS_H_
#define BATCHBUS_LIB_DELAY_TIERS_H_

#include <array>
#include <string>
#include <string_view>

#include "strcat.h"
#include "absl/time/time.h"
#include "batchbus/config.h"

namespace batchbus {

struct DelayTier {
  std::string_view name;
  absl::Duration delay;
};

inline constexpr std::array<DelayTier, 6> kDelayTiers = {{
    {"250ms", absl::Milliseconds(250)},
    {"1s", absl::Seconds(1)},
    {"5s", absl::Seconds(5)},
    {"30s", absl::Seconds(30)},
    {"5m", absl::Minutes(5)},
    {"1h", absl::Hours(1)},
}};

// Headers of a message in a tier.
inline constexpr char kPriorityHeader[] = "batchbus.priority";
inline constexpr char kDueHeader[] = "batchbus.due_ms";

inline std::string DelayTopic(const Config& config, std::string_view processor,
                              const DelayTier& tier) {
  return StrCat(config.ns, ".", processor, ".delay-", tier.name);
}

// The tier for a job due `left` from now: the longest one that does not
// pass its due time, or the shortest.
inline const DelayTier& DelayTierFor(absl::Duration left) {
  const DelayTier* best = &kDelayTiers[0];
  for (const DelayTier& t : kDelayTiers) {
    if (t.delay <= left) best = &t;
  }
  return *best;
}

}  // namespace batchbus

#endif  // BATCHBUS_LIB_DELAY_TIERS_H_
