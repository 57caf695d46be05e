// Retries and delays: a job that may not run now is written back to Kafka,
// to the delay tier that fits its due time (lib/delay_tiers.h), as a
// one-job batch that keeps its submitter's seq and index. The original
// counts as answered only once that copy is acknowledged, so its batch is
// committed only then: a retry survives a processor crash. A job with no
// retry left ends failed and is copied to the dead letter topic.
#include <algorithm>
#include <cmath>
#include <string>

#include "delay_tiers.h"
#include "processor_core.h"
#include "strcat.h"

namespace batchbus {
namespace {

// Exponential with up to 20% of jitter either way, capped (jitter
// included).
absl::Duration Backoff(const RetryPolicy& policy, uint32_t attempt) {
  double scale = std::pow(policy.multiplier, static_cast<double>(attempt - 1));
  const double jitter =
      0.8 + 0.4 * static_cast<double>(JobId::Random().lo() >> 11) * 0x1.0p-53;
  return std::min(policy.initial_delay * std::min(scale, 1e9) * jitter,
                  policy.max_delay);
}

std::string Origin(const Config& config, std::string_view processor,
                   const InBatch& batch) {
  return StrCat(config.TopicFor(processor, batch.priority), "[",
                batch.partition, "]@", batch.offset);
}

}  // namespace

std::unique_ptr<OutMessage> ProcessorCore::Forward(InBatch* batch,
                                                   uint32_t index,
                                                   wire::JobFields fields,
                                                   absl::Time due,
                                                   absl::Time now) {
  const wire::DecodedBatch& d = batch->decoded;
  const wire::DecodedJob& job = d.jobs[index];
  if (fields.index == wire::JobFields::kOwnIndex) fields.index = index;
  fields.not_before_ms = absl::ToUnixMillis(due);
  wire::BatchWriter writer;
  writer.Begin({d.instance, d.seq, d.reply_topic, d.reply_partition,
                d.processor, batch->priority, d.expires_ms});
  writer.AddJob(job.id, job.group, job.data, &fields);
  auto out = std::make_unique<OutMessage>();
  out->kind = OutMessage::Kind::kForward;
  out->topic = DelayTopic(config_, name_, DelayTierFor(due - now));
  out->key = job.id.ToString();
  out->payload = writer.Finish();
  out->headers = {
      {kPriorityHeader, std::to_string(static_cast<int>(batch->priority))},
      {kDueHeader, std::to_string(fields.not_before_ms)}};
  out->acks.emplace_back(batch, 1);
  batch->tasks[index].answered = true;
  ++batch->answered;
  return out;
}

std::unique_ptr<OutMessage> ProcessorCore::FailedJobCopy(
    InBatch* batch, uint32_t index, std::string_view reason,
    int64_t first_attempt_ms) {
  const wire::DecodedBatch& d = batch->decoded;
  const wire::DecodedJob& job = d.jobs[index];
  // Replayable as it is: written back to its job topic it runs afresh.
  wire::JobFields fields;
  fields.index = job.fields.index == wire::JobFields::kOwnIndex ? index
                                                                 : job.fields.index;
  fields.deadline_ms = job.fields.deadline_ms;
  fields.events = job.fields.events;
  wire::BatchWriter writer;
  writer.Begin({d.instance, d.seq, d.reply_topic, d.reply_partition,
                d.processor, batch->priority, 0});
  writer.AddJob(job.id, job.group, job.data, &fields);
  auto out = std::make_unique<OutMessage>();
  out->kind = OutMessage::Kind::kFailedJobCopy;
  out->topic = config_.DeadLetterTopicFor(name_);
  out->key = job.id.ToString();
  out->payload = writer.Finish();
  out->headers = {
      {"batchbus.error", std::string(reason)},
      {"batchbus.attempts", std::to_string(job.fields.attempt)},
      {"batchbus.first_attempt_ms", std::to_string(first_attempt_ms)},
      {"batchbus.origin", Origin(config_, name_, *batch)},
      {kPriorityHeader, std::to_string(static_cast<int>(batch->priority))}};
  out->copy_for = batch;
  ++batch->copies_pending;
  return out;
}

absl::Status ProcessorCore::Retry(Task::State* state, std::string_view reason,
                                  absl::Duration delay) {
  constexpr size_t kMaxReasonBytes = 4 * 1024;
  if (reason.size() > kMaxReasonBytes) reason = reason.substr(0, kMaxReasonBytes);
  InBatch* batch = state->batch;
  const wire::DecodedJob& job = batch->decoded.jobs[state->index];
  const RetryPolicy policy = config_.RetryFor(job.group);
  const absl::Time now = absl::Now();
  const int64_t first_attempt_ms = job.fields.first_attempt_ms != 0
                                       ? job.fields.first_attempt_ms
                                       : absl::ToUnixMillis(now);
  if (delay == absl::InfiniteDuration()) delay = Backoff(policy, job.fields.attempt);
  delay = std::max(delay, absl::ZeroDuration());
  const absl::Time due = now + delay;
  // The first moment no retry may run: its deadline or its submitter's.
  const int64_t limit_ms =
      LastStartMs(batch->decoded, job.fields, config_.deadline_skew);

  wire::JobFields next = job.fields;
  next.attempt += 1;
  next.first_attempt_ms = first_attempt_ms;
  next.last_error = reason;
  next.reserved = false;
  next.not_before_ms = absl::ToUnixMillis(due);
  if (next.index == wire::JobFields::kOwnIndex) next.index = state->index;
  const wire::DecodedBatch& d = batch->decoded;
  const size_t retry_bytes = wire::kBatchOverhead + d.instance.size() +
                             d.reply_topic.size() + d.processor.size() +
                             wire::BatchWriter::JobSize(job.group, job.data, &next);

  std::string final_error;
  bool exhausted = false;
  if (job.fields.attempt >= policy.max_attempts) {
    exhausted = true;
    final_error = std::string(reason);
  } else if (batch->decoded.version < 2) {
    final_error = StrCat(reason, " (not retried: its submitter speaks wire version 1)");
  } else if (absl::ToUnixMillis(due) >= limit_ms) {
    final_error = StrCat(reason, " (not retried: its deadline or its submitter's "
                                 "timeout comes before the next attempt)");
  } else if (retry_bytes > config_.max_message_bytes) {
    final_error = StrCat(reason, " (not retried: the job with its retry fields "
                                 "would not fit in one message of "
                                 "max_message_bytes = ", config_.max_message_bytes,
                         ")");
  }
  if (final_error.size() + wire::kResultOverhead > config_.max_message_bytes) {
    final_error.resize(config_.max_message_bytes / 2);
  }

  // Copied after its last attempt, and (dead_letter_failed_jobs) whenever
  // it ends failed.
  const bool dead_letter =
      !final_error.empty() && (exhausted || config_.dead_letter_failed_jobs);
  std::vector<std::unique_ptr<OutMessage>> out;
  bool opened = false;
  {
    MutexLock lock(&mu_);
    if (absl::Status s = Answerable(*state); !s.ok()) return s;
    RecordHandlerTime(*state, now);
    if (final_error.empty()) {
      out.push_back(Forward(batch, state->index, next, due, now));
    } else {
      state->answered = true;
      opened = results_.Add(batch, state->index, false, final_error,
                            [now] { return now; }, out);
      if (dead_letter) {
        out.push_back(FailedJobCopy(batch, state->index,
                                    exhausted ? std::string_view(reason)
                                              : std::string_view(final_error),
                                    first_attempt_ms));
      }
    }
    unsent_ += out.size();
    if (--outstanding_answers_ == 0) done_cv_.SignalAll();
  }
  if (final_error.empty()) {
    counters_.retried.Add();
  } else {
    counters_.answered_error.Add();
    if (dead_letter) counters_.jobs_dead_lettered.Add();
  }
  if (opened) wakeup_.Notify();
  Send(out);
  return absl::OkStatus();
}

absl::Status Task::Retry(std::string_view reason, absl::Duration delay) {
  if (state_ == nullptr) return absl::FailedPreconditionError("empty task");
  return state_->core->Retry(state_, reason, delay);
}

}  // namespace batchbus
