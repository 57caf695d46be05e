#include "batcher.h"

#include <algorithm>
#include <utility>

#include "json.h"
#include "names.h"
#include "simdjson.h"
#include "strcat.h"

namespace batchbus {
namespace {

constexpr size_t kMaxNameBytes = 200;
constexpr size_t kMaxGroupBytes = 1024;

}  // namespace

Batcher::Batcher(const Config& config, std::string instance,
                 std::string reply_topic)
    : config_(config),
      instance_(std::move(instance)),
      reply_topic_(std::move(reply_topic)),
      header_bytes_(BatchHeaderBytes(instance_, reply_topic_)) {}

size_t BatchHeaderBytes(std::string_view instance,
                        std::string_view reply_topic) {
  return wire::kBatchOverhead + instance.size() + reply_topic.size();
}

wire::JobFields JobFieldsOf(const Job& job, bool events) {
  wire::JobFields f;
  if (job.deadline != absl::InfiniteFuture()) {
    f.deadline_ms = std::max<int64_t>(absl::ToUnixMillis(job.deadline), 1);
  }
  if (job.not_before != absl::InfinitePast() && job.not_before > absl::Now()) {
    f.not_before_ms = absl::ToUnixMillis(job.not_before);
  }
  f.events = events;
  f.traceparent = job.traceparent;
  f.tracestate = job.tracestate;
  return f;
}

absl::Status CheckTiming(const Job& job, absl::Duration batch_timeout,
                         absl::Time now) {
  if (job.deadline != absl::InfiniteFuture() && job.deadline <= now) {
    return absl::DeadlineExceededError(StrCat(
        "job deadline ", absl::FormatTime(job.deadline), " has passed"));
  }
  if (job.not_before == absl::InfinitePast()) return absl::OkStatus();
  if (job.not_before >= job.deadline) {
    return absl::InvalidArgumentError(
        "job not_before must come before its deadline");
  }
  if (job.not_before >= now + batch_timeout) {
    return absl::InvalidArgumentError(StrCat(
        "job not_before is ", absl::FormatDuration(job.not_before - now),
        " away, past its priority's batch timeout of ",
        absl::FormatDuration(batch_timeout),
        ": the submitter would stop waiting for its result before it may "
        "run (raise <priority>.batch_timeout_ms)"));
  }
  return absl::OkStatus();
}

absl::Status CheckTraceContext(const Job& job) {
  const std::string_view tp = job.traceparent;
  const auto hex = [&](size_t from, size_t n) {
    for (size_t i = from; i < from + n; ++i) {
      const char c = tp[i];
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
  };
  if (!tp.empty() &&
      (tp.size() != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' ||
       !hex(0, 2) || !hex(3, 32) || !hex(36, 16) || !hex(53, 2) ||
       tp.substr(0, 2) == "ff" || tp.substr(3, 32) == std::string(32, '0') ||
       tp.substr(36, 16) == std::string(16, '0'))) {
    return absl::InvalidArgumentError(StrCat(
        "job traceparent '", tp.substr(0, 64),
        "' is not a W3C traceparent "
        "(00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>)"));
  }
  if (job.tracestate.size() > 512) {
    return absl::InvalidArgumentError(
        "job tracestate is longer than 512 characters");
  }
  for (char c : job.tracestate) {
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError(
          "job tracestate must be printable ASCII");
    }
  }
  if (!job.tracestate.empty() && tp.empty()) {
    return absl::InvalidArgumentError("job tracestate needs a traceparent");
  }
  return absl::OkStatus();
}

absl::StatusOr<size_t> CheckJob(const Job& job, const wire::JobFields& fields,
                                size_t max_message_bytes, size_t header_bytes) {
  if (job.processor.empty() || job.processor.size() > kMaxNameBytes ||
      !HasOnlyTopicChars(job.processor)) {
    return absl::InvalidArgumentError(StrCat(
        "job processor name '", job.processor,
        "' must be 1-200 characters of [A-Za-z0-9._-] (it names a topic)"));
  }
  if (job.group.empty() || job.group.size() > kMaxGroupBytes ||
      !simdjson::validate_utf8(job.group.data(), job.group.size())) {
    return absl::InvalidArgumentError(
        "job group must be a non-empty UTF-8 name of at most 1024 bytes");
  }
  if (auto s = json::Validate(job.data, "job data"); !s.ok()) return s;
  if (auto s = CheckTraceContext(job); !s.ok()) return s;
  const size_t job_size = wire::BatchWriter::JobSize(
      job.group, json::TrimWhitespace(job.data),
      fields.plain() ? nullptr : &fields);
  if (header_bytes + job.processor.size() + job_size > max_message_bytes) {
    return absl::InvalidArgumentError(StrCat(
        "job of ", job_size, " encoded bytes does not fit in one message (",
        "max_message_bytes = ", max_message_bytes, ")"));
  }
  return job_size;
}

Batcher::Slot Batcher::Open(const Job& job, size_t job_size, absl::Time now) {
  const PriorityConfig& pc = config_.For(job.priority);
  auto batch = std::make_unique<OpenBatch>();
  batch->seq = MakeBatchSeq(next_batch_++, job.priority);
  batch->topic = config_.TopicFor(job.processor, job.priority);
  // Expect a full batch of jobs like this one.
  batch->writer.Reserve(
      std::min(pc.max_bytes, header_bytes_ + job.processor.size() +
                                 (job_size + 1) *
                                     std::max<size_t>(pc.max_jobs, 1)));
  // Processors schedule no retry for after the moment this submitter stops
  // waiting. Its timer starts at the seal, at or after now: this errs early.
  batch->writer.Begin({instance_, batch->seq, reply_topic_,
                       reply_partitions_[job.priority], job.processor,
                       job.priority,
                       absl::ToUnixMillis(now + pc.batch_timeout)});
  batch->jobs.reserve(std::min<size_t>(pc.max_jobs, 4096));
  batch->linger_deadline = now + pc.max_linger;
  return batch;
}

bool Batcher::Add(const Job& job, size_t job_size, ResultSink sink,
                  absl::Time now, std::vector<SealedBatch>& out) {
  const PriorityConfig& pc = config_.For(job.priority);
  Slot& batch = open_[job.processor][job.priority];
  if (batch && batch->writer.jobs() > 0 &&
      batch->writer.FinishedSize() + job_size > pc.max_bytes) {
    Seal(batch, job.priority, out);
  }
  bool opened = false;
  if (!batch) {
    batch = Open(job, job_size, now);
    opened = true;
  }
  const wire::JobFields fields = JobFieldsOf(
      job, sink.events != nullptr || config_.status_retention > absl::ZeroDuration());
  batch->writer.AddJob(job.id, job.group, json::TrimWhitespace(job.data),
                       fields.plain() ? nullptr : &fields);
  batch->jobs.push_back(
      {job.id, std::move(sink), static_cast<uint32_t>(job_size)});
  if (batch->jobs.size() >= pc.max_jobs ||
      batch->writer.FinishedSize() >= pc.max_bytes) {
    Seal(batch, job.priority, out);
    return false;
  }
  return opened;
}

void Batcher::Seal(Slot& batch, Priority priority,
                   std::vector<SealedBatch>& out) {
  auto msg = std::make_unique<BatchMessage>();
  msg->seq = batch->seq;
  msg->priority = priority;
  msg->topic = std::move(batch->topic);
  msg->payload = batch->writer.Finish();
  // A batch sealed early by its linger gives back what it reserved.
  if (msg->payload.capacity() > 2 * msg->payload.size() + 4096) {
    msg->payload.shrink_to_fit();
  }
  out.push_back({std::move(msg), std::move(batch->jobs)});
  batch.reset();
}

absl::Time Batcher::SealExpired(absl::Time now,
                                std::vector<SealedBatch>& out) {
  absl::Time next = absl::InfiniteFuture();
  for (auto& [processor, batches] : open_) {
    for (Priority p : kAllPriorities) {
      Slot& batch = batches[p];
      if (!batch) continue;
      if (batch->linger_deadline <= now) {
        Seal(batch, p, out);
      } else {
        next = std::min(next, batch->linger_deadline);
      }
    }
  }
  return next;
}

void Batcher::SealAll(std::vector<SealedBatch>& out) {
  for (auto& [processor, batches] : open_) {
    for (Priority p : kAllPriorities) {
      if (batches[p]) Seal(batches[p], p, out);
    }
  }
  open_.clear();
}

}  // namespace batchbus
