#include "partition_window.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace batchbus {
namespace {

using Window = PartitionWindow<std::string>;

// Every message of `chunks`, in order.
std::vector<std::string> All(const std::vector<Window::Chunk>& chunks) {
  std::vector<std::string> out;
  for (const auto& c : chunks) out.insert(out.end(), c.messages.begin(), c.messages.end());
  return out;
}

TEST(PartitionWindow, PassesEverythingWhileThePartitionCountIsUnknown) {
  Window w;
  for (int i = 0; i < 20; ++i) w.Offer(std::to_string(i), 100);
  const auto chunks = w.Ready();
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].partition, -1);
  EXPECT_EQ(chunks[0].messages.size(), 20u);
  EXPECT_EQ(w.held(), 0u);
}

TEST(PartitionWindow, SpreadsSingleMessagesOverTheLeastLoadedPartitions) {
  Window w;
  w.SetPartitions(4);
  std::vector<int> seen(4, 0);
  for (int i = 0; i < 8; ++i) {
    w.Offer(std::to_string(i), 100);
    const auto chunks = w.Ready();
    ASSERT_EQ(chunks.size(), 1u);
    ASSERT_EQ(chunks[0].messages.size(), 1u);
    ++seen[chunks[0].partition];
  }
  EXPECT_EQ(seen, std::vector<int>({2, 2, 2, 2}));
}

TEST(PartitionWindow, HoldsWhenEveryPartitionIsFullAndSendsTheRestTogether) {
  Window w;  // Limit 5.
  w.SetPartitions(2);
  for (int i = 0; i < 10; ++i) {
    w.Offer(std::to_string(i), 100);
    EXPECT_EQ(w.Ready().size(), 1u) << i;
  }
  EXPECT_EQ(w.undelivered(0), 5);
  EXPECT_EQ(w.undelivered(1), 5);
  for (int i = 10; i < 40; ++i) {
    w.Offer(std::to_string(i), 100);
    EXPECT_TRUE(w.Ready().empty()) << i;
  }
  EXPECT_EQ(w.held(), 30u);
  // One answer on partition 1 makes room there: all 30 go, in order, in
  // one chunk that fits a request.
  w.Answered(1);
  const auto chunks = w.Ready();
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].partition, 1);
  ASSERT_EQ(chunks[0].messages.size(), 30u);
  EXPECT_EQ(chunks[0].messages.front(), "10");
  EXPECT_EQ(chunks[0].messages.back(), "39");
  EXPECT_EQ(w.undelivered(1), 34);
  EXPECT_EQ(w.held(), 0u);
}

TEST(PartitionWindow, ChunksFitOneRequestByBytesAndByCount) {
  Window by_bytes(Window::Options{5, 1000, 100});
  by_bytes.SetPartitions(1);
  for (int i = 0; i < 8; ++i) by_bytes.Offer(std::to_string(i), 400);
  by_bytes.Offer("big", 5000);  // Larger than a chunk: goes alone.
  std::vector<size_t> sizes;
  for (const auto& c : by_bytes.Ready()) sizes.push_back(c.messages.size());
  // 2 + 2 + 2 undelivered reach the limit of 5: the rest waits.
  EXPECT_EQ(sizes, std::vector<size_t>({2, 2, 2}));
  EXPECT_EQ(by_bytes.held(), 3u);
  for (int i = 0; i < 6; ++i) by_bytes.Answered(0);
  sizes.clear();
  for (const auto& c : by_bytes.Ready()) sizes.push_back(c.messages.size());
  EXPECT_EQ(sizes, std::vector<size_t>({2, 1}));

  Window by_count(Window::Options{5, 1'000'000, 3});
  by_count.SetPartitions(1);
  for (int i = 0; i < 10; ++i) by_count.Offer("x", 1);
  sizes.clear();
  for (const auto& c : by_count.Ready()) sizes.push_back(c.messages.size());
  EXPECT_EQ(sizes, std::vector<size_t>({3, 3}));
  EXPECT_EQ(by_count.held(), 4u);
}

TEST(PartitionWindow, AMessageForOnePartitionWaitsForRoomThere) {
  Window w;
  w.SetPartitions(4);
  for (int i = 0; i < 5; ++i) {
    w.Offer("r" + std::to_string(i), 10, 2);
    ASSERT_EQ(w.Ready().size(), 1u);
  }
  w.Offer("r5", 10, 2);
  w.Offer("any", 10);
  const auto chunks = w.Ready();  // Partition 2 is full; others are free.
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_NE(chunks[0].partition, 2);
  EXPECT_EQ(All(chunks), std::vector<std::string>({"any"}));
  EXPECT_EQ(w.held(), 1u);
  w.Answered(2);
  const auto later = w.Ready();
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].partition, 2);
  EXPECT_EQ(All(later), std::vector<std::string>({"r5"}));
}

TEST(PartitionWindow, AFixedPartitionBeyondTheKnownCountIsLearned) {
  Window w;
  w.Offer("x", 10, 6);
  const auto chunks = w.Ready();
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].partition, 6);
  EXPECT_EQ(w.partitions(), 7);
}

TEST(PartitionWindow, TakeHeldEmptiesIt) {
  Window w;
  w.SetPartitions(1);
  for (int i = 0; i < 5; ++i) w.Offer("sent", 10);
  ASSERT_EQ(All(w.Ready()).size(), 5u);
  w.Offer("a", 10);
  w.Offer("b", 10, 0);
  EXPECT_TRUE(w.Ready().empty());
  std::vector<std::string> held = w.TakeHeld();
  std::sort(held.begin(), held.end());
  EXPECT_EQ(held, std::vector<std::string>({"a", "b"}));
  EXPECT_EQ(w.held(), 0u);
  for (int i = 0; i < 5; ++i) w.Answered(0);
  EXPECT_TRUE(w.Ready().empty());
}

}  // namespace
}  // namespace batchbus
