// The self-consistency checks for a successful decode, shared by the seeded
// mutation test (tests/unit/wire_fuzz_test.cc) and the libFuzzer target
// (tests/fuzz/wire_fuzzer.cc). Each returns an empty string when the decode
// is consistent, else what is wrong.
#ifndef BATCHBUS_TESTS_FUZZ_WIRE_CHECKS_H_
#define BATCHBUS_TESTS_FUZZ_WIRE_CHECKS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "batchbus/job.h"
#include "json.h"
#include "simdjson.h"
#include "wire.h"

namespace batchbus::wire {

// Reads every byte of `view` (ASan reports a view past its allocation) and
// checks it lies within `storage`'s plausible extent: the padded copy of the
// message plus, at most, as many bytes again for unescaped strings.
inline bool Touch(std::string_view view, const char* base, size_t limit,
           uint64_t& sum) {
  for (char c : view) sum += static_cast<unsigned char>(c);
  if (view.empty()) return true;
  return view.data() >= base && view.data() + view.size() <= base + limit;
}

inline std::string TrimmedValid(std::string_view data) {
  if (data.empty()) return "empty data";
  if (json::TrimWhitespace(data).size() != data.size()) {
    return "data has surrounding whitespace";
  }
  if (!json::Validate(data, "data").ok()) return "data is not valid JSON";
  return "";
}

// Empty when `b`, decoded from `payload`, is self-consistent.
inline std::string CheckBatch(std::string_view payload, const DecodedBatch& b,
                       Decoder& other, uint64_t& sum) {
  const char* base = b.storage.get();
  if (base == nullptr) return "no storage";
  if (!json::Validate(payload, "message").ok()) return "invalid JSON accepted";
  const size_t limit = 2 * payload.size() + simdjson::SIMDJSON_PADDING;
  if (!Touch(b.instance, base, limit, sum) ||
      !Touch(b.reply_topic, base, limit, sum) ||
      !Touch(b.processor, base, limit, sum)) {
    return "header view outside storage";
  }
  if (b.reply_partition < 0) return "negative reply partition";
  if (PriorityName(b.priority) == "unknown") return "bad priority";
  for (const DecodedJob& j : b.jobs) {
    if (!Touch(j.group, base, limit, sum) || !Touch(j.data, base, limit, sum)) {
      return "job view outside storage";
    }
    if (JobId::FromString(j.id.ToString()) != j.id) return "id round trip";
    if (std::string e = TrimmedValid(j.data); !e.empty()) return e;
  }
  // Re-encode and decode again: the same fields.
  BatchWriter w;
  w.Begin({b.instance, b.seq, b.reply_topic, b.reply_partition, b.processor,
           b.priority});
  for (const DecodedJob& j : b.jobs) w.AddJob(j.id, j.group, j.data);
  const std::string again = w.Finish();
  DecodedBatch c;
  if (absl::Status s = other.DecodeBatch(again, c); !s.ok()) {
    return "re-encoded batch does not decode: " + std::string(s.message());
  }
  if (c.instance != b.instance || c.seq != b.seq ||
      c.reply_topic != b.reply_topic ||
      c.reply_partition != b.reply_partition || c.processor != b.processor ||
      c.priority != b.priority || c.jobs.size() != b.jobs.size()) {
    return "re-encoded batch header differs";
  }
  for (size_t i = 0; i < b.jobs.size(); ++i) {
    if (c.jobs[i].id != b.jobs[i].id || c.jobs[i].group != b.jobs[i].group ||
        c.jobs[i].data != b.jobs[i].data) {
      return "re-encoded job " + std::to_string(i) + " differs";
    }
  }
  return "";
}

struct OwnedEntry {
  uint64_t seq;
  uint32_t index;
  JobId id;
  JobStatus status;
  std::string data;
  std::string error;
};

inline std::string CheckResults(std::string_view payload,
                         std::string_view instance,
                         const std::vector<ResultEntry>& entries,
                         Decoder& other, uint64_t& sum) {
  if (instance.empty()) return "empty instance accepted";
  if (!json::Validate(payload, "message").ok()) return "invalid JSON accepted";
  for (char c : instance) sum += static_cast<unsigned char>(c);
  std::vector<OwnedEntry> owned;
  for (const ResultEntry& e : entries) {
    if (!IsTerminal(e.status)) return "non-terminal status";
    for (char c : e.data) sum += static_cast<unsigned char>(c);
    for (char c : e.error) sum += static_cast<unsigned char>(c);
    if (e.status == JobStatus::kProcessedOk) {
      if (std::string m = TrimmedValid(e.data); !m.empty()) return m;
      if (!e.error.empty()) return "error text on an ok result";
    } else if (!e.data.empty()) {
      return "data on a failed result";
    }
    owned.push_back({e.seq, e.index, e.id, e.status, std::string(e.data),
                     std::string(e.error)});
  }
  ResultWriter w;
  w.Begin(instance);
  for (const OwnedEntry& e : owned) {
    if (e.status == JobStatus::kProcessedOk) {
      w.AddOk(e.seq, e.index, e.id, e.data);
    } else {
      w.AddError(e.seq, e.index, e.id, e.error);
    }
  }
  const std::string owned_instance(instance);
  const std::string again = w.Finish();
  std::string_view instance2;
  std::vector<ResultEntry> entries2;
  if (absl::Status s = other.DecodeResults(again, instance2, entries2);
      !s.ok()) {
    return "re-encoded results do not decode: " + std::string(s.message());
  }
  if (instance2 != owned_instance || entries2.size() != owned.size()) {
    return "re-encoded results differ";
  }
  for (size_t i = 0; i < owned.size(); ++i) {
    const ResultEntry& e = entries2[i];
    const OwnedEntry& o = owned[i];
    // The writer knows two statuses; any other terminal one is an error.
    const JobStatus expected = o.status == JobStatus::kProcessedOk
                                   ? JobStatus::kProcessedOk
                                   : JobStatus::kProcessedError;
    if (e.seq != o.seq || e.index != o.index || e.id != o.id ||
        e.status != expected || e.data != o.data || e.error != o.error) {
      return "re-encoded result " + std::to_string(i) + " differs";
    }
  }
  return "";
}

inline std::string CheckError(const absl::Status& s) {
  if (s.code() != absl::StatusCode::kInvalidArgument) {
    return "failure is not InvalidArgument: " + s.ToString();
  }
  if (s.message().substr(0, 17) != "malformed message") {
    return "failure message does not say malformed: " + s.ToString();
  }
  return "";
}

}  // namespace batchbus::wire

#endif  // BATCHBUS_TESTS_FUZZ_WIRE_CHECKS_H_
