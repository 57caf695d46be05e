// Result batcher: the results of one submitter instance's jobs, and the
// started and progress events of those whose submitter asked for them,
// gathered into result messages (one open message per reply address). A
// message is sealed when it holds a realtime entry, completes a batch, reaches
// result_max_bytes, would pass max_message_bytes with the next result, or
// has lingered result_linger since its first result.
//
// Pure: no Kafka, no clock of its own. Threads: not thread-safe; the
// processor calls it under its state lock.
#ifndef BATCHBUS_LIB_RESULT_BATCHER_H_
#define BATCHBUS_LIB_RESULT_BATCHER_H_

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/function_ref.h"
#include "absl/time/time.h"
#include "in_batch.h"
#include "out_message.h"
#include "wire.h"

namespace batchbus {

class ResultBatcher {
 public:
  struct Options {
    size_t max_message_bytes = 1'000'000;
    size_t result_max_bytes = 256 * 1024;
    absl::Duration linger = absl::Milliseconds(5);
  };
  using Sealed = std::vector<std::unique_ptr<OutMessage>>;

  explicit ResultBatcher(Options options) : options_(options) {}

  // Bytes one result adds to a message.
  static size_t EntryBytes(bool ok, std::string_view text);

  // Adds the result of job `index` of `batch` (ok: `text` is its JSON
  // result; else `text` is the error). Messages it seals go to `sealed`.
  // Returns true when it opened a message, whose linger ends at
  // now() + linger (the clock is read only then).
  bool Add(InBatch* batch, uint32_t index, bool ok, std::string_view text,
           absl::FunctionRef<absl::Time()> now, Sealed& sealed);
  // Job `index` ends EXPIRED, not processed; `why` is its error.
  bool AddExpired(InBatch* batch, uint32_t index, std::string_view why,
                  absl::FunctionRef<absl::Time()> now, Sealed& sealed);
  // A started or progress (`data`: JSON) event of job `index`, which has
  // not ended. It answers nothing: the batch's counts do not move. A
  // version-1 batch cannot carry events: nothing is added.
  bool AddEvent(InBatch* batch, uint32_t index, wire::ResultEntry::Kind kind,
                std::string_view data, absl::FunctionRef<absl::Time()> now,
                Sealed& sealed);

  // Seals the messages whose linger ended; returns when the next one ends
  // (InfiniteFuture when none is open).
  absl::Time SealDue(absl::Time now, Sealed& sealed);

  // Seals every open message.
  void SealAll(Sealed& sealed);

  // Results added and not sealed yet.
  size_t open_results() const;

 private:
  // Where job `index` of its batch stands in its submitter's batch.
  static uint32_t WireIndex(const wire::DecodedJob& job, uint32_t index);
  struct Buffer {
    std::string instance;
    std::string topic;
    int32_t partition = 0;
    int version = wire::kVersion;
    wire::ResultWriter writer;
    std::vector<std::pair<InBatch*, uint32_t>> acks;
    absl::Time deadline;
    bool realtime = false;
  };
  // The open message for the batch's reply address, with room for
  // `bytes` more; what was open for another address, or is too full, is
  // sealed first. `opened`: a message was begun.
  Buffer& Open(const InBatch* batch, size_t bytes,
               absl::FunctionRef<absl::Time()> now, Sealed& sealed,
               bool& opened);
  // The buffer's newest entry answers a job of `batch`.
  void Answers(Buffer& buffer, InBatch* batch);
  // An entry was added to `buffer`: seals it when it must go now.
  void Added(Buffer& buffer, const InBatch* batch, Sealed& sealed);
  void Seal(Buffer& buffer, Sealed& sealed);

  Options options_;
  absl::flat_hash_map<size_t, Buffer> buffers_;  // By InBatch::reply_key.
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_RESULT_BATCHER_H_
