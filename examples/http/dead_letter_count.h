// dead_letter_count.h — how many messages a processor's dead letter topic
// holds, read from the broker (the sum over partitions of end minus start
// offset), for a dashboard whose processor runs elsewhere.
//
// Count() blocks for at most a few seconds; call it from a background
// thread. Not thread-safe.
#ifndef BATCHBUS_EXAMPLES_HTTP_DEAD_LETTER_COUNT_H_
#define BATCHBUS_EXAMPLES_HTTP_DEAD_LETTER_COUNT_H_

#include <librdkafka/rdkafka.h>

#include <memory>
#include <optional>
#include <string>

#include "batchbus/config.h"

namespace webstore {

class DeadLetterCount {
 public:
  // Unusable (Count() answers nullopt) for the embedded mock:// cluster,
  // which no second client can reach.
  DeadLetterCount(const batchbus::Config& config, const std::string& processor)
      : topic_(config.DeadLetterTopicFor(processor)) {
    constexpr std::string_view kScheme = "kafka://";
    if (config.brokers.rfind(kScheme, 0) != 0) return;
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    bool ok = rd_kafka_conf_set(conf, "bootstrap.servers",
                                config.brokers.substr(kScheme.size()).c_str(),
                                err, sizeof err) == RD_KAFKA_CONF_OK;
    // The cluster's security settings, as the library passes them: raw
    // properties, or those scoped to consumers.
    for (const auto& [key, value] : config.kafka) {
      std::string k = key;
      if (k.rfind("consumer.", 0) == 0) k = k.substr(9);
      if (k.rfind("producer.", 0) == 0 || k.rfind("admin.", 0) == 0) continue;
      ok = ok && rd_kafka_conf_set(conf, k.c_str(), value.c_str(), err,
                                   sizeof err) == RD_KAFKA_CONF_OK;
    }
    ok = ok && rd_kafka_conf_set(conf, "log_level", "3", err, sizeof err) ==
                   RD_KAFKA_CONF_OK;
    if (!ok) {
      rd_kafka_conf_destroy(conf);
      return;
    }
    // A consumer handle: its metadata requests never create the topic.
    rk_.reset(rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err));
  }

  std::optional<uint64_t> Count() {
    if (!rk_) return std::nullopt;
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk_.get(), topic_.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    const rd_kafka_resp_err_t e =
        rd_kafka_metadata(rk_.get(), 0, t, &md, kTimeoutMs);
    rd_kafka_topic_destroy(t);
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
    std::optional<uint64_t> total;
    if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      total = 0;
      for (int i = 0; i < md->topics[0].partition_cnt; ++i) {
        int64_t low = 0, high = 0;
        if (rd_kafka_query_watermark_offsets(
                rk_.get(), topic_.c_str(), md->topics[0].partitions[i].id,
                &low, &high, kTimeoutMs) != RD_KAFKA_RESP_ERR_NO_ERROR) {
          total.reset();
          break;
        }
        *total += static_cast<uint64_t>(high - low);
      }
    } else if (md->topic_cnt == 1 && md->topics[0].err ==
                                         RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
      total = 0;  // Nothing was ever dead-lettered.
    }
    rd_kafka_metadata_destroy(md);
    return total;
  }

 private:
  static constexpr int kTimeoutMs = 3000;
  struct Destroy {
    void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
  };
  std::string topic_;
  std::unique_ptr<rd_kafka_t, Destroy> rk_;
};

}  // namespace webstore

#endif  // BATCHBUS_EXAMPLES_HTTP_DEAD_LETTER_COUNT_H_
