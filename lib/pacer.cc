#include "pacer.h"

#include <algorithm>

namespace batchbus {
namespace {

constexpr absl::Duration kBaseWindow = absl::Seconds(10);
// No trial before realtime messages have been seen this long: until then
// the base (the quickest delay) is a guess, and a start-up's warm-up
// delays would look like lateness.
constexpr absl::Duration kWarmup = absl::Seconds(1);
// Realtime arrivals are judged per window of at least this long...
constexpr absl::Duration kWindow = absl::Milliseconds(100);
// ...and this many messages.
constexpr int kMinSamples = 4;
// A trial lasts this long; its first kSettle is not judged (queues built
// before the cut still drain then).
constexpr absl::Duration kTrialSpan = absl::Milliseconds(100);
constexpr absl::Duration kSettle = absl::Milliseconds(20);
// A trial whose first kEarly of judged arrivals are no less late than
// before the cut ends there: it is not going to help.
constexpr absl::Duration kEarly = absl::Milliseconds(30);
// The lowest rate pacing goes to, as a part of the drain rate measured
// before the trial; the trial runs at it. Deep: on a broker that shares the
// processor's cores, a quarter of the drain rate still left realtime
// messages 100-500 ms late under a 1M-job backlog, while a twentieth
// brought them to about 10 ms (docs/design.md). A trial that does not help
// costs 100 ms of low-priority work, spaced out by the backoff.
constexpr double kFloorFraction = 0.05;
// A cut helped when the mean excess fell at least to this part.
constexpr double kHelped = 0.5;
// In pacing, a cut after a late window must bring the next late window's
// excess to this part of the one before, or the pacer gives up.
constexpr double kImproving = 0.8;
constexpr double kRaise = 1.5;
constexpr absl::Duration kMinBackoff = absl::Seconds(1);
constexpr absl::Duration kMaxBackoff = absl::Seconds(30);
// Tokens saved up at most: 2 ms of the rate, and at least one job.
constexpr double kBurstSeconds = 0.002;

}  // namespace

std::string_view Pacer::KindName(Decision::Kind kind) {
  switch (kind) {
    case Decision::kNone: return "none";
    case Decision::kTrial: return "trial";
    case Decision::kPacing: return "pacing";
    case Decision::kGaveUp: return "gave up";
    case Decision::kRecovered: return "recovered";
  }
  return "unknown";
}

absl::Duration Pacer::Excess(absl::Time now, absl::Duration delay) {
  if (first_seen_ == absl::InfinitePast()) first_seen_ = now;
  if (now - base_start_ >= kBaseWindow) {
    min_previous_ = min_current_;
    min_current_ = absl::InfiniteDuration();
    base_start_ = now;
  }
  min_current_ = std::min(min_current_, delay);
  return delay - std::min(min_current_, min_previous_);
}

void Pacer::OnRealtime(absl::Time now, absl::Duration delay) {
  const absl::Duration excess = Excess(now, delay);
  if (!active(now)) {
    Free(Decision::kNone);
    window_ = Window();
    window_.start = now;
    drain_start_ = now;
    drain_taken_ = 0;
  }
  active_until_ = now + options_.hold;
  if (state_ == State::kTrial && now - phase_start_ < kSettle) return;
  // Outliers count as late, but no single one as more than 20 targets.
  window_.excess_sum += std::min(excess, 20 * options_.target);
  ++window_.samples;
  if (excess > options_.target) ++window_.late;
  if (state_ == State::kTrial && now - phase_start_ >= kSettle + kEarly &&
      window_.samples >= kMinSamples && window_.IsLate() &&
      window_.Mean() >= before_excess_) {
    GiveUp(now);
    window_ = Window();
    window_.start = now;
    return;
  }
  const absl::Duration span = state_ == State::kTrial ? kTrialSpan : kWindow;
  if (now - window_.start >= span && window_.samples >= kMinSamples) {
    Evaluate(now);
    window_ = Window();
    window_.start = now;
  }
}

void Pacer::Evaluate(absl::Time now) {
  switch (state_) {
    case State::kFree:
      // Only a flowing low-priority load can be the cause.
      // Lateness of about the target is noise (the fetch and linger of
      // the path); only a clear excess is worth a trial.
      if (window_.IsLate() && window_.Mean() >= 2 * options_.target &&
          now >= retry_after_ && drain_rate_ > 0 &&
          now - last_take_ < kWindow && now - first_seen_ >= kWarmup) {
        StartTrial(now);
      }
      return;
    case State::kTrial:
      EndTrial(now);
      return;
    case State::kPacing:
      Pace(now);
      return;
  }
}

void Pacer::StartTrial(absl::Time now) {
  drain_before_ = drain_rate_;
  // At least one job a second: a rate of zero would never recover.
  floor_ = std::max(drain_before_ * kFloorFraction, 1.0);
  before_excess_ = window_.Mean();
  rate_ = floor_;
  tokens_ = 1;
  refilled_ = now;
  phase_start_ = now;
  state_ = State::kTrial;
  ++trials_;
  Decide(Decision::kTrial);
}

void Pacer::EndTrial(absl::Time now) {
  const absl::Duration excess = window_.Mean();
  if (window_.IsLate() && excess > before_excess_ * kHelped) {
    GiveUp(now);
    return;
  }
  state_ = State::kPacing;
  backoff_ = kMinBackoff;
  last_late_excess_ = absl::InfiniteDuration();
  Decide(Decision::kPacing);
}

void Pacer::Pace(absl::Time now) {
  if (!window_.IsLate()) {
    last_late_excess_ = absl::InfiniteDuration();
    rate_ *= kRaise;
    if (rate_ >= drain_before_) Free(Decision::kRecovered);
    return;
  }
  const absl::Duration excess = window_.Mean();
  if (excess > last_late_excess_ * kImproving || rate_ <= floor_) {
    // The last cut did not lower the delay, or there is nothing left to
    // cut: holding work back does not help now.
    GiveUp(now);
    return;
  }
  last_late_excess_ = excess;
  rate_ = std::max(rate_ / 2, floor_);
}

void Pacer::GiveUp(absl::Time now) {
  retry_after_ = now + backoff_;
  ++gave_up_;
  Free(Decision::kGaveUp);
  last_.retry_in = backoff_;
  backoff_ = std::min(2 * backoff_, kMaxBackoff);
}

void Pacer::Free(Decision::Kind why) {
  const bool was_held = state_ != State::kFree;
  state_ = State::kFree;
  rate_ = kMaxRate;
  drain_start_ = absl::InfinitePast();
  if (was_held && why != Decision::kNone) Decide(why);
}

void Pacer::Decide(Decision::Kind kind) {
  ++decisions_;
  last_ = Decision{kind, state_ == State::kFree ? kMaxRate : rate_,
                   drain_before_, window_.samples ? window_.Mean()
                                                  : absl::ZeroDuration(),
                   absl::ZeroDuration()};
}

void Pacer::MeasureDrain(absl::Time now) {
  if (drain_start_ == absl::InfinitePast()) {
    drain_start_ = now;
    drain_taken_ = 0;
  }
  ++drain_taken_;
  last_take_ = now;
  const absl::Duration elapsed = now - drain_start_;
  if (elapsed < kWindow) return;
  drain_rate_ = static_cast<double>(drain_taken_) /
                absl::ToDoubleSeconds(elapsed);
  drain_start_ = now;
  drain_taken_ = 0;
}

bool Pacer::TryTake(absl::Time now, absl::Duration& wait) {
  if (!active(now)) {
    active_until_ = absl::InfinitePast();
    Free(Decision::kNone);
    drain_rate_ = 0;
    return true;
  }
  if (state_ == State::kFree) {
    MeasureDrain(now);
    return true;
  }
  const double burst = std::max(1.0, rate_ * kBurstSeconds);
  tokens_ = std::min(
      burst, tokens_ + rate_ * absl::ToDoubleSeconds(now - refilled_));
  refilled_ = now;
  if (tokens_ >= 1) {
    tokens_ -= 1;
    return true;
  }
  // Rounded up, so that after `wait` the next token is there.
  wait = std::max(absl::Seconds((1 - tokens_) / rate_) + absl::Nanoseconds(1),
                  absl::Microseconds(1));
  return false;
}

}  // namespace batchbus
