// Settlement: what happens to a batch after its jobs were answered. Its
// results are acknowledged by the broker (or dead-lettered when they cannot
// be delivered), it is committed once it and every batch before it in its
// partition are done, and it is freed once nothing refers to it. A revoked
// partition's batches commit nothing more.
#include <string>

#include "log.h"
#include "processor_core.h"
#include "strcat.h"

namespace batchbus {

// ------------------------------------------------------------- assignment

void ProcessorCore::OnAssigned(PartitionKey partition) {
  MutexLock lock(&mu_);
  assigned_.insert(partition);
}

void ProcessorCore::OnRevoked(PartitionKey partition) {
  Commits ignored;  // A revoked partition commits nothing more.
  MutexLock lock(&mu_);
  assigned_.erase(partition);
  offsets_.Forget(partition);
  scheduler_.Revoke(partition.first, partition.second);
  std::vector<InBatch*> revoked;
  for (const auto& b : batches_) {
    if (b->priority == partition.first && b->partition == partition.second) {
      revoked.push_back(b.get());
    }
  }
  for (InBatch* b : revoked) {
    b->revoked = true;
    Settle(b, ignored);
  }
}

// ---------------------------------------------------------------- settling

void ProcessorCore::Settle(InBatch* b, Commits& commits) {
  if (!b->done()) return;
  if (!b->finished && !b->revoked) {
    b->finished = true;
    const PartitionKey key{b->priority, b->partition};
    if (auto next = offsets_.Finish(key, b->offset)) {
      commits.emplace_back(key, *next);
    }
    counters_.batches_committed.Add();
  }
  if (b->idle()) {
    auto it = batches_.find(b);
    if (it != batches_.end()) batches_.erase(it);
  }
}

void ProcessorCore::Store(const Commits& commits) {
  for (const auto& [partition, offset] : commits) {
    consumers_.StoreOffset(partition, offset);
  }
}

void ProcessorCore::Send(std::vector<std::unique_ptr<OutMessage>>& messages) {
  if (messages.empty()) return;
  for (auto& msg : messages) outbox_.Send(std::move(msg));
  MutexLock lock(&mu_);
  unsent_ -= messages.size();
  messages.clear();
}

void ProcessorCore::Acknowledge(const OutMessage& msg, Commits& commits) {
  if (msg.dead_letter_for != nullptr) {
    msg.dead_letter_for->dead_letter_pending = false;
    Settle(msg.dead_letter_for, commits);
  }
  if (msg.copy_for != nullptr) {
    --msg.copy_for->copies_pending;
    Settle(msg.copy_for, commits);
  }
  for (const auto& [b, n] : msg.acks) {
    b->acked += n;
    Settle(b, commits);
  }
}

void ProcessorCore::OnSent(std::unique_ptr<OutMessage> msg) {
  if (msg->kind == OutMessage::Kind::kResults) counters_.result_messages.Add();
  // A relay (or its dead-letter copy) lets its delay tier commit past it.
  if (msg->relay_from.tier >= 0) delay_line_.Relayed(*msg);
  Commits commits;
  {
    MutexLock lock(&mu_);
    Acknowledge(*msg, commits);
    done_cv_.SignalAll();
  }
  Store(commits);
}

void ProcessorCore::OnUndeliverable(std::unique_ptr<OutMessage> msg,
                                    Outbox::Failure failure, std::string why) {
  if (failure == Outbox::Failure::kClosed) {
    // Its batches stay uncommitted: the next owner processes them again.
    MutexLock lock(&mu_);
    done_cv_.SignalAll();
    return;
  }
  if (msg->kind == OutMessage::Kind::kResults ||
      msg->kind == OutMessage::Kind::kForward ||
      msg->kind == OutMessage::Kind::kRelay) {
    DeadLetterResults(std::move(msg), std::move(why));
    return;
  }
  // Even its dead-letter copy could not be written: say so, and pass it.
  uint64_t held_back = 0;
  if (dead_letter_log_.Allow(held_back)) {
    log::Error("processor", "could not write to the dead letter topic ", msg->topic, ": ",
               why, "; the message is skipped",
               LogThrottle::HeldBack(held_back));
  }
  OnSent(std::move(msg));
}

// Results that cannot reach their submitter: copied to the dead letters
// with the reason and where their jobs came from, so that the batches'
// offsets pass and the processor does not retry them forever. The
// submitter ends those jobs BATCH_FAILED at its timeout.
void ProcessorCore::DeadLetterResults(std::unique_ptr<OutMessage> msg,
                                      std::string why) {
  counters_.results_dead_lettered.Add();
  auto copy = std::make_unique<OutMessage>();
  copy->kind = OutMessage::Kind::kResultsCopy;
  copy->topic = config_.DeadLetterTopicFor(name_);
  copy->key = std::move(msg->key);
  copy->payload = std::move(msg->payload);
  std::string origin;
  for (const auto& [b, n] : msg->acks) {
    if (!origin.empty()) origin += ",";
    origin += StrCat(topics_[b->priority], "[", b->partition, "]@", b->offset);
  }
  const std::string error =
      StrCat(msg->kind == OutMessage::Kind::kResults ? "results" : "job",
             " not delivered to ", msg->topic, ": ", why);
  copy->relay_from = msg->relay_from;
  copy->headers = {{"batchbus.error", error}, {"batchbus.origin", origin}};
  copy->acks = std::move(msg->acks);
  uint64_t held_back = 0;
  if (dead_letter_log_.Allow(held_back)) {
    log::Warning("processor", "processor ", name_, ": ", error, "; copied to ", copy->topic,
                 " (jobs from ", origin, ")", LogThrottle::HeldBack(held_back));
  }
  outbox_.Send(std::move(copy));
}

}  // namespace batchbus
