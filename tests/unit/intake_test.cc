// Intake's specification: a well-formed batch for this processor becomes a
// ready batch with a Task state per job; anything else is refused with the
// reason, and its dead-letter copy keeps the bytes and says where and why.
// The outbox's error classification rides along: what is never retried.
#include "intake.h"

#include <string>

#include "gtest/gtest.h"
#include "outbox.h"
#include "wire.h"

namespace batchbus {
namespace {

constexpr std::string_view kInstance = "0123456789abcdef0123456789abcdef";

std::string EncodedBatch(std::string_view processor, int jobs) {
  wire::BatchWriter w;
  w.Begin({kInstance, 42, "bb.replies", 3, processor, Priority::kSlow});
  for (int i = 0; i < jobs; ++i) w.AddJob(JobId(1, i), "resize", "{\"n\":1}");
  return w.Finish();
}

Intake::Message At(std::string_view payload) {
  return {Priority::kSlow, "bb.app.slow", 2, 77, "key", payload};
}

TEST(Intake, DecodesABatchWithATaskStatePerJob) {
  Intake intake("app", "bb.app.dead");
  const std::string payload = EncodedBatch("app", 3);
  auto batch = intake.Decode(At(payload));
  ASSERT_TRUE(batch.ok()) << batch.status();
  const InBatch& b = **batch;
  EXPECT_EQ(b.priority, Priority::kSlow);
  EXPECT_EQ(b.partition, 2);
  EXPECT_EQ(b.offset, 77);
  EXPECT_EQ(b.size, 3u);
  ASSERT_EQ(b.tasks.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) {
    EXPECT_EQ(b.tasks[i].batch, &b);
    EXPECT_EQ(b.tasks[i].index, i);
    EXPECT_FALSE(b.tasks[i].answered);
  }
  EXPECT_EQ(b.decoded.reply_partition, 3);
  EXPECT_EQ(b.decoded.jobs[2].id, JobId(1, 2));
}

TEST(Intake, RefusesABatchForAnotherProcessor) {
  Intake intake("app", "bb.app.dead");
  const std::string payload = EncodedBatch("other", 1);
  auto batch = intake.Decode(At(payload));
  ASSERT_FALSE(batch.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(batch.status()));
  EXPECT_NE(batch.status().message().find("'other'"), std::string::npos);
}

TEST(Intake, MalformedMessageCopyKeepsItsBytesAndSaysWhereAndWhy) {
  Intake intake("app", "bb.app.dead");
  const std::string payload = "{\"v\":1,\"jobs\":[";
  auto batch = intake.Decode(At(payload));
  ASSERT_FALSE(batch.ok());
  auto copy = intake.DeadLetterCopy(At(payload), "truncated");
  EXPECT_EQ(copy->topic, "bb.app.dead");
  EXPECT_EQ(copy->payload, payload);
  EXPECT_EQ(copy->key, "key");
  ASSERT_EQ(copy->headers.size(), 1u);
  EXPECT_EQ(copy->headers[0].first, "batchbus.error");
  EXPECT_EQ(copy->headers[0].second, "bb.app.slow[2]@77: truncated");
}

TEST(Outbox, PermanentErrorsAreTheOnesRetryingCannotFix) {
  for (auto err : {RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION,
                   RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
                   RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                   RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE}) {
    EXPECT_TRUE(Outbox::IsPermanent(err)) << rd_kafka_err2str(err);
  }
  for (auto err : {RD_KAFKA_RESP_ERR__QUEUE_FULL, RD_KAFKA_RESP_ERR__MSG_TIMED_OUT,
                   RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                   RD_KAFKA_RESP_ERR__TRANSPORT,
                   RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS}) {
    EXPECT_FALSE(Outbox::IsPermanent(err)) << rd_kafka_err2str(err);
  }
}

}  // namespace
}  // namespace batchbus
