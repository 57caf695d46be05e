// payments.h — the worker side of the payments example: a fake payment
// service whose handlers batchbus calls, one per job group. Used by
// processor.cc, and by submitter.cc for --with-local-processor.
//
// Delivery is at least once: after a processor crash or a rebalance the same
// job (same payment id) can be handed out again. The handlers are therefore
// idempotent: each payment id is an idempotency key, its outcome is recorded
// the first time, and a repeat gets the recorded outcome back without
// charging (or refunding) a second time. Here the record is an in-memory map;
// a real service keeps it where the money moves (a database row written in
// the same transaction, or the upstream's idempotency-key header).
#ifndef BATCHBUS_EXAMPLES_PAYMENTS_PAYMENTS_H_
#define BATCHBUS_EXAMPLES_PAYMENTS_PAYMENTS_H_

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "batchbus/batchbus.h"

namespace payments {

// Job groups, i.e. the handlers of processor "payments".
inline constexpr char kProcessor[] = "payments";
inline constexpr char kSubmitGroup[] = "payment-submit";
inline constexpr char kRefundGroup[] = "payment-refund";

// Minimal field lookup in a flat JSON object, enough for this example's
// own data (a real application would use a JSON library, e.g. simdjson).
// Returns the raw contents of "key": "<value>" (still JSON-escaped, so it can
// be put back between quotes as is).
inline std::optional<std::string> StringField(std::string_view json,
                                              std::string_view key) {
  std::string needle = "\"" + std::string(key) + "\"";
  size_t p = json.find(needle);
  if (p == std::string_view::npos) return std::nullopt;
  p += needle.size();
  while (p < json.size() && (json[p] == ' ' || json[p] == ':')) ++p;
  if (p >= json.size() || json[p] != '"') return std::nullopt;
  size_t start = ++p;
  while (p < json.size() && json[p] != '"') p += json[p] == '\\' ? 2 : 1;
  if (p >= json.size()) return std::nullopt;
  return std::string(json.substr(start, p - start));
}

inline std::optional<int64_t> IntField(std::string_view json,
                                       std::string_view key) {
  std::string needle = "\"" + std::string(key) + "\"";
  size_t p = json.find(needle);
  if (p == std::string_view::npos) return std::nullopt;
  p += needle.size();
  while (p < json.size() && (json[p] == ' ' || json[p] == ':')) ++p;
  bool negative = p < json.size() && json[p] == '-';
  if (negative) ++p;
  if (p >= json.size() || json[p] < '0' || json[p] > '9') return std::nullopt;
  int64_t v = 0;
  for (; p < json.size() && json[p] >= '0' && json[p] <= '9'; ++p) {
    v = v * 10 + (json[p] - '0');
  }
  return negative ? -v : v;
}

// The fake payment service. Thread-safe: Run() may be called from several
// worker threads with the same handlers.
class PaymentService {
 public:
  struct Counts {
    uint64_t charged = 0;     // Payments captured (once per payment id).
    uint64_t refunded = 0;    // Refunds made (once per payment id).
    uint64_t declined = 0;    // Jobs answered with PROCESSED_ERROR.
    uint64_t duplicates = 0;  // Redeliveries answered from the record.
  };

  // {"payment_id":"...","amount_cents":1299,"currency":"EUR",...}
  void Submit(batchbus::Task& task) {
    std::string_view data = task.data();
    auto id = StringField(data, "payment_id");
    auto amount = IntField(data, "amount_cents");
    if (!id || !amount) {
      // Not retryable and nothing was done: no need to record it.
      (void)task.Fail("payment-submit needs payment_id and amount_cents");
      Count(&Counts::declined);
      return;
    }
    Answer(task, "charge:" + *id, &Counts::charged, [&]() -> Outcome {
      if (*amount <= 0) return {false, "declined: amount must be positive"};
      if (*amount > 1'000'000) return {false, "declined: over the limit"};
      // The upstream call would go here (with *id as its idempotency key).
      return {true, "{\"payment_id\":\"" + *id +
                        "\",\"status\":\"captured\",\"amount_cents\":" +
                        std::to_string(*amount) + ",\"auth_code\":\"A" +
                        std::to_string(Hash(*id) % 1'000'000) + "\"}"};
    });
  }

  // {"payment_id":"...","amount_cents":500,"reason":"..."}
  void Refund(batchbus::Task& task) {
    std::string_view data = task.data();
    auto id = StringField(data, "payment_id");
    auto amount = IntField(data, "amount_cents");
    if (!id || !amount) {
      (void)task.Fail("payment-refund needs payment_id and amount_cents");
      Count(&Counts::declined);
      return;
    }
    Answer(task, "refund:" + *id, &Counts::refunded, [&]() -> Outcome {
      if (*amount <= 0) return {false, "declined: refund must be positive"};
      return {true, "{\"payment_id\":\"" + *id +
                        "\",\"status\":\"refunded\",\"amount_cents\":" +
                        std::to_string(*amount) + "}"};
    });
  }

  // The handlers for Processor::Run, keyed by job group.
  absl::flat_hash_map<std::string, batchbus::Processor::Handler> Handlers() {
    return {
        {kSubmitGroup, [this](batchbus::Task& t) { Submit(t); }},
        {kRefundGroup, [this](batchbus::Task& t) { Refund(t); }},
    };
  }

  Counts counts() const {
    std::lock_guard<std::mutex> lock(mu_);
    return counts_;
  }

 private:
  struct Outcome {
    bool ok = false;
    std::string text;  // Result JSON when ok, else the error.
  };

  // Does the work for `key` once; a repeat answers with the recorded
  // outcome. (Holding the lock while working keeps the example short and
  // makes a concurrent repeat wait for the first; a real service would lock
  // per key, or let its database's unique key decide.)
  template <typename Work>
  void Answer(batchbus::Task& task, const std::string& key,
              uint64_t Counts::*counter, Work work) {
    Outcome outcome;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto [it, first_time] = done_.try_emplace(key);
      if (first_time) {
        it->second = work();
        ++(counts_.*(it->second.ok ? counter : &Counts::declined));
      } else {
        ++counts_.duplicates;
      }
      outcome = it->second;
    }
    absl::Status s = outcome.ok ? task.Complete(outcome.text)
                                : task.Fail(outcome.text);
    if (!s.ok()) (void)task.Fail("bad result: " + s.ToString());
  }

  void Count(uint64_t Counts::*field) {
    std::lock_guard<std::mutex> lock(mu_);
    ++(counts_.*field);
  }

  static uint64_t Hash(const std::string& s) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
  }

  mutable std::mutex mu_;
  std::unordered_map<std::string, Outcome> done_;  // Idempotency record.
  Counts counts_;
};

}  // namespace payments

#endif  // BATCHBUS_EXAMPLES_PAYMENTS_PAYMENTS_H_
