#include "pacer.h"

#include <algorithm>

namespace batchbus {
namespace {

constexpr absl::Duration kWindow = absl::Seconds(10);
constexpr absl::Duration kCutInterval = absl::Milliseconds(10);
// A cut divides the rate by excess / target, between 2 and this.
constexpr double kMaxCut = 16;
// Growth: up to +50% per 100 ms of good samples.
constexpr absl::Duration kRaiseSpan = absl::Milliseconds(100);
constexpr double kRaisePerSpan = 0.5;
// Tokens saved up at most: 2 ms of the rate, and at least one job.
constexpr double kBurstSeconds = 0.002;

}  // namespace

void Pacer::OnRealtime(absl::Time now, absl::Duration delay) {
  if (now - window_start_ >= kWindow) {
    min_previous_ = min_current_;
    min_current_ = absl::InfiniteDuration();
    window_start_ = now;
  }
  min_current_ = std::min(min_current_, delay);
  const absl::Duration excess = delay - std::min(min_current_, min_previous_);

  if (!active(now)) {
    rate_ = kStartRate;
    tokens_ = 1;
    refilled_ = now;
    last_raise_ = now;
  }
  active_until_ = now + options_.hold;

  if (excess > options_.target) {
    if (now - last_cut_ >= kCutInterval) {
      // The later the message, the deeper the cut: a backlog that just
      // started at full speed is brought down in a few steps, not ten.
      const double factor = std::clamp(
          absl::FDivDuration(excess, options_.target), 2.0, kMaxCut);
      rate_ = std::max(rate_ / factor, options_.min_rate);
      last_cut_ = now;
    }
    last_raise_ = now;
    return;
  }
  const double span = absl::FDivDuration(
      std::min(now - last_raise_, kRaiseSpan), kRaiseSpan);
  rate_ = std::min(rate_ * (1 + kRaisePerSpan * span), kMaxRate);
  last_raise_ = now;
}

bool Pacer::TryTake(absl::Time now, absl::Duration& wait) {
  if (!active(now)) {
    active_until_ = absl::InfinitePast();
    return true;
  }
  if (rate_ >= kMaxRate) return true;
  const double burst = std::max(1.0, rate_ * kBurstSeconds);
  tokens_ = std::min(
      burst, tokens_ + rate_ * absl::ToDoubleSeconds(now - refilled_));
  refilled_ = now;
  if (tokens_ >= 1) {
    tokens_ -= 1;
    return true;
  }
  wait = std::max(absl::Seconds((1 - tokens_) / rate_), absl::Microseconds(1));
  return false;
}

}  // namespace batchbus
