// The result batcher's specification: one open message per reply address;
// sealed when it holds a realtime result, completes a batch, reaches
// result_max_bytes, would pass max_message_bytes, or lingered; what it
// carries decodes back and acknowledges its batches.
#include "result_batcher.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/hash/hash.h"
#include "gtest/gtest.h"
#include "wire.h"

namespace batchbus {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'000'000);
constexpr std::string_view kInstanceA = "0123456789abcdef0123456789abcdef";
constexpr std::string_view kInstanceB = "fedcba9876543210fedcba9876543210";

class ResultBatcherTest : public ::testing::Test {
 protected:
  ResultBatcherTest() : batcher_(Options()) {}
  static ResultBatcher::Options Options() {
    ResultBatcher::Options o;
    o.max_message_bytes = 4096;
    o.result_max_bytes = 2048;
    o.linger = absl::Milliseconds(5);
    return o;
  }
  InBatch* Batch(Priority p, uint32_t jobs, std::string_view instance = kInstanceA,
                 int32_t reply_partition = 1) {
    batches_.push_back(std::make_unique<InBatch>());
    InBatch* b = batches_.back().get();
    b->priority = p;
    b->size = jobs;
    b->decoded.instance = instance;
    b->decoded.reply_topic = "bb.replies";
    b->decoded.reply_partition = reply_partition;
    b->decoded.seq = batches_.size();
    for (uint32_t i = 0; i < jobs; ++i) {
      b->decoded.jobs.push_back({JobId(7, i), "g", "{}"});
    }
    b->reply_key = absl::HashOf(instance, reply_partition);
    return b;
  }

  ResultBatcher batcher_;
  ResultBatcher::Sealed sealed_;
  std::vector<std::unique_ptr<InBatch>> batches_;
};

TEST_F(ResultBatcherTest, LingersUntilItsDeadlineThenSeals) {
  InBatch* b = Batch(Priority::kNormal, 3);
  EXPECT_TRUE(batcher_.Add(b, 0, true, "1", [] { return kT0; }, sealed_)) << "opened";
  EXPECT_FALSE(batcher_.Add(b, 1, true, "2", [] { return kT0; }, sealed_));
  EXPECT_TRUE(sealed_.empty());
  EXPECT_EQ(batcher_.SealDue(kT0 + absl::Milliseconds(4), sealed_),
            kT0 + absl::Milliseconds(5));
  EXPECT_TRUE(sealed_.empty());
  EXPECT_EQ(batcher_.SealDue(kT0 + absl::Milliseconds(5), sealed_),
            absl::InfiniteFuture());
  ASSERT_EQ(sealed_.size(), 1u);
  EXPECT_EQ(sealed_[0]->acks.size(), 1u);
  EXPECT_EQ(sealed_[0]->acks[0].first, b);
  EXPECT_EQ(sealed_[0]->acks[0].second, 2u);
  EXPECT_EQ(b->answered, 2u);
}

TEST_F(ResultBatcherTest, SealsWhenABatchIsComplete) {
  InBatch* b = Batch(Priority::kSlow, 2);
  batcher_.Add(b, 0, true, "1", [] { return kT0; }, sealed_);
  EXPECT_TRUE(sealed_.empty());
  EXPECT_FALSE(batcher_.Add(b, 1, false, "bad", [] { return kT0; }, sealed_))
      << "sealed at once: no linger to schedule";
  ASSERT_EQ(sealed_.size(), 1u);
  EXPECT_FALSE(sealed_[0]->realtime);
  EXPECT_EQ(batcher_.open_results(), 0u);
}

TEST_F(ResultBatcherTest, RealtimeResultsGoAtOnceThroughTheRealtimeLane) {
  InBatch* slow = Batch(Priority::kSlow, 5);
  InBatch* rt = Batch(Priority::kRealtime, 5);
  batcher_.Add(slow, 0, true, "1", [] { return kT0; }, sealed_);
  batcher_.Add(rt, 0, true, "2", [] { return kT0; }, sealed_);
  ASSERT_EQ(sealed_.size(), 1u) << "same address: one message";
  EXPECT_TRUE(sealed_[0]->realtime);
  EXPECT_EQ(sealed_[0]->acks.size(), 2u);
}

TEST_F(ResultBatcherTest, EachReplyAddressHasItsOwnMessage) {
  InBatch* a = Batch(Priority::kNormal, 2, kInstanceA, 1);
  InBatch* b = Batch(Priority::kNormal, 2, kInstanceB, 1);
  InBatch* a2 = Batch(Priority::kNormal, 2, kInstanceA, 2);
  batcher_.Add(a, 0, true, "1", [] { return kT0; }, sealed_);
  batcher_.Add(b, 0, true, "1", [] { return kT0; }, sealed_);
  batcher_.Add(a2, 0, true, "1", [] { return kT0; }, sealed_);
  EXPECT_EQ(batcher_.open_results(), 3u);
  batcher_.SealAll(sealed_);
  ASSERT_EQ(sealed_.size(), 3u);
  for (const auto& m : sealed_) {
    EXPECT_EQ(m->acks.size(), 1u);
    EXPECT_EQ(m->topic, "bb.replies");
    EXPECT_EQ(m->partition, m->acks[0].first->decoded.reply_partition);
    EXPECT_EQ(m->key, m->acks[0].first->decoded.instance);
  }
}

