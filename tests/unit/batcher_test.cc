// The batcher's specification: a batch is sealed at max jobs, max bytes or
// linger, whichever comes first; realtime batches hold one job; each
// (processor, priority) has its own batch; the message decodes back.
#include "batcher.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "wire.h"

namespace batchbus {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'000'000);

class BatcherTest : public ::testing::Test {
 protected:
  BatcherTest() {
    config_.For(Priority::kNormal).max_jobs = 3;
    config_.For(Priority::kNormal).max_bytes = 100'000;
    config_.For(Priority::kNormal).max_linger = absl::Milliseconds(50);
    batcher_.SetReplyPartitions(partitions_);
  }
  static PerLane<int32_t> Partitions() {
    PerLane<int32_t> p;
    p[Lane::kRealtime] = 7;
    p[Lane::kBulk] = 8;
    return p;
  }

  // Adds a job of `data` and returns whether a lingering batch opened.
  bool Add(const std::string& processor, Priority priority,
           const std::string& data = "1", absl::Time now = kT0) {
    Job job;
    job.id = JobId(1, ++n_);
    job.processor = processor;
    job.group = "g";
    job.priority = priority;
    job.data = data;
    absl::StatusOr<size_t> size =
        CheckJob(job, JobFieldsOf(job, false), config_.max_message_bytes,
                 BatchHeaderBytes("instance", "replies"));
    EXPECT_TRUE(size.ok()) << size.status();
    return batcher_.Add(job, *size, ResultSink{}, now, sealed_);
  }

  wire::DecodedBatch Decode(const SealedBatch& batch) {
    wire::DecodedBatch out;
    EXPECT_TRUE(decoder_.DecodeBatch(batch.message->payload, out).ok());
    return out;
  }

  Config config_;
  PerLane<int32_t> partitions_ = Partitions();
  Batcher batcher_{config_, "instance", "replies"};
  std::vector<SealedBatch> sealed_;
  wire::Decoder decoder_;
  uint64_t n_ = 0;
};

TEST_F(BatcherTest, SealsAtMaxJobsWithoutWaitingForLinger) {
  EXPECT_TRUE(Add("app", Priority::kNormal));
  EXPECT_FALSE(Add("app", Priority::kNormal));
  EXPECT_TRUE(sealed_.empty());
  Add("app", Priority::kNormal);
  ASSERT_EQ(sealed_.size(), 1u);
  EXPECT_EQ(sealed_[0].jobs.size(), 3u);
  EXPECT_EQ(Decode(sealed_[0]).jobs.size(), 3u);
}

TEST_F(BatcherTest, SealsAtMaxBytesBeforeMaxJobs) {
  config_.For(Priority::kNormal).max_jobs = 100;
  config_.For(Priority::kNormal).max_bytes = 1000;
  const std::string data = "\"" + std::string(300, 'x') + "\"";
  for (int i = 0; i < 7; ++i) Add("app", Priority::kNormal, data);
  // A job that would take a batch past max_bytes opens the next batch.
  ASSERT_GE(sealed_.size(), 2u);
  for (const SealedBatch& b : sealed_) {
    EXPECT_LE(b.message->payload.size(), 1000u);
    EXPECT_LT(b.jobs.size(), 100u);
  }
}

TEST_F(BatcherTest, ABatchReachingMaxBytesExactlyIsSealedAtOnce) {
  config_.For(Priority::kNormal).max_jobs = 100;
  config_.For(Priority::kNormal).max_bytes = 1;  // Any job fills it.
  Add("app", Priority::kNormal);
  EXPECT_EQ(sealed_.size(), 1u);
}

TEST_F(BatcherTest, SealsAtLingerWhenNeitherLimitIsReached) {
  Add("app", Priority::kNormal, "1", kT0);
  Add("app", Priority::kNormal, "2", kT0 + absl::Milliseconds(10));
  EXPECT_EQ(batcher_.SealExpired(kT0 + absl::Milliseconds(49), sealed_),
            kT0 + absl::Milliseconds(50))
      << "linger counts from the first job";
  EXPECT_TRUE(sealed_.empty());
  EXPECT_EQ(batcher_.SealExpired(kT0 + absl::Milliseconds(50), sealed_),
            absl::InfiniteFuture());
  ASSERT_EQ(sealed_.size(), 1u);
  EXPECT_EQ(sealed_[0].jobs.size(), 2u);
}

