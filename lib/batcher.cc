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

absl::StatusOr<size_t> CheckJob(const Job& job, size_t max_message_bytes,
                                size_t header_bytes) {
  if (job.processor.empty() || job.processor.size() > kMaxNameBytes ||
      !HasOnlyTopicChars(job.processor)) {
    return absl::InvalidArgumentError(StrCat(
        "job processor name '", job.processor,
        "' must be 1-200 characters of [A-Za-z0-9._-] (it names a topic)"));
  }
  if (job.deadline != absl::InfiniteFuture() ||
      job.not_before != absl::InfinitePast()) {
    return absl::UnimplementedError(
        "Job::deadline and Job::not_before are not supported yet: processors "
        "do not honour them, so such a job could run later or earlier than "
        "asked");
  }
  if (job.group.empty() || job.group.size() > kMaxGroupBytes ||
      !simdjson::validate_utf8(job.group.data(), job.group.size())) {
    return absl::InvalidArgumentError(
        "job group must be a non-empty UTF-8 name of at most 1024 bytes");
  }
  if (auto s = json::Validate(job.data, "job data"); !s.ok()) return s;
  const size_t job_size = wire::BatchWriter::JobSize(
      job.group, json::TrimWhitespace(job.data));
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
  batch->writer.Begin({instance_, batch->seq, reply_topic_,
                       reply_partitions_[job.priority], job.processor,
                       job.priority});
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
  batch->writer.AddJob(job.id, job.group, json::TrimWhitespace(job.data));
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
  auto msg = std::make_unique<BatchMessage>(
      BatchMessage{batch->seq, priority, std::move(batch->topic),
                   batch->writer.Finish()});
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
