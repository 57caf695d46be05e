// PartitionWindow: the partitions of one topic that a producer sends to,
// with at most `limit` undelivered messages on each. A message that finds
// every partition's window full is held, in order, until a delivery report
// makes room; the held messages then go together, as one chunk that fits
// one produce request.
//
// Why: librdkafka's idempotent producer sends nothing more to a partition
// while 5 or more of its messages there are unanswered, and meanwhile its
// broker thread polls without waiting, as long as a message is queued
// behind them (librdkafka 2.0.2, rdkafka_broker.c: the wakeup time of a
// queue past its linger is "now", the in-flight check comes after it).
// On a replicated cluster, where acks=all answers take tens of
// milliseconds, each busy partition costs a core. Here nothing is queued in
// librdkafka that it could not send at once: it has at most `limit - 1`
// messages in flight when a chunk is handed over, and the chunk goes in one
// request. The partition with the fewest undelivered messages is chosen,
// so batches also go around a partition whose leader stopped answering.
//
// A message can also be bound to one partition (a result to its
// submitter's reply partition): it waits for room there.
//
// Until the topic's partition count is known, messages for any partition
// are not held: their chunk carries partition -1 (librdkafka's
// partitioner chooses).
//
// Pure: no Kafka, no clock. Threads: not thread-safe; the owner locks.
#ifndef BATCHBUS_LIB_PARTITION_WINDOW_H_
#define BATCHBUS_LIB_PARTITION_WINDOW_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <utility>
#include <vector>

namespace batchbus {

template <typename Msg>
class PartitionWindow {
 public:
  struct Options {
    int limit = 5;  // librdkafka's RD_KAFKA_IDEMP_MAX_INFLIGHT.
    size_t chunk_bytes = 900'000;  // Under librdkafka's batch.size, 1 MB.
    size_t chunk_messages = 10'000;  // librdkafka's batch.num.messages.
  };
  struct Chunk {
    int32_t partition = -1;
    std::vector<Msg> messages;
  };

  PartitionWindow() = default;
  explicit PartitionWindow(Options options) : options_(options) {}

  // The topic has `n` partitions (0: not known).
  void SetPartitions(int32_t n) {
    if (n > 0 && static_cast<size_t>(n) > undelivered_.size()) {
      undelivered_.resize(n, 0);
    }
  }
  int32_t partitions() const { return static_cast<int32_t>(undelivered_.size()); }

  // Queues `msg`, of `bytes`, behind the messages held: for `partition`,
  // or (-1) for whichever partition has room.
  void Offer(Msg msg, size_t bytes, int32_t partition = -1) {
    if (partition >= 0) {
      SetPartitions(partition + 1);
      fixed_[partition].push_back({std::move(msg), bytes});
    } else {
      any_.push_back({std::move(msg), bytes});
    }
    ++held_;
  }

  // A message sent to `partition` by a chunk of Ready() was answered
  // (delivered or not), or never queued.
  void Answered(int32_t partition) {
    if (partition >= 0 && partition < partitions() && undelivered_[partition] > 0) {
      --undelivered_[partition];
    }
  }

  // The chunks that may go now, each counted as undelivered on its
  // partition. With the partition count unknown, all that is held for any
  // partition goes, in one chunk for partition -1.
  std::vector<Chunk> Ready() {
    std::vector<Chunk> out;
    for (auto& [p, queue] : fixed_) {
      while (!queue.empty() && undelivered_[p] < options_.limit) {
        out.push_back(Take(queue, p));
      }
    }
    if (undelivered_.empty()) {
      if (!any_.empty()) {
        out.emplace_back();
        for (Held& h : any_) out.back().messages.push_back(std::move(h.msg));
        held_ -= any_.size();
        any_.clear();
      }
      return out;
    }
    while (!any_.empty()) {
      const int32_t p = LeastLoaded();
      if (undelivered_[p] >= options_.limit) break;
      out.push_back(Take(any_, p));
      next_ = (p + 1) % partitions();
    }
    return out;
  }

  // Everything held, oldest first per partition; the window holds nothing
  // after.
  std::vector<Msg> TakeHeld() {
    std::vector<Msg> out;
    for (auto& [p, queue] : fixed_) {
      for (Held& h : queue) out.push_back(std::move(h.msg));
      queue.clear();
    }
    for (Held& h : any_) out.push_back(std::move(h.msg));
    any_.clear();
    held_ = 0;
    return out;
  }

  size_t held() const { return held_; }
  int undelivered(int32_t partition) const { return undelivered_[partition]; }

 private:
  struct Held {
    Msg msg;
    size_t bytes;
  };

  // A chunk for `p` from the front of `queue`: what fits one request.
  Chunk Take(std::deque<Held>& queue, int32_t p) {
    Chunk chunk;
    chunk.partition = p;
    size_t bytes = 0;
    while (!queue.empty() && chunk.messages.size() < options_.chunk_messages &&
           (chunk.messages.empty() ||
            bytes + queue.front().bytes <= options_.chunk_bytes)) {
      bytes += queue.front().bytes;
      chunk.messages.push_back(std::move(queue.front().msg));
      queue.pop_front();
    }
    held_ -= chunk.messages.size();
    undelivered_[p] += static_cast<int>(chunk.messages.size());
    return chunk;
  }

  // The partition with the fewest undelivered messages; ties go round.
  int32_t LeastLoaded() const {
    const int32_t n = partitions();
    int32_t best = next_ % n;
    for (int32_t i = 1; i < n; ++i) {
      const int32_t p = (next_ + i) % n;
      if (undelivered_[p] < undelivered_[best]) best = p;
    }
    return best;
  }

  Options options_;
  std::vector<int> undelivered_;
  std::map<int32_t, std::deque<Held>> fixed_;  // Held for one partition.
  std::deque<Held> any_;                        // Held for any partition.
  size_t held_ = 0;
  int32_t next_ = 0;
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_PARTITION_WINDOW_H_
