// Submitter → Kafka → Processor → results, on a mock cluster per test (label
// mock) and on the real broker (label kafka):
// strict priority, reply routing, handler failures, at-least-once hand-over
// and malformed messages.
#include <atomic>
#include <thread>

#include "random.h"
#include "support/test_cluster.h"
#include "wire.h"

namespace batchbus::testing {
namespace {

using EndToEndTest = ClusterTest;

// Calls Next() until `n` jobs were handed out (answering each at once).
std::vector<Priority> TakeJobs(Processor& processor, size_t n,
                               absl::Duration timeout) {
  std::vector<Priority> order;
  const absl::Time deadline = absl::Now() + timeout;
  while (order.size() < n && absl::Now() < deadline) {
    auto task = processor.Next(absl::Milliseconds(100));
    if (!task.ok()) continue;
    order.push_back(task->priority());
    EXPECT_TRUE(task->Complete(task->data()).ok());
  }
  return order;
}

TEST_F(EndToEndTest, HandsOutBacklogInStrictPriorityOrder) {
  config_.prefetch_jobs = 2000;
  Collector results;
  auto submitter = NewSubmitter();
  // The backlog is in Kafka before any processor exists.
  for (Priority p : {Priority::kSlow, Priority::kNormal, Priority::kRealtime}) {
    const int n = p == Priority::kRealtime ? 20 : 1000;
    for (int i = 0; i < n; ++i) {
      Job job = MakeJob("app", p);
      ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
    }
  }
  submitter->Flush();
  auto processor = Processor::Create(config_, "app");
  ASSERT_TRUE(processor.ok()) << processor.status();
  // Wait until everything is fetched, then drain.
  auto first = (*processor)->Next(absl::Seconds(30));
  ASSERT_TRUE(first.ok()) << first.status();
  absl::SleepFor(absl::Seconds(2));
  std::vector<Priority> order = {first->priority()};
  ASSERT_TRUE(first->Complete().ok());
  auto rest = TakeJobs(**processor, 2019, absl::Seconds(60));
  order.insert(order.end(), rest.begin(), rest.end());
  ASSERT_EQ(order.size(), 2020u);
  // The very first job may be whatever arrived first; after that the order
  // never goes back to a higher priority.
  for (size_t i = 2; i < order.size(); ++i) {
    ASSERT_LE(static_cast<int>(order[i - 1]), static_cast<int>(order[i]))
        << "job " << i << " went from " << PriorityName(order[i - 1])
        << " to " << PriorityName(order[i]);
  }
  EXPECT_EQ(order[1], Priority::kRealtime);
  ASSERT_TRUE(results.WaitFor(2020, absl::Seconds(30)));
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk), 2020u);
  EXPECT_TRUE((*processor)->Close(absl::Seconds(5)).ok());
}