TEST_F(ResultBatcherTest, NeverPassesMaxMessageBytesAndSealsAtResultMaxBytes) {
  InBatch* b = Batch(Priority::kNormal, 100);
  const std::string big = "\"" + std::string(900, 'x') + "\"";
  for (uint32_t i = 0; i < 10; ++i) {
    batcher_.Add(b, i, true, big, [] { return kT0; }, sealed_);
  }
  batcher_.SealAll(sealed_);
  ASSERT_GE(sealed_.size(), 4u);
  uint32_t results = 0;
  for (const auto& m : sealed_) {
    EXPECT_LE(m->payload.size(), Options().max_message_bytes);
    results += m->acks[0].second;
  }
  EXPECT_EQ(results, 10u);
}

TEST_F(ResultBatcherTest, MessagesDecodeBackToTheResults) {
  InBatch* b = Batch(Priority::kNormal, 2);
  batcher_.Add(b, 0, true, "{\"ok\":1}", [] { return kT0; }, sealed_);
  batcher_.Add(b, 1, false, "no \"such\" thing", [] { return kT0; }, sealed_);
  ASSERT_EQ(sealed_.size(), 1u);
  wire::Decoder decoder;
  std::string_view instance;
  std::vector<wire::ResultEntry> entries;
  ASSERT_TRUE(decoder.DecodeResults(sealed_[0]->payload, instance, entries).ok());
  EXPECT_EQ(instance, kInstanceA);
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].id, JobId(7, 0));
  EXPECT_EQ(entries[0].status, JobStatus::kProcessedOk);
  EXPECT_EQ(entries[0].data, "{\"ok\":1}");
  EXPECT_EQ(entries[1].status, JobStatus::kProcessedError);
  EXPECT_EQ(entries[1].error, "no \"such\" thing");
  EXPECT_EQ(entries[1].seq, b->decoded.seq);
  EXPECT_EQ(entries[1].index, 1u);
}

TEST_F(ResultBatcherTest, AnswersAVersionOneBatchInVersionOne) {
  InBatch* old_batch = Batch(Priority::kNormal, 1);
  old_batch->decoded.version = 1;
  batcher_.Add(old_batch, 0, true, "1", [] { return kT0; }, sealed_);
  ASSERT_EQ(sealed_.size(), 1u);
  EXPECT_EQ(sealed_[0]->payload.rfind("{\"v\":1,", 0), 0u) << sealed_[0]->payload;

  // Same address, current version: a message of its own, in version 2.
  InBatch* new_batch = Batch(Priority::kNormal, 1);
  batcher_.Add(new_batch, 0, true, "2", [] { return kT0; }, sealed_);
  ASSERT_EQ(sealed_.size(), 2u);
  EXPECT_EQ(sealed_[1]->payload.rfind("{\"v\":2,", 0), 0u) << sealed_[1]->payload;
}

TEST_F(ResultBatcherTest, EventsAnswerNothingAndKeepTheirOrderBeforeTheResult) {
  InBatch* b = Batch(Priority::kNormal, 1);
  b->decoded.jobs[0].fields.attempt = 2;
  batcher_.AddEvent(b, 0, wire::ResultEntry::Kind::kStarted, "", [] { return kT0; },
                    sealed_);
  batcher_.AddEvent(b, 0, wire::ResultEntry::Kind::kProgress, "{\"p\":1}",
                    [] { return kT0; }, sealed_);
  EXPECT_EQ(b->answered, 0u);
  EXPECT_TRUE(sealed_.empty()) << "an event does not complete its batch";
  batcher_.Add(b, 0, true, "7", [] { return kT0; }, sealed_);
  ASSERT_EQ(sealed_.size(), 1u);
  ASSERT_EQ(sealed_[0]->acks.size(), 1u);
  EXPECT_EQ(sealed_[0]->acks[0].second, 1u) << "only the result acknowledges";

  wire::Decoder decoder;
  std::string_view instance;
  std::vector<wire::ResultEntry> entries;
  ASSERT_TRUE(decoder.DecodeResults(sealed_[0]->payload, instance, entries).ok());
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].kind, wire::ResultEntry::Kind::kStarted);
  EXPECT_EQ(entries[1].kind, wire::ResultEntry::Kind::kProgress);
  EXPECT_EQ(entries[1].data, "{\"p\":1}");
  EXPECT_EQ(entries[2].kind, wire::ResultEntry::Kind::kResult);
  EXPECT_EQ(entries[2].attempts, 2u);
}

TEST_F(ResultBatcherTest, AVersionOneBatchGetsNoEvents) {
  InBatch* b = Batch(Priority::kNormal, 1);
  b->decoded.version = 1;
  EXPECT_FALSE(batcher_.AddEvent(b, 0, wire::ResultEntry::Kind::kStarted, "",
                                 [] { return kT0; }, sealed_));
  EXPECT_EQ(batcher_.open_results(), 0u);
}

TEST_F(ResultBatcherTest, ExpiredJobIsAnsweredExpired) {
  InBatch* b = Batch(Priority::kRealtime, 1);
  batcher_.AddExpired(b, 0, "too late", [] { return kT0; }, sealed_);
  ASSERT_EQ(sealed_.size(), 1u);
  EXPECT_EQ(b->answered, 1u);
  wire::Decoder decoder;
  std::string_view instance;
  std::vector<wire::ResultEntry> entries;
  ASSERT_TRUE(decoder.DecodeResults(sealed_[0]->payload, instance, entries).ok());
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].status, JobStatus::kExpired);
  EXPECT_EQ(entries[0].error, "too late");
}

}  // namespace
}  // namespace batchbus
