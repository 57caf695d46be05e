#include "intake.h"

#include "absl/hash/hash.h"
#include "strcat.h"

namespace batchbus {

absl::StatusOr<std::unique_ptr<InBatch>> Intake::Decode(const Message& msg) {
  auto batch = std::make_unique<InBatch>();
  batch->priority = msg.priority;
  batch->partition = msg.partition;
  batch->offset = msg.offset;
  wire::DecodedBatch& d = batch->decoded;
  if (auto s = decoder_.DecodeBatch(msg.payload, d); !s.ok()) return s;
  if (d.processor != processor_) {
    return absl::InvalidArgumentError(StrCat("batch for processor '",
                                             d.processor, "' on a topic of '",
                                             processor_, "'"));
  }
  batch->reply_key = absl::HashOf(d.instance, d.reply_partition);
  batch->size = static_cast<uint32_t>(d.jobs.size());
  batch->tasks.resize(batch->size);
  for (uint32_t i = 0; i < batch->size; ++i) {
    batch->tasks[i].batch = batch.get();
    batch->tasks[i].index = i;
  }
  return batch;
}

std::unique_ptr<OutMessage> Intake::DeadLetterCopy(const Message& msg,
                                                   std::string_view why) const {
  auto out = std::make_unique<OutMessage>();
  out->topic = dead_letter_topic_;
  out->key = std::string(msg.key);
  out->payload = std::string(msg.payload);
  out->headers.emplace_back("batchbus.error", StrCat(Where(msg), ": ", why));
  return out;
}

std::string Intake::Where(const Message& msg) {
  return StrCat(msg.topic, "[", msg.partition, "]@", msg.offset);
}

}  // namespace batchbus