TEST_F(EndToEndTest, RealtimeJobOvertakesHalfConsumedSlowBatch) {
  config_.For(Priority::kSlow).max_jobs = 500;
  auto processor = Processor::Create(config_, "app");
  ASSERT_TRUE(processor.ok()) << processor.status();
  Collector results;
  auto submitter = NewSubmitter();
  for (int i = 0; i < 500; ++i) {
    Job job = MakeJob("app", Priority::kSlow);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  // Take some of the slow batch.
  auto taken = TakeJobs(**processor, 10, absl::Seconds(30));
  ASSERT_EQ(taken.size(), 10u);
  EXPECT_EQ(taken[0], Priority::kSlow);

  Job urgent = MakeJob("app", Priority::kRealtime, "\"urgent\"");
  ASSERT_TRUE(submitter->Submit(urgent, results.Callback()).ok());
  absl::SleepFor(absl::Milliseconds(500));  // Let it arrive.
  auto next = (*processor)->Next(absl::Seconds(5));
  ASSERT_TRUE(next.ok());
  EXPECT_EQ(next->priority(), Priority::kRealtime);
  EXPECT_EQ(next->id(), urgent.id);
  ASSERT_TRUE(next->Complete("\"done\"").ok());
  ASSERT_TRUE(Eventually([&] { return results.total() >= 11; },
                         absl::Seconds(10)));
  EXPECT_EQ(results.Get(urgent.id).data, "\"done\"");

  TakeJobs(**processor, 490, absl::Seconds(30));
  ASSERT_TRUE(results.WaitFor(501, absl::Seconds(30)));
  EXPECT_TRUE((*processor)->Close(absl::Seconds(5)).ok());
}

// Realtime batch messages written by hand, stamped `late` before now, so the
// processor sees realtime jobs arriving that much later than they were sent.
class LateRealtimeWriter {
 public:
  explicit LateRealtimeWriter(const Config& config) : config_(config) {
    auto conf = kafka::MakeConf(config, kafka::Role::kProducer, {});
    EXPECT_TRUE(conf.ok()) << conf.status();
    auto producer = kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
    EXPECT_TRUE(producer.ok()) << producer.status();
    producer_ = std::move(*producer);
  }
  ~LateRealtimeWriter() { rd_kafka_flush(producer_.get(), 5000); }

  void Send(absl::Duration late) {
    const std::string topic = config_.TopicFor("app", Priority::kRealtime);
    const std::string reply = config_.ReplyTopic();
    wire::BatchWriter writer;
    writer.Begin({instance_, ++seq_, reply, 0, "app", Priority::kRealtime});
    writer.AddJob(JobId::Random(), "probe", "1");
    const std::string payload = writer.Finish();
    const int64_t stamp = absl::ToUnixMillis(absl::Now() - late);
    ASSERT_EQ(rd_kafka_producev(
                  producer_.get(), RD_KAFKA_V_TOPIC(topic.c_str()),
                  RD_KAFKA_V_VALUE(const_cast<char*>(payload.data()), payload.size()),
                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                  RD_KAFKA_V_TIMESTAMP(stamp), RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_poll(producer_.get(), 0);
  }

 private:
  Config config_;
  kafka::KafkaPtr producer_;
  std::string instance_ = JobId::Random().ToString();
  uint64_t seq_ = 0;
};

// Sends two realtime jobs on time, 30 stamped `late` before now, 10 ms
// apart, and then
// 3000 slow jobs, taking jobs all along. Returns how many slow jobs were
// handed out in the 400 ms after the last realtime job; all of them are
// taken and answered before it returns.
size_t SlowJobsRightAfterRealtime(Processor& processor, Submitter& submitter,
                                  LateRealtimeWriter& writer,
                                  absl::Duration late) {
  int realtime = 0;
  size_t slow = 0;
  auto take = [&](absl::Time until) {
    while (absl::Now() < until) {
      auto task = processor.Next(absl::Milliseconds(5));
      if (!task.ok()) continue;
      if (task->priority() == Priority::kRealtime) {
        ++realtime;
      } else {
        ++slow;
      }
      EXPECT_TRUE(task->Complete(task->data()).ok());
    }
  };
  // On-time realtime jobs set the base delay. The first may wait for the
  // processor to join its group, so a second one follows once it is in.
  for (int expected = 1; expected <= 2; ++expected) {
    writer.Send(absl::ZeroDuration());
    EXPECT_TRUE(Eventually(
        [&] {
          take(absl::Now() + absl::Milliseconds(10));
          return realtime == expected;
        },
        absl::Seconds(30)));
  }
  for (int i = 0; i < 30; ++i) {
    writer.Send(late);
    take(absl::Now() + absl::Milliseconds(10));
  }
  EXPECT_TRUE(Eventually(
      [&] {
        take(absl::Now() + absl::Milliseconds(5));
        return realtime == 32;
      },
      absl::Seconds(10)));
  Collector results;
  constexpr size_t kSlow = 3000;
  for (size_t i = 0; i < kSlow; ++i) {
    Job job = MakeJob("app", Priority::kSlow);
    EXPECT_TRUE(submitter.Submit(job, results.Callback()).ok());
  }
  submitter.Flush();
  take(absl::Now() + absl::Milliseconds(400));
  const size_t right_after = slow;
  EXPECT_TRUE(Eventually(
      [&] {
        take(absl::Now() + absl::Milliseconds(50));
        return slow == kSlow;
      },
      absl::Seconds(30)));
  EXPECT_TRUE(results.WaitFor(kSlow, absl::Seconds(30)));
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk), kSlow);
  return right_after;
}

// While realtime jobs arrive late, slow jobs go out slowly; nothing is lost,
// and once realtime traffic stops the backlog runs free again.
TEST_F(EndToEndTest, RealtimeLagTheBacklogDoesNotCauseDoesNotHoldItBack) {
  // Realtime jobs arrive 0-50 ms late for a reason the processor cannot
  // change (their producer timestamps are pushed back) while a slow backlog
  // is worked. Pacing may try a cut, sees that it does not help, and lets
  // the backlog run: 20,000 jobs drain in well under the 20 s that a
  // 1,000 jobs/s floor would take.
  config_.prefetch_jobs = 5000;
  config_.For(Priority::kSlow).max_jobs = 1000;
  auto processor = Processor::Create(config_, "app");
  ASSERT_TRUE(processor.ok()) << processor.status();
  auto submitter = NewSubmitter();
  LateRealtimeWriter writer(config_);
  // Both lanes' consumers join their groups first: an on-time realtime job
  // and a slow one must come through.
  Collector warm;
  {
    Job job = MakeJob("app", Priority::kSlow);
    ASSERT_TRUE(submitter->Submit(job, warm.Callback()).ok());
    submitter->Flush();
    writer.Send(absl::ZeroDuration());
    bool realtime_seen = false, slow_seen = false;
    ASSERT_TRUE(Eventually(
        [&] {
          auto task = (*processor)->Next(absl::Milliseconds(5));
          if (task.ok()) {
            (task->priority() == Priority::kRealtime ? realtime_seen
                                                     : slow_seen) = true;
            EXPECT_TRUE(task->Complete(task->data()).ok());
          }
          return realtime_seen && slow_seen;
        },
        absl::Seconds(30)));
  }
  std::atomic<bool> stop{false};
  std::thread probes([&] {
    Xoshiro256 random(42);
    while (!stop.load()) {
      writer.Send(absl::Milliseconds(static_cast<int64_t>(random.Next() % 50)));
      absl::SleepFor(absl::Milliseconds(2));
    }
  });
  absl::SleepFor(absl::Milliseconds(200));  // Probes flow before the backlog.
  Collector results;
  constexpr size_t kSlow = 20000;
  for (size_t i = 0; i < kSlow; ++i) {
    Job job = MakeJob("app", Priority::kSlow);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  submitter->Flush();
  size_t slow = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (slow < kSlow && absl::Now() < deadline) {
    auto task = (*processor)->Next(absl::Milliseconds(5));
    if (!task.ok()) continue;
    if (task->priority() == Priority::kSlow) ++slow;
    EXPECT_TRUE(task->Complete(task->data()).ok());
  }
  stop = true;
  probes.join();
  EXPECT_EQ(slow, kSlow) << "paced " << (*processor)->GetStats().paced;
  EXPECT_TRUE(results.WaitFor(kSlow, absl::Seconds(30)));
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk), kSlow);
  EXPECT_TRUE((*processor)->Close(absl::Seconds(5)).ok());
}

