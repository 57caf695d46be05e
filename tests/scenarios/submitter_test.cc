// Submitter behaviour, on a mock cluster per test (label mock) and on the
// real broker (label kafka): batching thresholds, bad input, back-pressure,
// batch timeouts, late results and Close.
#include <atomic>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "mutex.h"
#include "support/test_cluster.h"
#include "wire.h"

namespace batchbus::testing {
namespace {

using SubmitterTest = ClusterTest;

// Answers every job of one batch on the job topic of (`processor`,
// `priority`) with `status`, from plain librdkafka clients, as a processor
// written by someone else might.
void AnswerOneBatchRaw(const Config& config, const std::string& processor,
                       Priority priority, std::string_view status) {
  auto cconf = kafka::MakeConf(config, kafka::Role::kConsumer,
                               {{"group.id", config.ns + ".raw"},
                                {"auto.offset.reset", "earliest"}});
  ASSERT_TRUE(cconf.ok()) << cconf.status();
  auto consumer = kafka::MakeHandle(RD_KAFKA_CONSUMER, std::move(*cconf));
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  rd_kafka_poll_set_consumer(consumer->get());
  kafka::PartitionListPtr topics(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(topics.get(),
                                    config.TopicFor(processor, priority).c_str(),
                                    RD_KAFKA_PARTITION_UA);
  ASSERT_EQ(rd_kafka_subscribe(consumer->get(), topics.get()), 0);
  wire::Decoder decoder;
  wire::DecodedBatch batch;
  bool decoded = false;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!decoded && absl::Now() < deadline) {
    kafka::MessagePtr msg(rd_kafka_consumer_poll(consumer->get(), 100));
    if (!msg || msg->err) continue;
    decoded = decoder
                  .DecodeBatch(std::string_view(static_cast<const char*>(
                                                    msg->payload),
                                                msg->len),
                               batch)
                  .ok();
  }
  ASSERT_TRUE(decoded) << "no batch on the job topic";
  std::string json = "{\"v\":1,\"instance\":\"" +
                     std::string(batch.instance) + "\",\"results\":[";
  for (size_t i = 0; i < batch.jobs.size(); ++i) {
    if (i > 0) json += ",";
    json += "{\"seq\":" + std::to_string(batch.seq) +
            ",\"i\":" + std::to_string(i) + ",\"id\":\"" +
            batch.jobs[i].id.ToString() + "\",\"status\":\"" +
            std::string(status) + "\",\"error\":\"given up\"}";
  }
  json += "]}";
  auto pconf = kafka::MakeConf(config, kafka::Role::kProducer, {});
  ASSERT_TRUE(pconf.ok()) << pconf.status();
  auto producer = kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(*pconf));
  ASSERT_TRUE(producer.ok()) << producer.status();
  const std::string reply_topic(batch.reply_topic);
  const std::string key(batch.instance);
  ASSERT_EQ(rd_kafka_producev(
                producer->get(), RD_KAFKA_V_TOPIC(reply_topic.c_str()),
                RD_KAFKA_V_PARTITION(batch.reply_partition),
                RD_KAFKA_V_KEY(key.data(), key.size()),
                RD_KAFKA_V_VALUE(json.data(), json.size()),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
            RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(rd_kafka_flush(producer->get(), 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
  rd_kafka_consumer_close(consumer->get());
}

TEST_F(SubmitterTest, RejectsBadInputWithInvalidArgumentAndKeepsWorking) {
  auto submitter = NewSubmitter();
  ASSERT_NE(submitter, nullptr);
  Collector results;

  Job bad_json = MakeJob("app", Priority::kNormal, "{\"unterminated\":");
  EXPECT_EQ(submitter->Submit(bad_json, results.Callback()).code(),
            absl::StatusCode::kInvalidArgument);
  Job empty_processor = MakeJob("", Priority::kNormal);
  EXPECT_EQ(submitter->Submit(empty_processor, results.Callback()).code(),
            absl::StatusCode::kInvalidArgument);
  Job empty_group = MakeJob("app", Priority::kNormal, "1", "");
  EXPECT_EQ(submitter->Submit(empty_group, results.Callback()).code(),
            absl::StatusCode::kInvalidArgument);
  Job bad_name = MakeJob("no spaces/allowed", Priority::kNormal);
  EXPECT_EQ(submitter->Submit(bad_name, results.Callback()).code(),
            absl::StatusCode::kInvalidArgument);
  Job huge = MakeJob("app", Priority::kNormal,
                     "\"" + std::string(config_.max_message_bytes, 'x') + "\"");
  absl::Status too_big = submitter->Submit(huge, results.Callback());
  EXPECT_EQ(too_big.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(too_big.message()).find("max_message_bytes"),
            std::string::npos)
      << too_big;

  // None of them was accepted, so none gets a callback; a good job still runs.
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  Job good = MakeJob("app", Priority::kRealtime, "[1,2,3]");
  ASSERT_TRUE(submitter->Submit(good, results.Callback()).ok());
  ASSERT_TRUE(results.WaitFor(1, absl::Seconds(30)));
  EXPECT_EQ(results.total(), 1u);
  EXPECT_EQ(results.Get(good.id).status, JobStatus::kProcessedOk);
  EXPECT_EQ(results.Get(good.id).data, "[1,2,3]");
  EXPECT_EQ(submitter->GetStats().rejected, 5u);
}

TEST_F(SubmitterTest, ValidatorRefusesBadDataAtSubmitWithItsMessage) {
  auto submitter = NewSubmitter();
  ASSERT_NE(submitter, nullptr);
  submitter->SetValidator("payment", [](std::string_view data) {
    return data.find("\"amount\"") == std::string_view::npos
               ? absl::InvalidArgumentError("missing field 'amount'")
               : absl::OkStatus();
  });
  Collector results;
  Job bad = MakeJob("app", Priority::kRealtime, "{\"amt\": 5}", "payment");
  absl::Status refused = submitter->Submit(bad, results.Callback());
  EXPECT_EQ(refused.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(refused.message(), "invalid job data: missing field 'amount'");
  EXPECT_EQ(submitter->GetStats().rejected, 1u);

  RunningProcessor processor(config_, "app", {{"payment", Echo()}, {"echo", Echo()}});
  Job good = MakeJob("app", Priority::kRealtime, "{\"amount\": 5}", "payment");
  Job other = MakeJob("app", Priority::kRealtime, "{\"amt\": 5}");  // No validator.
  ASSERT_TRUE(submitter->Submit(good, results.Callback()).ok());
  ASSERT_TRUE(submitter->Submit(other, results.Callback()).ok());
  ASSERT_TRUE(results.WaitFor(2, absl::Seconds(30)));
  EXPECT_EQ(results.total(), 2u) << "the refused job got a callback";
  EXPECT_EQ(results.Get(good.id).status, JobStatus::kProcessedOk);
  EXPECT_EQ(results.Get(other.id).status, JobStatus::kProcessedOk);
}

TEST_F(SubmitterTest, SendsBatchWhenMaxJobsReachedWithoutWaitingForLinger) {
  config_.For(Priority::kNormal).max_jobs = 10;
  config_.For(Priority::kNormal).max_linger = absl::Seconds(20);
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  Collector results;
  auto submitter = NewSubmitter();
  for (int i = 0; i < 30; ++i) {
    Job job = MakeJob("app", Priority::kNormal);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  // Three full batches go at once; the linger of 20 s never matters.
  ASSERT_TRUE(results.WaitFor(30, absl::Seconds(30)));
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk), 30u);
  EXPECT_EQ(processor->GetStats().batches_received, 3u);
}

TEST_F(SubmitterTest, FlushesPartialBatchAfterLinger) {
  config_.For(Priority::kNormal).max_jobs = 1000;
  config_.For(Priority::kNormal).max_linger = absl::Milliseconds(300);
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  auto submitter = NewSubmitter();
  // Let the processor join its group first so timing below is the linger.
  Collector warmup;
  Job first = MakeJob("app", Priority::kRealtime);
  ASSERT_TRUE(submitter->Submit(first, warmup.Callback()).ok());
  ASSERT_TRUE(warmup.WaitFor(1, absl::Seconds(30)));

  Collector results;
  const absl::Time start = absl::Now();
  for (int i = 0; i < 3; ++i) {
    Job job = MakeJob("app", Priority::kNormal);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  absl::SleepFor(absl::Milliseconds(150));
  EXPECT_EQ(results.total(), 0u) << "sent before its linger passed";
  ASSERT_TRUE(results.WaitFor(3, absl::Seconds(10)));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk), 3u);
  EXPECT_EQ(processor->GetStats().batches_received, 2u);  // warmup + 1
}

TEST_F(SubmitterTest, SplitsBatchesAtMaxBytes) {
  config_.For(Priority::kSlow).max_jobs = 1000;
  config_.For(Priority::kSlow).max_bytes = 4096;
  config_.For(Priority::kSlow).max_linger = absl::Seconds(20);
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  Collector results;
  auto submitter = NewSubmitter();
  const std::string data = "\"" + std::string(900, 'a') + "\"";
  for (int i = 0; i < 20; ++i) {
    Job job = MakeJob("app", Priority::kSlow, data);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  submitter->Flush();
  ASSERT_TRUE(results.WaitFor(20, absl::Seconds(30)));
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk), 20u);
  // About 960 encoded bytes per job: at most 4 fit under 4096 bytes.
  EXPECT_GE(processor->GetStats().batches_received, 5u);
}

TEST_F(SubmitterTest, RealtimeJobsGoOutAsBatchesOfOne) {
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  Collector results;
  auto submitter = NewSubmitter();
  for (int i = 0; i < 5; ++i) {
    Job job = MakeJob("app", Priority::kRealtime);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  ASSERT_TRUE(results.WaitFor(5, absl::Seconds(30)));
  EXPECT_EQ(processor->GetStats().batches_received, 5u);
}

TEST_F(SubmitterTest, EndsJobsWithoutResultAsBatchFailedAfterTimeout) {
  config_.For(Priority::kNormal).batch_timeout = absl::Seconds(1);
  Collector results;
  auto submitter = NewSubmitter();  // No processor: nothing will answer.
  const absl::Time start = absl::Now();
  for (int i = 0; i < 5; ++i) {
    Job job = MakeJob("app", Priority::kNormal);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  ASSERT_TRUE(results.WaitFor(5, absl::Seconds(5)));
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Seconds(1));
  EXPECT_LT(took, absl::Milliseconds(1000 + 20 + 500));  // linger + slack
  EXPECT_EQ(results.Count(JobStatus::kBatchFailed), 5u);
  for (const JobResult& r : results.All()) {
    EXPECT_NE(r.error.find("batch timeout"), std::string::npos) << r.error;
  }
  EXPECT_EQ(submitter->GetStats().inflight_jobs, 0u);
}

TEST_F(SubmitterTest, LateResultGoesToHookAndNeverToTheCallbackTwice) {
  config_.For(Priority::kNormal).batch_timeout = absl::Seconds(1);
  auto submitter = NewSubmitter();
  std::atomic<int> late{0};
  submitter->SetLateResultHook([&](const JobResult& r) {
    EXPECT_EQ(r.status, JobStatus::kProcessedOk);
    ++late;
  });
  Collector results;
  for (int i = 0; i < 4; ++i) {
    Job job = MakeJob("app", Priority::kNormal);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  ASSERT_TRUE(results.WaitFor(4, absl::Seconds(5)));
  EXPECT_EQ(results.Count(JobStatus::kBatchFailed), 4u);

  // Now a processor picks the batch up from Kafka and answers it.
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  ASSERT_TRUE(Eventually([&] { return late.load() == 4; }, absl::Seconds(30)));
  EXPECT_EQ(submitter->GetStats().late_results, 4u);
  EXPECT_EQ(results.MaxCallbacksPerJob(), 1u);
  EXPECT_EQ(results.total(), 4u);
}

TEST_F(SubmitterTest, WaitsForRoomThenReturnsResourceExhausted) {
  config_.max_inflight_jobs = 10;
  config_.submit_wait = absl::Milliseconds(300);
  Collector results;
  auto submitter = NewSubmitter();
  for (int i = 0; i < 10; ++i) {
    Job job = MakeJob("app", Priority::kSlow);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  Job one_more = MakeJob("app", Priority::kSlow);
  const absl::Time start = absl::Now();
  absl::Status s = submitter->Submit(one_more, results.Callback());
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

TEST_F(SubmitterTest, FailPolicyReturnsResourceExhaustedAtOnce) {
  config_.max_inflight_jobs = 3;
  config_.backpressure = BackpressurePolicy::kFail;
  config_.submit_wait = absl::Seconds(30);
  Collector results;
  auto submitter = NewSubmitter();
  for (int i = 0; i < 3; ++i) {
    Job job = MakeJob("app", Priority::kSlow);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  Job one_more = MakeJob("app", Priority::kSlow);
  const absl::Time start = absl::Now();
  EXPECT_EQ(submitter->Submit(one_more, results.Callback()).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(100));
}

TEST_F(SubmitterTest, RoomFreedByResultsLetsWaitingSubmitProceed) {
  config_.max_inflight_jobs = 5;
  config_.submit_wait = absl::Seconds(20);
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  Collector results;
  auto submitter = NewSubmitter();
  for (int i = 0; i < 50; ++i) {
    Job job = MakeJob("app", Priority::kNormal);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok()) << i;
    EXPECT_LE(submitter->GetStats().inflight_jobs, 5u);
  }
  ASSERT_TRUE(results.WaitFor(50, absl::Seconds(30)));
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk), 50u);
}

TEST_F(SubmitterTest, CloseFailsPendingJobsAndReturnsInBoundedTime) {
  Collector results;
  auto submitter = NewSubmitter();
  for (int i = 0; i < 7; ++i) {
    Job job = MakeJob("app", i % 2 ? Priority::kSlow : Priority::kNormal);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  }
  const absl::Time start = absl::Now();
  absl::Status s = submitter->Close(absl::Milliseconds(300));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_EQ(results.total(), 7u);
  EXPECT_EQ(results.Count(JobStatus::kBatchFailed), 7u);
  for (const JobResult& r : results.All()) {
    EXPECT_NE(r.error.find("closed"), std::string::npos) << r.error;
  }
  Job after = MakeJob("app", Priority::kNormal);
  EXPECT_EQ(submitter->Submit(after, results.Callback()).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(submitter->Close(absl::Seconds(1)).ok());  // Idempotent.
}

TEST_F(SubmitterTest, SubmitAndWaitAndFutureDeliverTheResult) {
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  auto submitter = NewSubmitter();
  auto r = submitter->SubmitAndWait(MakeJob("app", Priority::kRealtime, "42"),
                                    absl::Seconds(30));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, JobStatus::kProcessedOk);
  EXPECT_EQ(r->data, "42");

  auto future = submitter->SubmitAsync(MakeJob("app", Priority::kNormal, "7"));
  ASSERT_TRUE(future.ok());
  ASSERT_EQ(future->wait_for(std::chrono::seconds(30)),
            std::future_status::ready);
  EXPECT_EQ(future->get().data, "7");
}

TEST_F(SubmitterTest, ManyThreadsSubmittingEachJobEndsExactlyOnce) {
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  Collector results;
  auto submitter = NewSubmitter();
  constexpr int kThreads = 4, kPerThread = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Job job = MakeJob("app", kAllPriorities[(t + i) % 3],
                          "{\"t\":" + std::to_string(t) + "}");
        ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_TRUE(results.WaitFor(kThreads * kPerThread, absl::Seconds(60)))
      << results.total();
  EXPECT_EQ(results.distinct(), size_t{kThreads * kPerThread});
  EXPECT_EQ(results.MaxCallbacksPerJob(), 1u);
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk),
            size_t{kThreads * kPerThread});
  for (const JobResult& r : results.All()) {
    if (!r.ok()) {
      ADD_FAILURE() << JobStatusName(r.status) << " "
                    << PriorityName(r.priority) << ": " << r.error;
    }
  }
}

// Close's deadline passes at once while other threads still submit and
// flush: every accepted job ends exactly once and nothing touches the
// producers Close destroyed. Repeated, as it depends on timing.
TEST_F(SubmitterTest, CloseRacingWithSubmitAndFlushEndsEveryJobExactlyOnce) {
  for (int round = 0; round < 20; ++round) {
    Collector results;
    auto submitter = NewSubmitter();
    ASSERT_NE(submitter, nullptr);
    std::atomic<size_t> accepted{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    // More threads than cores: some are preempted between sealing a batch
    // and producing it, while Close runs.
    for (int t = 0; t < 16; ++t) {
      threads.emplace_back([&, t] {
        while (!go.load()) std::this_thread::yield();
        for (int i = 0;; ++i) {
          Job job = MakeJob("app", t % 4 ? Priority::kRealtime
                                         : Priority::kNormal);
          absl::Status s = submitter->Submit(job, results.Callback());
          if (!s.ok()) {
            EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
            return;
          }
          ++accepted;
          if (i % 8 == t) submitter->Flush();
        }
      });
    }
    go = true;
    absl::SleepFor(absl::Milliseconds(20));
    (void)submitter->Close(absl::ZeroDuration());
    for (auto& th : threads) th.join();
    EXPECT_EQ(results.total(), accepted.load()) << "round " << round;
    EXPECT_EQ(results.distinct(), accepted.load()) << "round " << round;
    EXPECT_EQ(results.MaxCallbacksPerJob(), 1u) << "round " << round;
  }
}

// A Flush that is still publishing (a batch was refused by the full local
// queue and its callback runs) when Close returns: it must not touch the
// producers Close destroyed, and every job still ends once.
TEST_F(SubmitterTest, CloseWhileAFlushIsStillPublishingEndsEveryJobOnce) {
  // One message fits the local queue, and it stays there (the producer
  // lingers 20 s), so the second batch of the Flush is refused at once.
  config_.kafka["producer.queue.buffering.max.messages"] = "1";
  config_.kafka["producer.linger.ms"] = "20000";
  config_.For(Priority::kNormal).max_linger = absl::Seconds(20);
  auto submitter = NewSubmitter();
  ASSERT_NE(submitter, nullptr);
  Collector results;
  std::atomic<std::thread::id> flusher_id{};
  std::atomic<bool> held{false}, closed{false};
  auto callback = [&](const JobResult& r) {
    if (std::this_thread::get_id() == flusher_id.load() && !held.exchange(true)) {
      // Hold the flushing thread here until Close has returned.
      Eventually([&] { return closed.load(); }, absl::Seconds(10));
    }
    results.Add(r);
  };
  for (const char* processor : {"a", "b", "c", "d"}) {
    Job job = MakeJob(processor, Priority::kNormal);
    ASSERT_TRUE(submitter->Submit(job, callback).ok());
  }
  std::atomic<bool> go{false};
  std::thread flusher([&] {
    while (!go.load()) std::this_thread::yield();
    submitter->Flush();
  });
  flusher_id = flusher.get_id();
  go = true;
  EXPECT_TRUE(Eventually([&] { return held.load(); }, absl::Seconds(10)))
      << "no batch was refused by the local queue";
  (void)submitter->Close(absl::ZeroDuration());
  closed = true;
  flusher.join();
  ASSERT_TRUE(held.load());
  EXPECT_EQ(results.total(), 4u);
  EXPECT_EQ(results.distinct(), 4u);
  EXPECT_EQ(results.MaxCallbacksPerJob(), 1u);
}

TEST_F(SubmitterTest, ConcurrentClosesEachReturnAndEveryJobEndsOnce) {
  for (int round = 0; round < 5; ++round) {
    Collector results;
    auto submitter = NewSubmitter();
    ASSERT_NE(submitter, nullptr);
    for (int i = 0; i < 20; ++i) {
      Job job = MakeJob("app", i % 2 ? Priority::kSlow : Priority::kNormal);
      ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
    }
    std::atomic<int> returned{0};
    std::vector<std::thread> closers;
    for (int t = 0; t < 4; ++t) {
      closers.emplace_back([&] {
        (void)submitter->Close(absl::Milliseconds(100));
        ++returned;
      });
    }
    for (auto& th : closers) th.join();
    EXPECT_EQ(returned.load(), 4);
    EXPECT_EQ(results.total(), 20u) << "round " << round;
    EXPECT_EQ(results.MaxCallbacksPerJob(), 1u) << "round " << round;
    EXPECT_EQ(results.Count(JobStatus::kBatchFailed), 20u);
  }
}

TEST_F(SubmitterTest, LateResultReachesTheHookWithItsJobsPriority) {
  for (Priority p : kAllPriorities) {
    config_.For(p).batch_timeout = absl::Seconds(1);
  }
  auto submitter = NewSubmitter();
  batchbus::Mutex mu;
  absl::flat_hash_map<JobId, Priority> late;  // guarded by mu
  submitter->SetLateResultHook([&](const JobResult& r) {
    batchbus::MutexLock lock(&mu);
    late[r.job_id] = r.priority;
  });
  Collector results;
  absl::flat_hash_map<JobId, Priority> submitted;
  for (Priority p : {Priority::kSlow, Priority::kRealtime, Priority::kSlow}) {
    Job job = MakeJob("app", p);
    ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
    submitted[job.id] = p;
  }
  ASSERT_TRUE(results.WaitFor(3, absl::Seconds(10)));
  EXPECT_EQ(results.Count(JobStatus::kBatchFailed), 3u);
  for (const JobResult& r : results.All()) {
    EXPECT_EQ(r.priority, submitted[r.job_id]);
  }

  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  ASSERT_TRUE(Eventually(
      [&] {
        batchbus::MutexLock lock(&mu);
        return late.size() == 3;
      },
      absl::Seconds(30)));
  batchbus::MutexLock lock(&mu);
  for (const auto& [id, priority] : submitted) {
    EXPECT_EQ(late[id], priority) << PriorityName(priority);
  }
}

TEST_F(SubmitterTest, TimedOutSubmitAndWaitResultIsCountedOnlyAsLate) {
  auto submitter = NewSubmitter();
  std::atomic<int> late{0};
  submitter->SetLateResultHook([&](const JobResult& r) {
    EXPECT_EQ(r.status, JobStatus::kProcessedOk);
    ++late;
  });
  auto r = submitter->SubmitAndWait(MakeJob("app", Priority::kRealtime, "5"),
                                    absl::Milliseconds(200));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, JobStatus::kBatchFailed);
  // The processor starts only now, so the wait above gave up first.
  RunningProcessor processor(config_, "app", {{"echo", Echo()}});
  ASSERT_TRUE(Eventually([&] { return late.load() == 1; }, absl::Seconds(30)));
  const Submitter::Stats stats = submitter->GetStats();
  EXPECT_EQ(stats.late_results, 1u);
  EXPECT_EQ(stats.processed_ok, 0u);
  EXPECT_EQ(stats.processed_error, 0u);
  EXPECT_EQ(stats.inflight_jobs, 0u);
}

TEST_F(SubmitterTest, BatchFailedResultFromTheWireIsCountedAsBatchFailed) {
  Collector results;  // Outlives the submitter, whose Close may end jobs.
  auto submitter = NewSubmitter();
  ASSERT_NE(submitter, nullptr);
  Job job = MakeJob("app", Priority::kNormal);
  ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  AnswerOneBatchRaw(config_, "app", Priority::kNormal, "BATCH_FAILED");
  ASSERT_TRUE(results.WaitFor(1, absl::Seconds(30)));
  EXPECT_EQ(results.Get(job.id).status, JobStatus::kBatchFailed);
  const Submitter::Stats stats = submitter->GetStats();
  EXPECT_EQ(stats.batch_failed, 1u);
  EXPECT_EQ(stats.processed_error, 0u);
  EXPECT_EQ(stats.processed_ok, 0u);
}

// A topic that librdkafka refuses to make a handle for (longer than its 512
// characters) fails the batch's jobs with the reason, and the submitter goes
// on working for other processors.
TEST_F(SubmitterTest, TopicRefusedByTheClientFailsItsBatchWithTheReason) {
  config_.For(Priority::kNormal).topic =
      "{processor}{processor}{processor}{processor}";
  auto submitter = NewSubmitter();
  ASSERT_NE(submitter, nullptr);
  Collector results;
  Job job = MakeJob(std::string(200, 'p'), Priority::kNormal);
  ASSERT_TRUE(submitter->Submit(job, results.Callback()).ok());
  submitter->Flush();
  ASSERT_TRUE(results.WaitFor(1, absl::Seconds(10)));
  const JobResult r = results.Get(job.id);
  EXPECT_EQ(r.status, JobStatus::kBatchFailed);
  EXPECT_NE(r.error.find("topic"), std::string::npos) << r.error;
  EXPECT_NE(r.error.find("handle"), std::string::npos) << r.error;
}

}  // namespace
}  // namespace batchbus::testing
