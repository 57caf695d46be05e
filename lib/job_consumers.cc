#include "job_consumers.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "log.h"
#include "producer.h"
#include "strcat.h"

namespace batchbus {

absl::Status JobConsumers::Start(int wakeup_fd) {
  auto conf = kafka::MakeConf(
      config_, kafka::Role::kConsumer,
      {{"group.id", config_.GroupIdFor(processor_)},
       {"enable.auto.offset.store", "false"},
       {"enable.auto.commit", "false"},  // OffsetCommitter commits.
       {"auto.offset.reset", "earliest"},
       {"enable.partition.eof", "false"},
       {"session.timeout.ms", kafka::GroupSessionTimeoutMs(config_)},
       {"heartbeat.interval.ms", "1000"},
       {"fetch.wait.max.ms", "10"},
       {"fetch.error.backoff.ms", "10"},
       {"queued.max.messages.kbytes",
        std::to_string(config_.fetch_queue_kbytes)},
       {"fetch.message.max.bytes",
        std::to_string(kafka::ClientMessageBytes(config_))}});
  if (!conf.ok()) return conf.status();
  if (auto s = kafka::SetStaticMembership(config_, conf->get()); !s.ok()) {
    return s;
  }
  rd_kafka_conf_set_rebalance_cb(conf->get(), &JobConsumers::RebalanceCallback);
  rd_kafka_conf_set_opaque(conf->get(), this);
  for (Lane lane : kAllLanes) {
    if (auto s = StartConsumer(lane, *conf, wakeup_fd); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status JobConsumers::StartConsumer(Lane lane, const kafka::ConfPtr& base,
                                         int wakeup_fd) {
  kafka::ConfPtr conf(rd_kafka_conf_dup(base.get()));
  if (lane == Lane::kRealtime) {
    // A group of its own: in a shared group, two members per processor
    // double the rebalances at every start and stop.
    kafka::QuickFetchOnEmbedded(config_, conf.get());
    const std::string group = config_.GroupIdFor(processor_) + ".realtime";
    char err[512];
    if (rd_kafka_conf_set(conf.get(), "group.id", group.c_str(), err,
                          sizeof err) != RD_KAFKA_CONF_OK) {
      return absl::InvalidArgumentError(
          StrCat("group.id '", group, "' refused: ", err));
    }
  }
  auto handle = kafka::MakeHandle(RD_KAFKA_CONSUMER, std::move(conf));
  if (!handle.ok()) return handle.status();
  rd_kafka_t* rk = handle->get();
  consumers_[lane] = std::move(*handle);
  committers_[lane] = std::make_unique<OffsetCommitter>(rk, kCommitInterval,
                                                        "job consumer");
  rd_kafka_poll_set_consumer(rk);
  consumer_queues_[lane].reset(rd_kafka_queue_get_consumer(rk));
  rd_kafka_queue_io_event_enable(consumer_queues_[lane].get(), wakeup_fd, "1",
                                 1);
  kafka::PartitionListPtr subscription(rd_kafka_topic_partition_list_new(2));
  for (Priority p : kAllPriorities) {
    if (LaneOf(p) != lane) continue;
    // A queue is forwarded to only from partitions of its own handle.
    priority_queues_[p].reset(rd_kafka_queue_new(rk));
    rd_kafka_queue_io_event_enable(priority_queues_[p].get(), wakeup_fd, "1",
                                   1);
    rd_kafka_topic_partition_list_add(subscription.get(), topics_[p].c_str(),
                                      RD_KAFKA_PARTITION_UA);
  }
  if (rd_kafka_resp_err_t err = rd_kafka_subscribe(rk, subscription.get())) {
    return kafka::ToStatus(err, "subscribing to the job topics");
  }
  return absl::OkStatus();
}

namespace {

// The error of an OffsetFetch for `partitions` in `group`, asked through the
// admin API: unlike rd_kafka_committed(), it reports a coordinator lookup
// the broker refused. __TIMED_OUT when nothing answered within `timeout`.
rd_kafka_resp_err_t FetchCommitted(rd_kafka_t* rk, const std::string& group,
                                   const rd_kafka_topic_partition_list_t* partitions,
                                   absl::Duration timeout) {
  rd_kafka_ListConsumerGroupOffsets_t* request =
      rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), partitions);
  kafka::AdminOptionsPtr options(rd_kafka_AdminOptions_new(
      rk, RD_KAFKA_ADMIN_OP_LISTCONSUMERGROUPOFFSETS));
  rd_kafka_AdminOptions_set_request_timeout(options.get(), kafka::ToMillis(timeout),
                                            nullptr, 0);
  kafka::QueuePtr queue(rd_kafka_queue_new(rk));
  rd_kafka_ListConsumerGroupOffsets(rk, &request, 1, options.get(), queue.get());
  rd_kafka_ListConsumerGroupOffsets_destroy(request);
  kafka::EventPtr ev(rd_kafka_queue_poll(
      queue.get(), kafka::ToMillis(timeout + absl::Seconds(1))));
  if (!ev) return RD_KAFKA_RESP_ERR__TIMED_OUT;
  if (rd_kafka_resp_err_t err = rd_kafka_event_error(ev.get())) return err;
  size_t n = 0;
  const rd_kafka_group_result_t** groups =
      rd_kafka_ListConsumerGroupOffsets_result_groups(
          rd_kafka_event_ListConsumerGroupOffsets_result(ev.get()), &n);
  for (size_t i = 0; i < n; ++i) {
    if (const rd_kafka_error_t* e = rd_kafka_group_result_error(groups[i])) {
      return rd_kafka_error_code(e);
    }
    const rd_kafka_topic_partition_list_t* parts =
        rd_kafka_group_result_partitions(groups[i]);
    for (int j = 0; parts != nullptr && j < parts->cnt; ++j) {
      if (parts->elems[j].err) return parts->elems[j].err;
    }
  }
  return RD_KAFKA_RESP_ERR_NO_ERROR;
}

}  // namespace

absl::Status JobConsumers::CheckGroupAccess(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  for (Lane lane : kAllLanes) {
    kafka::PartitionListPtr probe(rd_kafka_topic_partition_list_new(1));
    for (Priority p : kAllPriorities) {
      if (LaneOf(p) != lane) continue;
      rd_kafka_topic_partition_list_add(probe.get(), topics_[p].c_str(), 0);
      break;
    }
    const std::string group = config_.GroupIdFor(processor_) +
                              (lane == Lane::kRealtime ? ".realtime" : "");
    const rd_kafka_resp_err_t err = FetchCommitted(
        consumers_[lane].get(), group, probe.get(),
        std::max(deadline - absl::Now(), absl::Milliseconds(100)));
    if (err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ||
        err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
      return kafka::ToStatus(
          err, StrCat("processor ", processor_, " may not consume topic ",
                      probe->elems[0].topic, " in consumer group ", group,
                      " (its principal needs READ on the group and READ on "
                      "the job topics)"));
    }
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      log::Debug("processor", "group access check for ", processor_, ": ",
                 rd_kafka_err2str(err));
    }
  }
  return absl::OkStatus();
}

bool JobConsumers::PriorityOfTopic(std::string_view topic, Priority& p) const {
  for (Priority q : kAllPriorities) {
    if (topics_[q] == topic) {
      p = q;
      return true;
    }
  }
  return false;
}

// ------------------------------------------------------------- rebalance

void JobConsumers::RebalanceCallback(
    rd_kafka_t* rk, rd_kafka_resp_err_t err,
    rd_kafka_topic_partition_list_t* partitions, void* opaque) noexcept {
  try {
    static_cast<JobConsumers*>(opaque)->Rebalance(rk, err, partitions);
  } catch (const std::exception& e) {
    log::Error("processor", "rebalance handling failed: ", e.what());
  } catch (...) {
    log::Error("processor", "rebalance handling failed");
  }
}

void JobConsumers::Rebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                             rd_kafka_topic_partition_list_t* list) {
  // Not cooperative by default: librdkafka 2.0.2 can abort in its sticky
  // assignor when a consumer closes.
  const bool cooperative =
      std::string_view(rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
  if (err != RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    Revoke(rk, list);  // Revoked, or an error.
    rd_kafka_commit(rk, nullptr, 1);  // Stored offsets, async.
    if (cooperative) {
      kafka::ErrorPtr e(rd_kafka_incremental_unassign(rk, list));
      if (e) log::Warning("processor", "incremental unassign: ", rd_kafka_error_string(e.get()));
    } else {
      rd_kafka_assign(rk, nullptr);
    }
    log::Info("processor", "processor ", processor_, " revoked ", list->cnt, " partition(s)");
    return;
  }
  // Each partition is announced before any of its messages can reach a
  // reader: a message read from a partition not yet known as assigned is
  // dropped as a revoked partition's, and the batches after it would then
  // be committed past it, unprocessed.
  for (int i = 0; i < list->cnt; ++i) {
    Priority p;
    if (PriorityOfTopic(list->elems[i].topic, p)) {
      listener_->OnAssigned({p, list->elems[i].partition});
    }
  }
  if (cooperative) {
    kafka::ErrorPtr e(rd_kafka_incremental_assign(rk, list));
    if (e) log::Warning("processor", "incremental assign: ", rd_kafka_error_string(e.get()));
  } else {
    rd_kafka_assign(rk, list);
  }
  for (int i = 0; i < list->cnt; ++i) {
    const auto& tp = list->elems[i];
    Priority p;
    if (!PriorityOfTopic(tp.topic, p)) continue;
    kafka::QueuePtr pq(rd_kafka_queue_get_partition(rk, tp.topic, tp.partition));
    rd_kafka_queue_forward(pq.get(), priority_queues_[p].get());
  }
  log::Info("processor", "processor ", processor_, " assigned ", list->cnt, " partition(s)");
}

// Jobs already handed out are still answered; their offsets are not
// committed by us any more, so the next owner processes those batches again.
void JobConsumers::Revoke(rd_kafka_t* rk, rd_kafka_topic_partition_list_t* list) {
  for (int i = 0; i < list->cnt; ++i) {
    const auto& tp = list->elems[i];
    Priority p;
    if (!PriorityOfTopic(tp.topic, p)) continue;
    kafka::QueuePtr pq(rd_kafka_queue_get_partition(rk, tp.topic, tp.partition));
    rd_kafka_queue_forward(pq.get(), nullptr);
    listener_->OnRevoked({p, tp.partition});
    MutexLock lock(&store_mu_);
    stored_.erase(PartitionKey{p, tp.partition});
  }
}

// ------------------------------------------------------------- reading

void JobConsumers::PollEvents() {
  const absl::Time now = absl::Now();
  for (Lane lane : kAllLanes) {
    rd_kafka_t* rk = consumers_[lane].get();
    if (rk == nullptr) continue;
    committers_[lane]->Poll(now);
    while (rd_kafka_message_t* m = rd_kafka_consumer_poll(rk, 0)) {
      kafka::MessagePtr msg(m);
      Priority p;
      if (msg->err) {
        log::Warning("processor", "processor ", processor_, ": ",
                     rd_kafka_message_errstr(msg.get()));
      } else if (PriorityOfTopic(rd_kafka_topic_name(msg->rkt), p)) {
        listener_->OnStray(p, std::move(msg));
      }
    }
  }
}

size_t JobConsumers::Read(Priority p, rd_kafka_message_t** msgs, size_t room) {
  if (!priority_queues_[p]) return 0;
  ssize_t n = rd_kafka_consume_batch_queue(priority_queues_[p].get(), 0, msgs,
                                           room);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

void JobConsumers::StoreOffset(PartitionKey partition, int64_t next_offset) {
  MutexLock lock(&store_mu_);
  if (storing_closed_) return;
  int64_t& stored = stored_[partition];
  if (next_offset <= stored) return;
  stored = next_offset;
  const std::string& topic = topics_[partition.first];
  kafka::PartitionListPtr list(rd_kafka_topic_partition_list_new(1));
  rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition.second)
      ->offset = next_offset;
  rd_kafka_t* rk = consumers_[LaneOf(partition.first)].get();
  if (rd_kafka_resp_err_t err = rd_kafka_offsets_store(rk, list.get())) {
    uint64_t held_back = 0;
    if (store_log_.Allow(held_back)) {
      log::Warning("processor", "could not store offset ", next_offset, " for ", topic, "[",
                   partition.second, "]: ", rd_kafka_err2str(err),
                   LogThrottle::HeldBack(held_back));
    }
  }
}

// ------------------------------------------------------------- closing

void JobConsumers::Close(absl::Time deadline) {
  if (closed_) return;
  closed_ = true;
  LeaveGroups(deadline);
  {
    MutexLock lock(&store_mu_);  // No StoreOffset() runs from here on.
    storing_closed_ = true;
  }
  for (auto& q : priority_queues_) q.reset();
  for (auto& q : consumer_queues_) q.reset();
  for (auto& c : committers_) c.reset();
  for (auto& consumer : consumers_) {
    kafka::DestroyWithin(std::move(consumer),
                         RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE, deadline);
  }
}

// Both members leave at once, committing the stored offsets; bounded by
// `deadline` even with the broker gone.
void JobConsumers::LeaveGroups(absl::Time deadline) {
  PerLane<kafka::QueuePtr> close_queues;
  for (Lane lane : kAllLanes) {
    rd_kafka_t* rk = consumers_[lane].get();
    if (rk == nullptr) continue;
    rd_kafka_commit(rk, nullptr, 1);
    close_queues[lane].reset(rd_kafka_queue_new(rk));
    kafka::ErrorPtr err(rd_kafka_consumer_close_queue(rk, close_queues[lane].get()));
    if (err) close_queues[lane].reset();
  }
  auto closing = [&] {
    for (Lane lane : kAllLanes) {
      if (close_queues[lane] && !rd_kafka_consumer_closed(consumers_[lane].get())) {
        return true;
      }
    }
    return false;
  };
  while (closing() && absl::Now() < deadline) {
    for (Lane lane : kAllLanes) {
      if (!close_queues[lane]) continue;
      kafka::EventPtr event(rd_kafka_queue_poll(close_queues[lane].get(), 25));
      if (event && rd_kafka_event_type(event.get()) == RD_KAFKA_EVENT_REBALANCE) {
        Rebalance(consumers_[lane].get(), rd_kafka_event_error(event.get()),
                  rd_kafka_event_topic_partition_list(event.get()));
      }
    }
  }
}

}  // namespace batchbus