TEST_F(EndToEndTest, WithoutPacingLateRealtimeJobsDoNotHoldSlowJobsBack) {
  config_.prefetch_jobs = 5000;
  config_.For(Priority::kSlow).max_jobs = 1000;
  config_.realtime_pacing = false;
  auto processor = Processor::Create(config_, "app");
  ASSERT_TRUE(processor.ok()) << processor.status();
  auto submitter = NewSubmitter();
  LateRealtimeWriter writer(config_);
  SlowJobsRightAfterRealtime(**processor, *submitter, writer,
                             absl::Milliseconds(100));
  EXPECT_EQ((*processor)->GetStats().paced, 0u);
  EXPECT_TRUE((*processor)->Close(absl::Seconds(5)).ok());
}

TEST_F(EndToEndTest, EachSubmitterGetsExactlyItsOwnResults) {
  // Both submitters share one reply partition, so each must skip the other's.
  config_.reply_partition = 0;
  // The two processors' groups form while jobs flow; on a loaded machine
  // that can take longer than realtime's default timeout of 10 s, and this
  // test is about where results go, not about timeouts.
  for (Priority p : kAllPriorities) config_.For(p).batch_timeout = absl::Seconds(60);
  RunningProcessor p1(config_, "app", {{"echo", Echo()}});
  RunningProcessor p2(config_, "app", {{"echo", Echo()}});
  auto s1 = NewSubmitter();
  auto s2 = NewSubmitter();
  Collector r1, r2;
  std::vector<JobId> ids1, ids2;
  for (int i = 0; i < 500; ++i) {
    Job a = MakeJob("app", kAllPriorities[i % 3], "\"one\"");
    Job b = MakeJob("app", kAllPriorities[i % 3], "\"two\"");
    ASSERT_TRUE(s1->Submit(a, r1.Callback()).ok());
    ASSERT_TRUE(s2->Submit(b, r2.Callback()).ok());
    ids1.push_back(a.id);
    ids2.push_back(b.id);
  }
  ASSERT_TRUE(r1.WaitFor(500, absl::Seconds(60)));
  ASSERT_TRUE(r2.WaitFor(500, absl::Seconds(60)));
  for (const JobId& id : ids1) {
    EXPECT_EQ(r1.Get(id).data, "\"one\"")
        << JobStatusName(r1.Get(id).status) << ": " << r1.Get(id).error;
  }
  for (const JobId& id : ids2) {
    EXPECT_EQ(r2.Get(id).data, "\"two\"")
        << JobStatusName(r2.Get(id).status) << ": " << r2.Get(id).error;
  }
  EXPECT_EQ(r1.distinct(), 500u);
  EXPECT_EQ(r2.distinct(), 500u);
  EXPECT_EQ(r1.MaxCallbacksPerJob(), 1u);
  EXPECT_EQ(r2.MaxCallbacksPerJob(), 1u);
  EXPECT_GT(s1->GetStats().foreign_results + s2->GetStats().foreign_results,
            0u);
  // Late results are allowed here: when the two processors' group forms
  // while jobs are already flowing, a rebalance hands batches in flight to
  // the other member (at least once). They are never another instance's
  // (those are foreign) and never reach a callback (checked above).
  EXPECT_LE(s1->GetStats().late_results + s2->GetStats().late_results, 1000u);
}

