// Answers: a Task's result goes to the result batcher, and a Task that lets
// go of its job lets its batch be committed or freed.
#include <string>

#include "json.h"
#include "processor_core.h"
#include "strcat.h"

namespace batchbus {

absl::Status ProcessorCore::Answerable(const Task::State& state) const {
  if (closed_) {
    return absl::FailedPreconditionError(
        "the processor is closed; the job's batch is processed again by "
        "the next owner of its partition");
  }
  if (state.answered) {
    return absl::FailedPreconditionError("job was already answered");
  }
  return absl::OkStatus();
}

void ProcessorCore::RecordHandlerTime(const Task::State& state,
                                      absl::Time now) {
  const std::string_view group = state.batch->decoded.jobs[state.index].group;
  // Most jobs in a row share a group: no hash lookup for those.
  if (last_handler_time_ != nullptr && group == last_handler_group_) {
    last_handler_time_->Record(now - state.handed_at);
    return;
  }
  // Group names come from the jobs: past kMaxGroups, the rest share one.
  constexpr size_t kMaxGroups = 256;
  auto it = handler_time_.find(ToAbsl(group));
  if (it == handler_time_.end()) {
    const std::string_view key =
        handler_time_.size() < kMaxGroups ? group : "(other)";
    it = handler_time_.try_emplace(std::string(key), nullptr).first;
    if (it->second == nullptr) it->second = std::make_unique<Histogram>();
  }
  if (it->first == group) {
    last_handler_group_ = it->first;
    last_handler_time_ = it->second.get();
  }
  it->second->Record(now - state.handed_at);
}

absl::Status ProcessorCore::Answer(Task::State* state, bool ok,
                                   std::string_view text) {
  // An error message is for people: cap it rather than refuse it.
  constexpr size_t kMaxErrorBytes = 16 * 1024;
  std::string capped;
  if (ok) {
    if (auto s = json::Validate(text, "result"); !s.ok()) return s;
    text = json::TrimWhitespace(text);
  } else if (text.size() > kMaxErrorBytes) {
    capped = StrCat(text.substr(0, kMaxErrorBytes), "... (truncated)");
    text = capped;
  }
  if (ResultBatcher::EntryBytes(ok, text) + wire::kResultOverhead >
      config_.max_message_bytes) {
    return absl::InvalidArgumentError(StrCat(
        "result of ", text.size(), " bytes does not fit in one message ",
        "(max_message_bytes = ", config_.max_message_bytes, ")"));
  }
  std::vector<std::unique_ptr<OutMessage>> sealed;
  bool opened = false;
  {
    MutexLock lock(&mu_);
    if (absl::Status s = Answerable(*state); !s.ok()) return s;
    state->answered = true;
    RecordHandlerTime(*state, absl::Now());
    opened = results_.Add(state->batch, state->index, ok, text,
                          [] { return absl::Now(); }, sealed);
    if (!ok && config_.dead_letter_failed_jobs) {
      const wire::JobFields& f = state->batch->decoded.jobs[state->index].fields;
      sealed.push_back(FailedJobCopy(
          state->batch, state->index, text,
          f.first_attempt_ms != 0 ? f.first_attempt_ms
                                  : absl::ToUnixMillis(absl::Now())));
      counters_.jobs_dead_lettered.Add();
    }
    unsent_ += sealed.size();
    if (--outstanding_answers_ == 0) done_cv_.SignalAll();
  }
  (ok ? counters_.answered_ok : counters_.answered_error).Add();
  if (opened) wakeup_.Notify();  // The poller seals it when it lingered.
  Send(sealed);
  return absl::OkStatus();
}

absl::Status ProcessorCore::Progress(Task::State* state, std::string_view json) {
  if (auto s = json::Validate(json, "progress"); !s.ok()) return s;
  json = json::TrimWhitespace(json);
  if (ResultBatcher::EntryBytes(true, json) + wire::kResultOverhead >
      config_.max_message_bytes) {
    return absl::InvalidArgumentError(StrCat(
        "progress of ", json.size(), " bytes does not fit in one message ",
        "(max_message_bytes = ", config_.max_message_bytes, ")"));
  }
  const wire::JobFields& fields =
      state->batch->decoded.jobs[state->index].fields;
  std::vector<std::unique_ptr<OutMessage>> sealed;
  bool opened = false;
  {
    MutexLock lock(&mu_);
    if (closed_) return absl::FailedPreconditionError("the processor is closed");
    if (state->answered) {
      return absl::FailedPreconditionError("job was already answered");
    }
    if (!fields.events) return absl::OkStatus();  // Nobody asked.
    opened = results_.AddEvent(state->batch, state->index,
                               wire::ResultEntry::Kind::kProgress, json,
                               [] { return absl::Now(); }, sealed);
    unsent_ += sealed.size();
  }
  if (opened) wakeup_.Notify();
  Send(sealed);
  return absl::OkStatus();
}

// A Task lets go of its job. Returns false, releasing nothing, when the job
// was never answered and can still be: the caller answers it first.
bool ProcessorCore::Release(Task::State* state, bool& last) {
  Commits commits;
  {
    MutexLock lock(&mu_);
    if (!state->answered) {
      if (!closed_) return false;
      --outstanding_answers_;  // Left unanswered: its batch stays uncommitted.
    }
    InBatch* batch = state->batch;
    state->core = nullptr;
    --batch->live;
    last = --tasks_out_ == 0 && orphaned_;
    Settle(batch, commits);
  }
  Store(commits);
  return true;
}

// ------------------------------------------------------------------ Task

Task::Task(Task&& other) noexcept : state_(std::exchange(other.state_, nullptr)) {}

Task& Task::operator=(Task&& other) noexcept {
  if (this != &other) {
    Reset();
    state_ = std::exchange(other.state_, nullptr);
  }
  return *this;
}

Task::~Task() { Reset(); }

// Lets go of the job, failing it first when it was not answered.
void Task::Reset() {
  if (state_ == nullptr) return;
  ProcessorCore* core = state_->core;
  bool last = false;
  if (!core->Release(state_, last)) {
    (void)core->Answer(state_, false, "handler returned without answering the job");
    core->Release(state_, last);
  }
  state_ = nullptr;
  if (last) delete core;  // The Processor is gone, and this was its last Task.
}

const JobId& Task::id() const { return state_->batch->decoded.jobs[state_->index].id; }
std::string_view Task::processor() const { return state_->batch->decoded.processor; }
std::string_view Task::group() const {
  return state_->batch->decoded.jobs[state_->index].group;
}
Priority Task::priority() const { return state_->batch->priority; }
std::string_view Task::data() const {
  return state_->batch->decoded.jobs[state_->index].data;
}

uint32_t Task::attempt() const {
  return state_->batch->decoded.jobs[state_->index].fields.attempt;
}

absl::Time Task::deadline() const {
  const int64_t ms = state_->batch->decoded.jobs[state_->index].fields.deadline_ms;
  return ms == 0 ? absl::InfiniteFuture() : absl::FromUnixMillis(ms);
}

std::string_view Task::traceparent() const {
  return state_->batch->decoded.jobs[state_->index].fields.traceparent;
}

std::string_view Task::tracestate() const {
  return state_->batch->decoded.jobs[state_->index].fields.tracestate;
}

absl::Status Task::Progress(std::string_view json) {
  if (state_ == nullptr) return absl::FailedPreconditionError("empty task");
  return state_->core->Progress(state_, json);
}

bool Task::answered() const {
  return state_ == nullptr || state_->core->Answered(state_);
}

absl::Status Task::Complete(std::string_view result_json) {
  if (state_ == nullptr) return absl::FailedPreconditionError("empty task");
  return state_->core->Answer(state_, true, result_json);
}

absl::Status Task::Fail(std::string_view error) {
  if (state_ == nullptr) return absl::FailedPreconditionError("empty task");
  return state_->core->Answer(state_, false, error);
}

}  // namespace batchbus
