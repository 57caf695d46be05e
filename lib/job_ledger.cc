#include "job_ledger.h"

#include <algorithm>

#include "strcat.h"

namespace batchbus {

void JobLedger::Track(uint64_t seq, std::string topic,
                      std::vector<PendingJob> jobs, absl::Time now,
                      std::shared_ptr<const std::atomic<bool>> acknowledged) {
  if (jobs.empty()) return;
  const Priority priority = PriorityOfBatchSeq(seq);
  Batch& batch = batches_[seq];
  batch.topic = std::move(topic);
  batch.unended = jobs.size();
  batch.jobs = std::move(jobs);
  batch.sent = now;
  batch.acknowledged = std::move(acknowledged);
  timers_[priority].emplace_back(now + timeouts_[priority], seq);
}

void JobLedger::End(Batch& batch, uint32_t index, JobResult result,
                    Outcome& out) {
  PendingJob& job = batch.jobs[index];
  job.ended = true;
  --batch.unended;
  ++out.jobs_freed;
  out.bytes_freed += job.bytes;
  out.completions.push_back(
      {std::move(job.sink), std::move(result), batch.sent});
}

void JobLedger::Answer(const std::vector<wire::ResultEntry>& entries,
                       Outcome& out) {
  // Answers of one batch come together: look the batch up once per run.
  uint64_t cached_seq = 0;
  auto it = batches_.end();
  for (const wire::ResultEntry& e : entries) {
    if (e.seq != cached_seq || it == batches_.end()) {
      it = batches_.find(e.seq);
      cached_seq = e.seq;
    }
    if (e.kind != wire::ResultEntry::Kind::kResult) {
      // Events never end a job, and go only to a job that has not ended
      // and asked for them.
      if (it == batches_.end() || e.index >= it->second.jobs.size()) continue;
      const PendingJob& job = it->second.jobs[e.index];
      if (job.id != e.id || job.ended || (!job.sink.events && !all_events_)) {
        continue;
      }
      JobEvent event;
      event.job_id = e.id;
      event.kind = e.kind == wire::ResultEntry::Kind::kStarted
                       ? JobEvent::Kind::kStarted
                       : JobEvent::Kind::kProgress;
      event.data = std::string(e.data);
      event.attempt = e.attempts > 0 ? e.attempts : 1;
      out.events.push_back(
          {job.sink.events ? *job.sink.events : Submitter::EventCallback(),
           std::move(event)});
      continue;
    }
    JobResult result;
    result.job_id = e.id;
    result.status = e.status;
    result.priority = PriorityOfBatchSeq(e.seq);
    result.data = std::string(e.data);
    result.error = std::string(e.error);
    result.attempts = e.attempts > 0 ? e.attempts : 1;
    if (!e.traceparent.empty()) result.traceparent = e.traceparent;
    if (!e.tracestate.empty()) result.tracestate = e.tracestate;
    // A second answer, or one for a job this ledger does not know (the
    // id must match the job at (seq, index)), is late.
    if (it == batches_.end() || e.index >= it->second.jobs.size() ||
        it->second.jobs[e.index].id != e.id ||
        it->second.jobs[e.index].ended) {
      out.late.push_back(std::move(result));
      continue;
    }
    End(it->second, e.index, std::move(result), out);
    if (it->second.unended == 0) {
      batches_.erase(it);
      it = batches_.end();
    }
  }
}

void JobLedger::FailUnended(uint64_t seq, Batch& batch, std::string_view why,
                            Outcome& out) {
  const Priority priority = PriorityOfBatchSeq(seq);
  for (uint32_t i = 0; i < batch.jobs.size(); ++i) {
    if (batch.jobs[i].ended) continue;
    JobResult result;
    result.job_id = batch.jobs[i].id;
    result.status = JobStatus::kBatchFailed;
    result.error = std::string(why);
    result.priority = priority;
    End(batch, i, std::move(result), out);
  }
}

void JobLedger::FailBatch(uint64_t seq, std::string_view why, Outcome& out) {
  auto it = batches_.find(seq);
  if (it == batches_.end()) return;
  FailUnended(seq, it->second, why, out);
  batches_.erase(it);
}

std::string JobLedger::TimeoutReason(uint64_t seq, const Batch& batch) const {
  std::string why =
      StrCat("no result within the batch timeout of ",
             absl::FormatDuration(timeouts_[PriorityOfBatchSeq(seq)]),
             " (batch ", seq, " on ", batch.topic, ")");
  if (batch.acknowledged == nullptr) return why;
  if (batch.acknowledged->load(std::memory_order_acquire)) {
    return StrCat(why, "; Kafka had the batch, but no processor answered in "
                       "time (none running, too busy, or its partitions "
                       "moving between processors)");
  }
  return StrCat(why, "; no broker acknowledged the batch, so no processor "
                     "saw it (its partition had no leader, fewer replicas in "
                     "sync than the topic's min.insync.replicas, or the "
                     "cluster was unreachable)");
}

absl::Time JobLedger::Expire(absl::Time now, Outcome& out) {
  absl::Time next = absl::InfiniteFuture();
  for (auto& fifo : timers_) {
    while (!fifo.empty() && fifo.front().first <= now) {
      auto it = batches_.find(fifo.front().second);
      if (it != batches_.end()) {
        FailUnended(it->first, it->second, TimeoutReason(it->first, it->second),
                    out);
        batches_.erase(it);
      }
      fifo.pop_front();
    }
    if (!fifo.empty()) next = std::min(next, fifo.front().first);
  }
  return next;
}

size_t JobLedger::FailAll(std::string_view why, Outcome& out) {
  const uint64_t before = out.jobs_freed;
  for (auto& [seq, batch] : batches_) FailUnended(seq, batch, why, out);
  batches_.clear();
  for (auto& fifo : timers_) fifo.clear();
  return out.jobs_freed - before;
}

}  // namespace batchbus
