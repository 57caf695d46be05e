#include "status_book.h"

namespace batchbus {

void StatusBook::Submitted(const JobId& id) {
  Submitter::JobState& s = jobs_[id];
  s = Submitter::JobState{};
  s.result.job_id = id;
}

void StatusBook::Event(const JobEvent& event) {
  auto it = jobs_.find(event.job_id);
  if (it == jobs_.end() || it->second.phase == Submitter::JobState::kEnded) {
    return;
  }
  Submitter::JobState& s = it->second;
  s.attempt = event.attempt;
  if (event.kind == JobEvent::Kind::kStarted) {
    s.phase = Submitter::JobState::kStarted;
  } else {
    s.phase = Submitter::JobState::kProgress;
    s.progress = event.data;
  }
}

void StatusBook::Ended(const JobResult& result, absl::Time now) {
  auto it = jobs_.find(result.job_id);
  if (it == jobs_.end() || it->second.phase == Submitter::JobState::kEnded) {
    return;
  }
  it->second.phase = Submitter::JobState::kEnded;
  it->second.result = result;
  if (result.attempts > 0) it->second.attempt = result.attempts;
  ended_.emplace_back(now, result.job_id);
}

void StatusBook::Forget(absl::Time now) {
  while (!ended_.empty() && ended_.front().first + retention_ <= now) {
    auto it = jobs_.find(ended_.front().second);
    // A job resubmitted with the same id after it ended is held again.
    if (it != jobs_.end() && it->second.phase == Submitter::JobState::kEnded) {
      jobs_.erase(it);
    }
    ended_.pop_front();
  }
}

std::optional<Submitter::JobState> StatusBook::Find(const JobId& id) const {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return std::nullopt;
  return it->second;
}

}  // namespace batchbus
