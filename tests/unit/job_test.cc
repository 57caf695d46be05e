#include "batchbus/job.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace batchbus {
namespace {

TEST(JobIdTest, TextFormIsLowercaseHexHiFirstZeroPadded) {
  EXPECT_EQ(JobId(0, 0).ToString(), "00000000000000000000000000000000");
  EXPECT_EQ(JobId(1, 2).ToString(), "00000000000000010000000000000002");
  EXPECT_EQ(JobId(0x0123456789abcdefull, 0xfedcba9876543210ull).ToString(),
            "0123456789abcdeffedcba9876543210");
  EXPECT_EQ(JobId(~0ull, ~0ull).ToString(), std::string(32, 'f'));
}

TEST(JobIdTest, AppendToAppends) {
  std::string out = "id=";
  JobId(0xab, 0xcd).AppendTo(out);
  EXPECT_EQ(out, "id=00000000000000ab00000000000000cd");
}

TEST(JobIdTest, StreamsAsText) {
  std::ostringstream os;
  os << JobId(0, 0xff);
  EXPECT_EQ(os.str(), "000000000000000000000000000000ff");
}

TEST(JobIdTest, RoundTrip) {
  for (int i = 0; i < 1000; ++i) {
    const JobId id = JobId::Random();
    const std::string text = id.ToString();
    ASSERT_EQ(text.size(), 32u);
    for (char c : text) {
      ASSERT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << text;
    }
    const std::optional<JobId> parsed = JobId::FromString(text);
    ASSERT_TRUE(parsed.has_value()) << text;
    EXPECT_EQ(*parsed, id);
  }
}

TEST(JobIdTest, FromStringAcceptsUpperCase) {
  const std::optional<JobId> id =
      JobId::FromString("0123456789ABCDEFfedcba9876543210");
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->hi(), 0x0123456789abcdefull);
  EXPECT_EQ(id->lo(), 0xfedcba9876543210ull);
  EXPECT_EQ(id->ToString(), "0123456789abcdeffedcba9876543210");
}

TEST(JobIdTest, FromStringRejectsBadText) {
  const std::string good = "0123456789abcdeffedcba9876543210";
  ASSERT_TRUE(JobId::FromString(good).has_value());

  EXPECT_FALSE(JobId::FromString("").has_value());
  EXPECT_FALSE(JobId::FromString(good.substr(1)).has_value());      // 31
  EXPECT_FALSE(JobId::FromString(good + "0").has_value());          // 33
  EXPECT_FALSE(JobId::FromString(good + good).has_value());         // 64
  EXPECT_FALSE(JobId::FromString("0123456789abcdef").has_value());  // 16
  EXPECT_FALSE(
      JobId::FromString("0123456789abcdeffedcba987654321g").has_value());
  EXPECT_FALSE(
      JobId::FromString("g123456789abcdeffedcba9876543210").has_value());
  EXPECT_FALSE(
      JobId::FromString("0123456789abcdef-edcba9876543210").has_value());
  EXPECT_FALSE(
      JobId::FromString(" 123456789abcdeffedcba9876543210").has_value());
  EXPECT_FALSE(
      JobId::FromString("0x23456789abcdeffedcba9876543210").has_value());
  EXPECT_FALSE(
      JobId::FromString("01234567-89ab-cdef-fedc-ba9876543210").has_value());
  std::string with_nul = good;
  with_nul[5] = '\0';
  EXPECT_FALSE(JobId::FromString(with_nul).has_value());
}

TEST(JobIdTest, RandomIsNeverZero) {
  for (int i = 0; i < 1000; ++i) EXPECT_FALSE(JobId::Random().IsZero());
}

TEST(JobIdTest, MillionRandomIdsFromFourThreadsAreDistinct) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 250'000;
  std::vector<std::vector<JobId>> per_thread(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&ids = per_thread[t]] {
      ids.reserve(kPerThread);
      for (int i = 0; i < kPerThread; ++i) ids.push_back(JobId::Random());
    });
  }
  for (std::thread& t : threads) t.join();

  std::vector<JobId> all;
  all.reserve(kThreads * kPerThread);
  for (const auto& ids : per_thread) {
    all.insert(all.end(), ids.begin(), ids.end());
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end())
      << "duplicate id among " << all.size();
}

TEST(JobIdTest, ForkedChildDoesNotRepeatParentIds) {
  JobId::Random();  // Seed this thread before forking.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    const JobId id = JobId::Random();
    const uint64_t words[2] = {id.hi(), id.lo()};
    const ssize_t n = write(fds[1], words, sizeof(words));
    _exit(n == static_cast<ssize_t>(sizeof(words)) ? 0 : 1);
  }
  close(fds[1]);
  const JobId parent_id = JobId::Random();
  uint64_t words[2] = {0, 0};
  ASSERT_EQ(read(fds[0], words, sizeof(words)),
            static_cast<ssize_t>(sizeof(words)));
  close(fds[0]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_NE(JobId(words[0], words[1]), parent_id);
}

TEST(JobIdTest, Ordering) {
  EXPECT_LT(JobId(0, 5), JobId(1, 0));
  EXPECT_LT(JobId(1, 0), JobId(1, 1));
  EXPECT_NE(JobId(1, 0), JobId(0, 1));
  EXPECT_TRUE(JobId().IsZero());
}

TEST(PriorityTest, NamesRoundTrip) {
  EXPECT_EQ(PriorityName(Priority::kRealtime), "realtime");
  EXPECT_EQ(PriorityName(Priority::kNormal), "normal");
  EXPECT_EQ(PriorityName(Priority::kSlow), "slow");
  for (Priority p : kAllPriorities) {
    EXPECT_EQ(ParsePriority(PriorityName(p)), p);
  }
}

TEST(PriorityTest, UnknownNamesAreNullopt) {
  EXPECT_EQ(ParsePriority(""), std::nullopt);
  EXPECT_EQ(ParsePriority("fast"), std::nullopt);
  EXPECT_EQ(ParsePriority("Normal"), std::nullopt);
  EXPECT_EQ(ParsePriority("normal "), std::nullopt);
}

TEST(JobStatusTest, NamesRoundTrip) {
  const JobStatus all[] = {JobStatus::kNew, JobStatus::kSubmitted,
                           JobStatus::kProcessedOk, JobStatus::kProcessedError,
                           JobStatus::kBatchFailed};
  const char* names[] = {"NEW", "SUBMITTED", "PROCESSED_OK", "PROCESSED_ERROR",
                         "BATCH_FAILED"};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(JobStatusName(all[i]), names[i]);
    EXPECT_EQ(ParseJobStatus(names[i]), all[i]);
  }
}

TEST(JobStatusTest, UnknownNamesAreNullopt) {
  EXPECT_EQ(ParseJobStatus(""), std::nullopt);
  EXPECT_EQ(ParseJobStatus("processed_ok"), std::nullopt);
  EXPECT_EQ(ParseJobStatus("DONE"), std::nullopt);
}

TEST(JobStatusTest, Terminal) {
  EXPECT_FALSE(IsTerminal(JobStatus::kNew));
  EXPECT_FALSE(IsTerminal(JobStatus::kSubmitted));
  EXPECT_TRUE(IsTerminal(JobStatus::kProcessedOk));
  EXPECT_TRUE(IsTerminal(JobStatus::kProcessedError));
  EXPECT_TRUE(IsTerminal(JobStatus::kBatchFailed));
}

}  // namespace
}  // namespace batchbus