TEST_F(BatcherTest, RealtimeJobsAreBatchesOfOne) {
  EXPECT_FALSE(Add("app", Priority::kRealtime)) << "nothing lingers";
  EXPECT_FALSE(Add("app", Priority::kRealtime));
  ASSERT_EQ(sealed_.size(), 2u);
  const wire::DecodedBatch batch = Decode(sealed_[0]);
  EXPECT_EQ(batch.priority, Priority::kRealtime);
  EXPECT_EQ(batch.reply_partition, 7);
}

TEST_F(BatcherTest, EachProcessorAndPriorityHasItsOwnBatch) {
  Add("a", Priority::kNormal);
  Add("b", Priority::kNormal);
  Add("a", Priority::kSlow);
  EXPECT_TRUE(sealed_.empty());
  batcher_.SealAll(sealed_);
  ASSERT_EQ(sealed_.size(), 3u);
  for (const SealedBatch& b : sealed_) {
    const wire::DecodedBatch batch = Decode(b);
    EXPECT_EQ(b.message->topic,
              config_.TopicFor(std::string(batch.processor), batch.priority));
    EXPECT_EQ(batch.reply_partition, 8);
    EXPECT_EQ(PriorityOfBatchSeq(batch.seq), batch.priority);
    EXPECT_EQ(b.message->priority, batch.priority);
  }
}

TEST_F(BatcherTest, BatchNumbersCountUpAndNameTheirPriority) {
  Add("app", Priority::kRealtime);
  Add("app", Priority::kRealtime);
  ASSERT_EQ(sealed_.size(), 2u);
  EXPECT_LT(sealed_[0].message->seq, sealed_[1].message->seq);
  EXPECT_EQ(PriorityOfBatchSeq(sealed_[1].message->seq), Priority::kRealtime);
}

TEST(CheckJob, RefusesWhatCannotBeSentAndSizesTheRest) {
  Job job;
  job.processor = "app";
  job.group = "g";
  job.data = " [1, 2] ";
  absl::StatusOr<size_t> size = CheckJob(job, {}, 1 << 20, 200);
  ASSERT_TRUE(size.ok());
  EXPECT_EQ(*size, wire::BatchWriter::JobSize("g", "[1, 2]"));

  Job bad = job;
  bad.processor = "has space";
  EXPECT_EQ(CheckJob(bad, {}, 1 << 20, 200).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad = job;
  bad.group = "";
  EXPECT_EQ(CheckJob(bad, {}, 1 << 20, 200).status().code(),
            absl::StatusCode::kInvalidArgument);
  bad = job;
  bad.data = "{";
  EXPECT_EQ(CheckJob(bad, {}, 1 << 20, 200).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckJob(job, {}, 200 + 3 + *size - 1, 200).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(CheckJob(job, {}, 200 + 3 + *size, 200).ok());
}

TEST(CheckJob, CountsTheLifecycleFieldsInTheJobSize) {
  Job job;
  job.processor = "app";
  job.group = "g";
  job.data = "1";
  job.deadline = absl::FromUnixMillis(1'900'000'000'000);
  const wire::JobFields fields = JobFieldsOf(job, true);
  EXPECT_EQ(fields.deadline_ms, 1'900'000'000'000);
  EXPECT_TRUE(fields.events);
  absl::StatusOr<size_t> plain = CheckJob(job, {}, 1 << 20, 200);
  absl::StatusOr<size_t> with_fields = CheckJob(job, fields, 1 << 20, 200);
  ASSERT_TRUE(plain.ok());
  ASSERT_TRUE(with_fields.ok());
  EXPECT_GE(*with_fields, *plain + std::string_view("\"deadline_ms\":1900000000000").size());
}

TEST(CheckTiming, RefusesAPassedDeadlineAndADelayPastTheBatchTimeout) {
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  Job job;
  EXPECT_TRUE(CheckTiming(job, absl::Seconds(30), now).ok());
  job.deadline = now;
  EXPECT_EQ(CheckTiming(job, absl::Seconds(30), now).code(),
            absl::StatusCode::kDeadlineExceeded);
  job.deadline = now + absl::Seconds(10);
  EXPECT_TRUE(CheckTiming(job, absl::Seconds(30), now).ok());
  job.not_before = now + absl::Seconds(10);
  EXPECT_EQ(CheckTiming(job, absl::Seconds(30), now).code(),
            absl::StatusCode::kInvalidArgument);
  job.deadline = absl::InfiniteFuture();
  EXPECT_TRUE(CheckTiming(job, absl::Seconds(30), now).ok());
  job.not_before = now + absl::Seconds(30);
  absl::Status late = CheckTiming(job, absl::Seconds(30), now);
  EXPECT_EQ(late.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(late.message()), ::testing::HasSubstr("batch timeout"));
}

}  // namespace
}  // namespace batchbus
