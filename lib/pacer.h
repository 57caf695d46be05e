// pacer.h — paces normal and slow jobs while realtime jobs arrive late.
//
// A processor that works a large low-priority backlog at full speed keeps
// the broker and the host busy, and every realtime job then waits in line
// for the CPU at each hop (producer, broker, consumer). Strict priority in
// Next() cannot help: the realtime job is late before the processor sees it.
//
// The pacer watches how late realtime messages reach the processor and, only
// while realtime traffic is flowing, limits how fast normal and slow jobs are
// handed out (additive-increase/multiplicative-decrease, like TCP):
//
// - A realtime message's delay is the time from its producer's timestamp to
//   its arrival. Clocks of two hosts differ by a constant, so the pacer
//   compares each delay with the smallest one seen in the last 10-20 s (the
//   "base"); only the excess counts as queueing.
// - Excess above `target`: the low-priority rate is divided by
//   excess / target, by 2 at least and 16 at most (at most once per 10 ms,
//   never below `min_rate`).
// - Excess within `target`: the rate grows by up to 50% per 100 ms.
// - No realtime message for `hold`: pacing stops; low priorities run free.
//
// Not thread-safe: the processor calls it under its mutex.
#ifndef BATCHBUS_LIB_PACER_H_
#define BATCHBUS_LIB_PACER_H_

#include "absl/time/time.h"

namespace batchbus {

class Pacer {
 public:
  struct Options {
    absl::Duration target = absl::Milliseconds(2);  // Allowed excess delay.
    double min_rate = 1000;                         // Jobs/s, at least.
    absl::Duration hold = absl::Seconds(1);         // Pacing after the last
                                                    // realtime message.
  };

  // The rate pacing starts from, and above which it lets everything through.
  static constexpr double kStartRate = 1e6;
  static constexpr double kMaxRate = 1e8;

  explicit Pacer(Options options) : options_(options) {}

  // A realtime message arrived at `now`, `delay` after it was produced.
  void OnRealtime(absl::Time now, absl::Duration delay);

  // Whether a normal or slow job may be handed out at `now`. If not, `wait`
  // is how long until one may.
  bool TryTake(absl::Time now, absl::Duration& wait);

  bool active(absl::Time now) const { return now < active_until_; }
  // False until the first realtime message, and again once TryTake saw that
  // pacing ended: callers may skip reading the clock.
  bool engaged() const { return active_until_ != absl::InfinitePast(); }
  double rate() const { return rate_; }

 private:
  Options options_;
  absl::Time active_until_ = absl::InfinitePast();
  double rate_ = kStartRate;
  double tokens_ = 0;
  absl::Time refilled_ = absl::InfinitePast();
  absl::Time last_cut_ = absl::InfinitePast();
  absl::Time last_raise_ = absl::InfinitePast();
  // Smallest delay in the current and the previous 10 s window.
  absl::Time window_start_ = absl::InfinitePast();
  absl::Duration min_current_ = absl::InfiniteDuration();
  absl::Duration min_previous_ = absl::InfiniteDuration();
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_PACER_H_
