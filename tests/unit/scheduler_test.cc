// The scheduler's specification: it never hands out a lower priority while
// a higher one is ready (also mid-batch), keeps batch and job order within
// a priority, bounds prefetch, and drops a revoked partition's jobs.
#include "scheduler.h"

#include <memory>
#include <vector>

#include "gtest/gtest.h"

namespace batchbus {
namespace {

class SchedulerTest : public ::testing::Test {
 protected:
  SchedulerTest() : scheduler_(Options()) {}
  static Scheduler::Options Options() {
    Scheduler::Options o;
    o.prefetch_jobs = 4;
    o.pacing = false;
    return o;
  }
  InBatch* Batch(Priority p, uint32_t jobs, int32_t partition = 0) {
    batches_.push_back(std::make_unique<InBatch>());
    InBatch* b = batches_.back().get();
    b->priority = p;
    b->partition = partition;
    b->size = jobs;
    return b;
  }
  std::optional<Scheduler::Pick> Take() {
    absl::Duration wait;
    return scheduler_.Take(absl::InfinitePast(), wait);
  }

  Scheduler scheduler_;
  std::vector<std::unique_ptr<InBatch>> batches_;
};

TEST_F(SchedulerTest, NeverHandsOutALowerPriorityWhileAHigherOneIsReady) {
  InBatch* slow = Batch(Priority::kSlow, 3);
  InBatch* normal = Batch(Priority::kNormal, 2);
  scheduler_.Add(slow);
  scheduler_.Add(normal);
  EXPECT_EQ(Take()->batch, normal);
  InBatch* realtime = Batch(Priority::kRealtime, 1);
  scheduler_.Add(realtime);  // Arrives while normal is half handed out.
  EXPECT_EQ(Take()->batch, realtime);
  EXPECT_EQ(Take()->batch, normal);
  for (uint32_t i = 0; i < 3; ++i) {
    auto pick = Take();
    ASSERT_TRUE(pick.has_value());
    EXPECT_EQ(pick->batch, slow);
    EXPECT_EQ(pick->index, i) << "jobs of a batch go in order";
  }
  EXPECT_FALSE(Take().has_value());
}

TEST_F(SchedulerTest, BatchesOfOnePriorityGoInArrivalOrder) {
  InBatch* first = Batch(Priority::kNormal, 1);
  InBatch* second = Batch(Priority::kNormal, 1);
  scheduler_.Add(first);
  scheduler_.Add(second);
  EXPECT_EQ(Take()->batch, first);
  EXPECT_EQ(Take()->batch, second);
}

TEST_F(SchedulerTest, PrefetchBoundsLowPrioritiesButNeverRealtime) {
  EXPECT_TRUE(scheduler_.HasRoom(Priority::kSlow));
  scheduler_.Add(Batch(Priority::kSlow, 5));  // One batch may overshoot.
  EXPECT_FALSE(scheduler_.HasRoom(Priority::kSlow));
  EXPECT_TRUE(scheduler_.HasRoom(Priority::kNormal)) << "bounds are per priority";
  scheduler_.Add(Batch(Priority::kRealtime, 50));
  EXPECT_TRUE(scheduler_.HasRoom(Priority::kRealtime));
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(Take().has_value());
  auto pick = Take();  // 5 -> 4 slow jobs ready: still at the bound.
  EXPECT_FALSE(pick->room_opened);
  pick = Take();  // 4 -> 3: below it.
  EXPECT_TRUE(pick->room_opened);
  EXPECT_TRUE(scheduler_.HasRoom(Priority::kSlow));
  EXPECT_EQ(scheduler_.ready_jobs(Priority::kSlow), 3u);
}

TEST_F(SchedulerTest, RevokedPartitionKeepsOnlyTheJobsHandedOut) {
  InBatch* mine = Batch(Priority::kNormal, 3, /*partition=*/1);
  InBatch* revoked = Batch(Priority::kNormal, 3, /*partition=*/2);
  scheduler_.Add(revoked);
  scheduler_.Add(mine);
  ASSERT_EQ(Take()->batch, revoked);  // One job of it handed out.
  scheduler_.Revoke(Priority::kNormal, 2);
  EXPECT_EQ(revoked->size, 1u) << "the other two are the next owner's";
  EXPECT_EQ(scheduler_.ready_jobs(Priority::kNormal), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Take()->batch, mine);
  EXPECT_FALSE(Take().has_value());
}

TEST_F(SchedulerTest, EmptyBatchIsNeverHandedOut) {
  scheduler_.Add(Batch(Priority::kNormal, 0));
  EXPECT_FALSE(Take().has_value());
  EXPECT_EQ(scheduler_.ready_jobs(Priority::kNormal), 0u);
}

// With pacing engaged by late realtime messages, a held-back normal job
// holds slow jobs back too, and realtime jobs still go at once.
TEST(SchedulerPacing, HeldBackPriorityIsNotPassedByALowerOne) {
  Scheduler::Options o;
  o.prefetch_jobs = 1'000'000;
  Scheduler s(o);
  std::vector<std::unique_ptr<InBatch>> batches;
  auto add = [&](Priority p, uint32_t jobs) {
    batches.push_back(std::make_unique<InBatch>());
    batches.back()->priority = p;
    batches.back()->size = jobs;
    s.Add(batches.back().get());
    return batches.back().get();
  };
  add(Priority::kNormal, 1'000'000);
  add(Priority::kSlow, 1'000'000);
  absl::Time t = absl::FromUnixSeconds(1'000'000);
  // 1 s of prompt realtime messages while normal jobs flow, then late ones.
  bool held = false;
  for (int ms = 0; ms < 3000 && !held; ++ms) {
    t += absl::Milliseconds(1);
    s.OnRealtime(t, ms < 1000 ? absl::Milliseconds(1) : absl::Milliseconds(30));
    for (int i = 0; i < 200; ++i) {
      absl::Duration wait;
      auto pick = s.Take(t, wait);
      if (!pick) {
        held = true;
        EXPECT_GT(wait, absl::ZeroDuration());
        break;
      }
      ASSERT_EQ(pick->batch->priority, Priority::kNormal)
          << "a slow job went while normal jobs were ready";
    }
  }
  ASSERT_TRUE(held) << "late realtime messages never engaged pacing";
  EXPECT_GT(s.paced(), 0u);
  InBatch* realtime = add(Priority::kRealtime, 1);
  absl::Duration wait;
  auto pick = s.Take(t, wait);
  ASSERT_TRUE(pick.has_value()) << "realtime is never paced";
  EXPECT_EQ(pick->batch, realtime);
}

}  // namespace
}  // namespace batchbus