TEST_F(EndToEndTest, UnknownGroupEndsProcessedErrorWithClearMessage) {
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  auto submitter = NewSubmitter();
  auto r = submitter->SubmitAndWait(
      MakeJob("app", Priority::kRealtime, "1", "mystery"), absl::Seconds(30));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, JobStatus::kProcessedError);
  EXPECT_NE(r->error.find("no handler for group 'mystery'"), std::string::npos)
      << r->error;
  EXPECT_EQ(processor->GetStats().unknown_group, 1u);
}

TEST_F(EndToEndTest, HandlerFailureAndExceptionBecomeProcessedError) {
  RunningProcessor processor(
      config_, "app",
      {{"fail", [](Task& t) { (void)t.Fail("upstream unavailable"); }},
       {"throw", [](Task&) { throw std::runtime_error("boom"); }},
       {"forget", [](Task&) {}}});
  auto submitter = NewSubmitter();
  auto failed = submitter->SubmitAndWait(
      MakeJob("app", Priority::kRealtime, "1", "fail"), absl::Seconds(30));
  auto threw = submitter->SubmitAndWait(
      MakeJob("app", Priority::kRealtime, "1", "throw"), absl::Seconds(30));
  auto forgot = submitter->SubmitAndWait(
      MakeJob("app", Priority::kRealtime, "1", "forget"), absl::Seconds(30));
  ASSERT_TRUE(failed.ok() && threw.ok() && forgot.ok());
  EXPECT_EQ(failed->status, JobStatus::kProcessedError);
  EXPECT_EQ(failed->error, "upstream unavailable");
  EXPECT_EQ(threw->status, JobStatus::kProcessedError);
  EXPECT_NE(threw->error.find("boom"), std::string::npos);
  EXPECT_EQ(forgot->status, JobStatus::kProcessedError);
  EXPECT_NE(forgot->error.find("without answering"), std::string::npos);
}

