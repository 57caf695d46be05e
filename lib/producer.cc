#include "producer.h"

#include <algorithm>
#include <exception>

#include "log.h"

namespace batchbus::kafka {

size_t ClientMessageBytes(const Config& config) {
  return std::max<size_t>(config.max_message_bytes + 4096, 1'048'576);
}

absl::StatusOr<Producer> Producer::Create(
    const Config& config,
    std::vector<std::pair<std::string, std::string>> defaults,
    DeliveryHandler* handler, int wakeup_fd) {
  // No loss when a broker dies: every replica in sync has each message
  // before it counts as sent, and retries neither duplicate nor reorder it.
  defaults.insert(defaults.begin(),
                  {{"acks", "all"},
                   {"enable.idempotence", "true"},
                   {"linger.ms", "0"},
                   {"message.max.bytes",
                    std::to_string(ClientMessageBytes(config))}});
  auto conf = MakeConf(config, Role::kProducer, defaults);
  if (!conf.ok()) return conf.status();
  rd_kafka_conf_set_dr_msg_cb(conf->get(), &Producer::Trampoline);
  rd_kafka_conf_set_opaque(conf->get(), handler);
  auto handle = MakeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
  if (!handle.ok()) return handle.status();
  Producer p;
  p.handle_ = std::move(*handle);
  p.reports_.reset(rd_kafka_queue_get_main(p.handle_.get()));
  if (wakeup_fd >= 0) {
    rd_kafka_queue_io_event_enable(p.reports_.get(), wakeup_fd, "1", 1);
  }
  return p;
}

void Producer::Trampoline(rd_kafka_t*, const rd_kafka_message_t* msg,
                          void* opaque) noexcept {
  try {
    static_cast<DeliveryHandler*>(opaque)->OnDelivery(
        const_cast<rd_kafka_message_t*>(msg));
  } catch (const std::exception& e) {
    log::Error("kafka", "delivery report handling failed: ", e.what());
  } catch (...) {
    log::Error("kafka", "delivery report handling failed");
  }
}

void Producer::Flush(absl::Time deadline, absl::Duration max_flush) {
  if (!handle_) return;
  const absl::Duration flush_for =
      std::min(deadline - absl::Now(), max_flush);
  if (flush_for > absl::ZeroDuration()) {
    rd_kafka_flush(handle_.get(), ToMillis(flush_for));
  }
}

void Producer::Purge() {
  if (!handle_) return;
  rd_kafka_purge(handle_.get(),
                 RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(handle_.get(), 0);  // Purged messages' reports.
}

void Producer::Close(absl::Time deadline, absl::Duration max_flush) {
  if (!handle_) return;
  Flush(deadline, max_flush);
  Purge();
  if (reports_) {
    rd_kafka_queue_io_event_enable(reports_.get(), -1, nullptr, 0);
    reports_.reset();
  }
  DestroyWithin(std::move(handle_), 0, deadline);
}

}  // namespace batchbus::kafka
