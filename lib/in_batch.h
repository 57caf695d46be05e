// A consumed job message on its way through the processor: its decoded
// jobs, the Task state of each, and how far its jobs got (handed out,
// answered, acknowledged by the broker). The parts of the processor pass
// InBatch pointers between them; the processor's core owns the objects.
//
// Threads: the fields are read and written under the processor's state
// lock, except `decoded`, which is immutable once the batch is ready.
#ifndef BATCHBUS_LIB_IN_BATCH_H_
#define BATCHBUS_LIB_IN_BATCH_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "batchbus/job.h"
#include "batchbus/processor.h"
#include "wire.h"

namespace batchbus {

class ProcessorCore;
struct InBatch;

// What a Task points to: one job of one batch.
struct Task::State {
  // Set while handed out. The core outlives every Task it handed out (it
  // counts them), so a Task answered after Close, or after the Processor
  // was destroyed, gets an error instead of reaching freed state.
  ProcessorCore* core = nullptr;
  InBatch* batch = nullptr;
  uint32_t index = 0;
  bool answered = false;
  absl::Time handed_at;  // For the handler-time histogram.
};

struct InBatch {
  Priority priority = Priority::kNormal;
  int32_t partition = 0;
  int64_t offset = 0;
  size_t reply_key = 0;  // Hash of the reply address (ResultBatcher).
  wire::DecodedBatch decoded;
  std::vector<Task::State> tasks;
  uint32_t size = 0;      // Jobs this processor answers (fewer if revoked).
  uint32_t handed = 0;    // Next index to hand out.
  uint32_t answered = 0;  // Results given to the result batcher.
  uint32_t acked = 0;     // Results acknowledged by the broker.
  uint32_t live = 0;      // Task objects still pointing here.
  bool dead_letter_pending = false;
  uint32_t copies_pending = 0;  // Failed jobs' dead-letter copies unwritten.
  bool revoked = false;   // Its partition went to another member.
  bool finished = false;  // Reported done to the offset tracker.

  // Every result (or its dead-letter copy) reached the broker.
  bool done() const {
    return acked == size && !dead_letter_pending && copies_pending == 0;
  }
  // Nothing refers to it any more: it may be freed.
  bool idle() const {
    return answered == handed && acked == answered && live == 0 &&
           copies_pending == 0;
  }
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_IN_BATCH_H_