TEST_F(EndToEndTest, CompleteRejectsInvalidJsonAndTaskStaysOpen) {
  auto processor = Processor::Create(config_, "app");
  ASSERT_TRUE(processor.ok());
  Collector results;
  auto submitter = NewSubmitter();
  Job job = MakeJob("app", Priority::kRealtime);
  ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  auto task = (*processor)->Next(absl::Seconds(30));
  ASSERT_TRUE(task.ok());
  EXPECT_EQ(task->Complete("{not json").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(task->answered());
  EXPECT_TRUE(task->Complete("{\"ok\":true}").ok());
  EXPECT_EQ(task->Complete("1").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(results.WaitFor(1, absl::Seconds(10)));
  EXPECT_EQ(results.Get(job.id).data, "{\"ok\":true}");
  *task = Task();
  EXPECT_TRUE((*processor)->Close(absl::Seconds(5)).ok());
}

TEST_F(EndToEndTest, ProcessorClosedMidBatchHandsTheBatchToTheNextOwner) {
  config_.For(Priority::kSlow).max_jobs = 200;
  Collector results;
  auto submitter = NewSubmitter();
  std::vector<JobId> ids;
  for (int i = 0; i < 200; ++i) {
    Job job = MakeJob("app", Priority::kSlow, std::to_string(i));
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
    ids.push_back(job.id);
  }
  {
    // The first owner answers 20 jobs, then stops without the rest.
    auto first = Processor::Create(config_, "app");
    ASSERT_TRUE(first.ok());
    auto taken = TakeJobs(**first, 20, absl::Seconds(30));
    ASSERT_EQ(taken.size(), 20u);
    (*first)->Shutdown();
    EXPECT_TRUE((*first)->Close(absl::Seconds(5)).ok());
  }
  ASSERT_TRUE(results.WaitFor(20, absl::Seconds(10)));
  // The batch was not committed: the next owner gets all of it again.
  RunningProcessor second(config_, "app", {{"echo", Echo()}});
  ASSERT_TRUE(results.WaitFor(200, absl::Seconds(60))) << results.total();
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(results.Get(ids[i]).status, JobStatus::kProcessedOk);
    EXPECT_EQ(results.Get(ids[i]).data, std::to_string(i));
  }
  EXPECT_EQ(results.MaxCallbacksPerJob(), 1u);
  // The 20 processed twice come back as late results, never as callbacks.
  ASSERT_TRUE(Eventually(
      [&] { return submitter->GetStats().late_results == 20; },
      absl::Seconds(10)));
}

TEST_F(EndToEndTest, CommittedBatchesAreNotProcessedAgain) {
  Collector results;
  auto submitter = NewSubmitter();
  std::atomic<int> handled{0};
  auto counting = [&](Task& t) {
    ++handled;
    (void)t.Complete();
  };
  {
    RunningProcessor first(config_, "app", {{"echo", counting}});
    for (int i = 0; i < 300; ++i) {
      Job job = MakeJob("app", Priority::kNormal);
      ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
    }
    ASSERT_TRUE(results.WaitFor(300, absl::Seconds(30)));
    absl::SleepFor(absl::Seconds(1));  // Auto-commit interval.
  }
  EXPECT_EQ(handled.load(), 300);
  RunningProcessor second(config_, "app", {{"echo", counting}});
  Job marker = MakeJob("app", Priority::kNormal);
  Collector marker_result;
  ASSERT_TRUE(submitter->Submit(marker, marker_result.Callback()).ok());
  ASSERT_TRUE(marker_result.WaitFor(1, absl::Seconds(30)));
  EXPECT_EQ(handled.load(), 301);
}

TEST_F(EndToEndTest, MalformedMessageGoesToDeadLetterTopicAndIsPassed) {
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  // Write garbage straight onto the job topic.
  {
    auto conf = kafka::MakeConf(config_, kafka::Role::kProducer, {});
    ASSERT_TRUE(conf.ok());
    auto producer = kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
    ASSERT_TRUE(producer.ok());
    const std::string topic = config_.TopicFor("app", Priority::kNormal);
    const char garbage[] = "{\"v\":1,\"jobs\":[{\"id\":";
    ASSERT_EQ(rd_kafka_producev(producer->get(), RD_KAFKA_V_TOPIC(topic.c_str()),
                                RD_KAFKA_V_PARTITION(0),
                                RD_KAFKA_V_VALUE((void*)garbage, sizeof garbage - 1),
                                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                RD_KAFKA_V_END),
              RD_KAFKA_RESP_ERR_NO_ERROR);
    ASSERT_EQ(rd_kafka_flush(producer->get(), 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  }
  Collector results;
  auto submitter = NewSubmitter();
  for (int i = 0; i < 20; ++i) {
    Job job = MakeJob("app", Priority::kNormal);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  ASSERT_TRUE(results.WaitFor(20, absl::Seconds(30)));
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk), 20u);
  EXPECT_EQ(processor->GetStats().malformed_messages, 1u);

  // The dead-letter topic holds the original bytes and the reason.
  std::optional<ReadMessage> dead = FirstMessageOn(
      config_, config_.DeadLetterTopicFor("app"), absl::Seconds(30));
  ASSERT_TRUE(dead);
  EXPECT_EQ(dead->payload,
            "{\"v\":1,\"jobs\":[{\"id\":");
  EXPECT_NE(dead->Header("batchbus.error").find("[0]@0"),
            std::string::npos);
}

}  // namespace
}  // namespace batchbus::testing
