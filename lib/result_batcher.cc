#include "result_batcher.h"

#include "json.h"

namespace batchbus {

size_t ResultBatcher::EntryBytes(bool ok, std::string_view text) {
  return wire::kResultOverhead + (ok ? text.size() : json::QuotedSize(text));
}

ResultBatcher::Buffer& ResultBatcher::Open(const InBatch* batch, size_t bytes,
                                           absl::FunctionRef<absl::Time()> now,
                                           Sealed& sealed, bool& opened) {
  const wire::DecodedBatch& d = batch->decoded;
  Buffer& buffer = buffers_[batch->reply_key];
  // Keys are hashes: a collision shares a buffer with another address.
  const bool same_address = buffer.instance == d.instance &&
                            buffer.partition == d.reply_partition &&
                            buffer.topic == d.reply_topic &&
                            buffer.version == d.version;
  if (!buffer.writer.empty() &&
      (!same_address ||
       buffer.writer.size() + bytes > options_.max_message_bytes)) {
    Seal(buffer, sealed);
  }
  opened = false;
  if (buffer.writer.empty()) {
    if (!same_address) {
      buffer.instance = std::string(d.instance);
      buffer.topic = std::string(d.reply_topic);
      buffer.partition = d.reply_partition;
      buffer.version = d.version;
    }
    // Answered in the version the submitter wrote: an older one reads it.
    buffer.writer.Begin(buffer.instance, buffer.version);
    buffer.deadline = now() + options_.linger;
    opened = true;
  }
  return buffer;
}

uint32_t ResultBatcher::WireIndex(const wire::DecodedJob& job, uint32_t index) {
  // A retried or delayed job travels alone in a batch of its own, and says
  // where it stood in its submitter's batch.
  return job.fields.index != wire::JobFields::kOwnIndex ? job.fields.index
                                                         : index;
}

void ResultBatcher::Answers(Buffer& buffer, InBatch* batch) {
  if (!buffer.acks.empty() && buffer.acks.back().first == batch) {
    ++buffer.acks.back().second;
  } else {
    buffer.acks.emplace_back(batch, 1);
  }
  ++batch->answered;
}

void ResultBatcher::Added(Buffer& buffer, const InBatch* batch,
                          Sealed& sealed) {
  const bool realtime = batch->priority == Priority::kRealtime;
  buffer.realtime |= realtime;
  if (realtime || batch->answered == batch->size ||
      buffer.writer.size() >= options_.result_max_bytes) {
    Seal(buffer, sealed);
  }
}

bool ResultBatcher::Add(InBatch* batch, uint32_t index, bool ok,
                        std::string_view text,
                        absl::FunctionRef<absl::Time()> now, Sealed& sealed) {
  bool opened = false;
  Buffer& buffer = Open(batch, EntryBytes(ok, text), now, sealed, opened);
  const wire::DecodedBatch& d = batch->decoded;
  const wire::DecodedJob& job = d.jobs[index];
  if (ok) {
    buffer.writer.AddOk(d.seq, WireIndex(job, index), job.id, text,
                        job.fields.attempt, &job.fields);
  } else {
    buffer.writer.AddError(d.seq, WireIndex(job, index), job.id, text,
                           job.fields.attempt, &job.fields);
  }
  Answers(buffer, batch);
  Added(buffer, batch, sealed);
  return opened && !buffer.writer.empty();
}

bool ResultBatcher::AddExpired(InBatch* batch, uint32_t index,
                               std::string_view why,
                               absl::FunctionRef<absl::Time()> now,
                               Sealed& sealed) {
  bool opened = false;
  Buffer& buffer = Open(batch, EntryBytes(false, why), now, sealed, opened);
  const wire::DecodedBatch& d = batch->decoded;
  buffer.writer.AddExpired(d.seq, WireIndex(d.jobs[index], index),
                           d.jobs[index].id, why, &d.jobs[index].fields);
  Answers(buffer, batch);
  Added(buffer, batch, sealed);
  return opened && !buffer.writer.empty();
}

bool ResultBatcher::AddEvent(InBatch* batch, uint32_t index,
                             wire::ResultEntry::Kind kind, std::string_view data,
                             absl::FunctionRef<absl::Time()> now,
                             Sealed& sealed) {
  if (batch->decoded.version < 2) return false;
  bool opened = false;
  Buffer& buffer = Open(batch, EntryBytes(true, data), now, sealed, opened);
  const wire::DecodedBatch& d = batch->decoded;
  const wire::DecodedJob& job = d.jobs[index];
  buffer.writer.AddEvent(d.seq, WireIndex(job, index), job.id, kind, data,
                         job.fields.attempt);
  Added(buffer, batch, sealed);
  return opened && !buffer.writer.empty();
}

absl::Time ResultBatcher::SealDue(absl::Time now, Sealed& sealed) {
  absl::Time next = absl::InfiniteFuture();
  for (auto& [key, buffer] : buffers_) {
    if (buffer.writer.empty()) continue;
    if (buffer.deadline <= now) {
      Seal(buffer, sealed);
    } else {
      next = std::min(next, buffer.deadline);
    }
  }
  return next;
}

void ResultBatcher::SealAll(Sealed& sealed) {
  for (auto& [key, buffer] : buffers_) Seal(buffer, sealed);
}

size_t ResultBatcher::open_results() const {
  size_t n = 0;
  for (const auto& [key, buffer] : buffers_) n += buffer.writer.results();
  return n;
}

void ResultBatcher::Seal(Buffer& buffer, Sealed& sealed) {
  if (buffer.writer.empty()) return;
  auto out = std::make_unique<OutMessage>();
  out->topic = buffer.topic;
  out->partition = buffer.partition;
  out->key = buffer.instance;
  out->payload = buffer.writer.Finish();
  out->acks.swap(buffer.acks);
  out->realtime = buffer.realtime;
  buffer.realtime = false;
  sealed.push_back(std::move(out));
}

}  // namespace batchbus
