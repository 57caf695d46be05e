// pacer.h — holds normal and slow jobs back while that makes realtime jobs
// faster, and only then.
//
// A processor that works a large low-priority backlog at full speed keeps
// the broker and the host busy, and every realtime job then waits in line
// for the CPU at each hop (producer, broker, consumer). Strict priority in
// Next() cannot help: the realtime job is late before the processor sees it.
// But realtime jobs are also late for reasons the processor cannot change (a
// busy submitter host, the network, a slow broker, the embedded cluster's
// fetch waits), and then holding work back only costs throughput. So the
// pacer experiments, and keeps a cut only while it helps:
//
// - A realtime message's delay is the time from its producer's timestamp to
//   its arrival. Clocks of two hosts differ by a constant, so the pacer
//   compares each delay with the smallest one seen in the last 10-20 s (the
//   "base"); only the excess counts. Realtime arrivals are judged in windows
//   of 100 ms (and at least 4 messages): a window is late when more than
//   half its messages are more than `target` late.
// - Free (the normal state): nothing is held back; the pacer measures how
//   fast low-priority jobs are taken (the drain rate).
// - A late window while low-priority jobs flow, whose mean excess is at
//   least twice `target`, starts a trial (never in the first second of
//   realtime traffic, while the base is still a guess): for 100 ms the
//   low-priority rate is the floor, a twentieth of the drain rate measured
//   just before: the deepest cut pacing ever makes. There is no absolute
//   floor: a cut is always relative to what the processor was doing.
// - The trial helped when the realtime excess fell by half or the window is
//   no longer late: pacing goes on, the rate growing 50% on good windows and
//   halving on late ones, never below the floor. Once it is back at the
//   drain rate, the pacer is free again.
// - It did not help (or a later cut did not lower the excess): the pacer
//   gives up and is free; it tries again after a backoff that doubles from
//   1 s up to 30 s, so realtime lag the processor cannot influence costs at
//   most a few percent of throughput.
// - No realtime message for `hold`: free.
//
// Not thread-safe: the owner calls it under its lock. Pure: time comes in.
#ifndef BATCHBUS_LIB_PACER_H_
#define BATCHBUS_LIB_PACER_H_

#include <cstdint>
#include <string_view>

#include "absl/time/time.h"

namespace batchbus {

class Pacer {
 public:
  struct Options {
    absl::Duration target = absl::Milliseconds(2);  // Allowed excess delay.
    absl::Duration hold = absl::Seconds(1);         // Pacing after the last
                                                    // realtime message.
  };

  enum class State { kFree, kTrial, kPacing };

  // What the pacer last decided, for the owner's log line and stats.
  struct Decision {
    enum Kind { kNone, kTrial, kPacing, kGaveUp, kRecovered } kind = kNone;
    double rate = 0;          // Low-priority jobs/s allowed (trial, pacing).
    double drain_rate = 0;    // Jobs/s taken just before the trial.
    absl::Duration excess;    // Mean realtime excess of the deciding window.
    absl::Duration retry_in;  // kGaveUp: the next trial is this far off.
  };

  // Above this the rate lets everything through.
  static constexpr double kMaxRate = 1e8;

  explicit Pacer(Options options) : options_(options) {}

  // A realtime message arrived at `now`, `delay` after it was produced.
  void OnRealtime(absl::Time now, absl::Duration delay);

  // Whether a normal or slow job may be handed out at `now`. If not, `wait`
  // is how long until one may. Counts the jobs taken (the drain rate).
  bool TryTake(absl::Time now, absl::Duration& wait);

  // Realtime traffic was seen within `hold`: callers must ask TryTake.
  bool active(absl::Time now) const { return now < active_until_; }
  // False until the first realtime message, and again once TryTake saw that
  // realtime traffic stopped: callers may skip reading the clock.
  bool engaged() const { return active_until_ != absl::InfinitePast(); }
  State state() const { return state_; }
  // The low-priority rate allowed now; kMaxRate when free.
  double rate() const { return state_ == State::kFree ? kMaxRate : rate_; }
  // Low-priority jobs/s taken while free, over the last 100 ms window.
  double drain_rate() const { return drain_rate_; }

  // Decisions so far: each change of state counts once.
  uint64_t decisions() const { return decisions_; }
  const Decision& last_decision() const { return last_; }
  uint64_t trials() const { return trials_; }
  uint64_t gave_up() const { return gave_up_; }

  static std::string_view KindName(Decision::Kind kind);

 private:
  // Realtime arrivals of the current window.
  struct Window {
    absl::Time start = absl::InfinitePast();
    int samples = 0;
    int late = 0;
    absl::Duration excess_sum;
    bool IsLate() const { return 2 * late > samples; }
    absl::Duration Mean() const { return excess_sum / samples; }
  };

  absl::Duration Excess(absl::Time now, absl::Duration delay);
  void Evaluate(absl::Time now);
  void StartTrial(absl::Time now);
  void EndTrial(absl::Time now);
  void Pace(absl::Time now);
  void GiveUp(absl::Time now);
  void Free(Decision::Kind why);
  void Decide(Decision::Kind kind);
  void MeasureDrain(absl::Time now);

  Options options_;
  State state_ = State::kFree;
  absl::Time active_until_ = absl::InfinitePast();

  // Token bucket for trial and pacing.
  double rate_ = kMaxRate;
  double tokens_ = 0;
  absl::Time refilled_ = absl::InfinitePast();

  // Drain rate while free, over windows of 100 ms.
  absl::Time drain_start_ = absl::InfinitePast();
  uint64_t drain_taken_ = 0;
  double drain_rate_ = 0;
  absl::Time last_take_ = absl::InfinitePast();

  Window window_;
  absl::Time phase_start_ = absl::InfinitePast();
  absl::Duration before_excess_;   // Mean excess of the window that began it.
  absl::Duration last_late_excess_ = absl::InfiniteDuration();
  double drain_before_ = 0;
  double floor_ = 0;
  absl::Duration backoff_ = absl::Seconds(1);
  absl::Time retry_after_ = absl::InfinitePast();

  absl::Time first_seen_ = absl::InfinitePast();  // First realtime message.
  // The base: smallest delay in the current and the previous 10 s window.
  absl::Time base_start_ = absl::InfinitePast();
  absl::Duration min_current_ = absl::InfiniteDuration();
  absl::Duration min_previous_ = absl::InfiniteDuration();

  uint64_t decisions_ = 0;
  uint64_t trials_ = 0;
  uint64_t gave_up_ = 0;
  Decision last_;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_PACER_H_
