// The offset tracker's specification: a partition commits only past a
// contiguous prefix of done batches, in offset order whatever the order
// they were registered in; a revoked partition commits nothing more.
#include "offset_tracker.h"

#include <optional>

#include "gtest/gtest.h"

namespace batchbus {
namespace {

const PartitionKey kSlow3{Priority::kSlow, 3};
const PartitionKey kNormal3{Priority::kNormal, 3};

TEST(OffsetTracker, CommitsOnlyPastAContiguousDonePrefix) {
  OffsetTracker t;
  for (int64_t o : {10, 11, 12}) t.Begin(kSlow3, o);
  EXPECT_EQ(t.Finish(kSlow3, 11), std::nullopt) << "10 is not done yet";
  EXPECT_EQ(t.Finish(kSlow3, 10), std::optional<int64_t>(12));
  EXPECT_EQ(t.in_flight(kSlow3), 1u);
  EXPECT_EQ(t.Finish(kSlow3, 12), std::optional<int64_t>(13));
  EXPECT_EQ(t.in_flight(kSlow3), 0u);
}

TEST(OffsetTracker, BatchesRegisteredOutOfOffsetOrderCommitInOffsetOrder) {
  OffsetTracker t;
  t.Begin(kSlow3, 20);  // Arrived first, e.g. through the fallback queue.
  t.Begin(kSlow3, 5);
  EXPECT_EQ(t.Finish(kSlow3, 20), std::nullopt)
      << "committing 21 would skip the batch at 5";
  EXPECT_EQ(t.Finish(kSlow3, 5), std::optional<int64_t>(21));
}

TEST(OffsetTracker, GapsBetweenOffsetsDoNotHoldCommitsBack) {
  OffsetTracker t;
  t.Begin(kSlow3, 0);
  t.Begin(kSlow3, 7);  // 1-6: transaction markers or compacted away.
  EXPECT_EQ(t.Finish(kSlow3, 0), std::optional<int64_t>(1));
  EXPECT_EQ(t.Finish(kSlow3, 7), std::optional<int64_t>(8));
}

TEST(OffsetTracker, PartitionsOfEachTopicAreTrackedApart) {
  OffsetTracker t;
  t.Begin(kSlow3, 1);
  t.Begin(kNormal3, 1);
  EXPECT_EQ(t.Finish(kNormal3, 1), std::optional<int64_t>(2));
  EXPECT_EQ(t.in_flight(kSlow3), 1u);
}

TEST(OffsetTracker, RevokedMidBatchCommitsNothingMore) {
  OffsetTracker t;
  t.Begin(kSlow3, 1);
  t.Begin(kSlow3, 2);
  EXPECT_EQ(t.Finish(kSlow3, 1), std::optional<int64_t>(2));
  t.Forget(kSlow3);  // Batch 2 is the next owner's now.
  EXPECT_EQ(t.Finish(kSlow3, 2), std::nullopt);
  EXPECT_EQ(t.in_flight(kSlow3), 0u);
}

TEST(OffsetTracker, RedeliveredBatchAtOrBelowTheCommitIsIgnored) {
  OffsetTracker t;
  t.Begin(kSlow3, 4);
  ASSERT_EQ(t.Finish(kSlow3, 4), std::optional<int64_t>(5));
  t.Begin(kSlow3, 4);  // Fetched again after a seek.
  EXPECT_EQ(t.in_flight(kSlow3), 0u);
  EXPECT_EQ(t.Finish(kSlow3, 4), std::nullopt) << "would commit backwards";
}

TEST(OffsetTracker, FinishingAnUnknownOffsetCommitsNothing) {
  OffsetTracker t;
  EXPECT_EQ(t.Finish(kSlow3, 9), std::nullopt);
  t.Begin(kSlow3, 1);
  EXPECT_EQ(t.Finish(kSlow3, 9), std::nullopt);
  EXPECT_EQ(t.in_flight(kSlow3), 1u);
}

}  // namespace
}  // namespace batchbus
