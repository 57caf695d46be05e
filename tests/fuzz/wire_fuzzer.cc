/*
 * libFuzzer target for the wire decoders (lib/wire.cc, lib/json.cc).
 *
 * Not built by CMake. With clang (Debian: apt-get install clang
 * libclang-rt-14-dev), from the project root:
 *
 *   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Iinclude -Ilib tests/fuzz/wire_fuzzer.cc lib/wire.cc lib/json.cc \
 *     lib/job.cc -lsimdjson -labsl_status -labsl_strings -labsl_cord \
 *     -labsl_str_format_internal -labsl_raw_logging_internal \
 *     -labsl_throw_delegate \
 *     -o /tmp/wire_fuzzer
 *   mkdir -p /tmp/wire-corpus
 *   BATCHBUS_FUZZ_ITERATIONS=0 BATCHBUS_FUZZ_CORPUS_DIR=/tmp/wire-corpus \
 *     build/tests/wire_fuzz_test      # writes valid seed messages
 *   /tmp/wire_fuzzer -max_total_time=60 -max_len=4096 /tmp/wire-corpus
 *
 * Every input goes to both DecodeBatch and DecodeResults. Besides crashes
 * and sanitizer reports, the target aborts when a decode that succeeded is
 * not self-consistent: a message or data that json::Validate refuses, a view
 * outside the decoded storage, or a re-encoded message that decodes
 * differently.
 * tests/unit/wire_fuzz_test.cc runs the same checks on seeded random
 * mutations in CI.
 */
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "batchbus/job.h"
#include "json.h"
#include "simdjson.h"
#include "wire.h"

namespace {

using namespace batchbus;  // NOLINT
using namespace batchbus::wire;  // NOLINT

[[noreturn]] void Fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "wire_fuzzer: %s %.*s\n", what,
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

void Check(bool ok, const char* what) {
  if (!ok) Fail(what);
}

void CheckData(std::string_view data) {
  Check(!data.empty(), "empty data");
  Check(json::TrimWhitespace(data).size() == data.size(),
        "data with surrounding whitespace");
  if (!json::Validate(data, "data").ok()) Fail("invalid data accepted:", data);
}

void CheckInside(std::string_view view, const char* base, size_t limit) {
  volatile unsigned sum = 0;
  for (char c : view) sum = sum + static_cast<unsigned char>(c);
  if (view.empty()) return;
  Check(view.data() >= base && view.data() + view.size() <= base + limit,
        "view outside storage");
}

void CheckError(const absl::Status& s) {
  Check(s.code() == absl::StatusCode::kInvalidArgument,
        "failure is not InvalidArgument");
  Check(s.message().substr(0, 17) == "malformed message",
        "failure message does not say malformed");
}

void CheckBatch(std::string_view payload, const DecodedBatch& b) {
  const char* base = b.storage.get();
  Check(base != nullptr, "no storage");
  const size_t limit = 2 * payload.size() + simdjson::SIMDJSON_PADDING;
  CheckInside(b.instance, base, limit);
  CheckInside(b.reply_topic, base, limit);
  CheckInside(b.processor, base, limit);
  Check(b.reply_partition >= 0, "negative reply partition");
  for (const DecodedJob& j : b.jobs) {
    CheckInside(j.group, base, limit);
    CheckInside(j.data, base, limit);
    CheckData(j.data);
  }
  BatchWriter w;
  w.Begin({b.instance, b.seq, b.reply_topic, b.reply_partition, b.processor,
           b.priority});
  for (const DecodedJob& j : b.jobs) w.AddJob(j.id, j.group, j.data);
  const std::string again = w.Finish();
  Decoder other;
  DecodedBatch c;
  if (absl::Status s = other.DecodeBatch(again, c); !s.ok()) {
    Fail("re-encoded batch does not decode:", again);
  }
  Check(c.instance == b.instance && c.seq == b.seq &&
            c.reply_topic == b.reply_topic &&
            c.reply_partition == b.reply_partition &&
            c.processor == b.processor && c.priority == b.priority &&
            c.jobs.size() == b.jobs.size(),
        "re-encoded batch header differs");
  for (size_t i = 0; i < b.jobs.size(); ++i) {
    Check(c.jobs[i].id == b.jobs[i].id && c.jobs[i].group == b.jobs[i].group &&
              c.jobs[i].data == b.jobs[i].data,
          "re-encoded job differs");
  }
}

void CheckResults(std::string_view instance,
                  const std::vector<ResultEntry>& entries) {
  Check(!instance.empty(), "empty instance accepted");
  ResultWriter w;
  w.Begin(instance);
  for (const ResultEntry& e : entries) {
    Check(IsTerminal(e.status), "non-terminal status");
    if (e.status == JobStatus::kProcessedOk) {
      CheckData(e.data);
      Check(e.error.empty(), "error text on an ok result");
      w.AddOk(e.seq, e.index, e.id, e.data);
    } else {
      Check(e.data.empty(), "data on a failed result");
      w.AddError(e.seq, e.index, e.id, e.error);
    }
  }
  const std::string again = w.Finish();
  Decoder other;
  std::string_view instance2;
  std::vector<ResultEntry> entries2;
  if (!other.DecodeResults(again, instance2, entries2).ok()) {
    Fail("re-encoded results do not decode:", again);
  }
  Check(instance2 == instance && entries2.size() == entries.size(),
        "re-encoded results differ");
  for (size_t i = 0; i < entries.size(); ++i) {
    const ResultEntry& a = entries[i];
    const ResultEntry& b = entries2[i];
    const JobStatus expected = a.status == JobStatus::kProcessedOk
                                   ? JobStatus::kProcessedOk
                                   : JobStatus::kProcessedError;
    Check(a.seq == b.seq && a.index == b.index && a.id == b.id &&
              b.status == expected && a.data == b.data && a.error == b.error,
          "re-encoded result differs");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Decoder* decoder = new Decoder;  // Long-lived, as in production.
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  DecodedBatch batch;
  absl::Status s = decoder->DecodeBatch(input, batch);
  if (s.ok()) {
    Check(json::Validate(input, "message").ok(), "invalid JSON accepted");
    CheckBatch(input, batch);
  } else {
    CheckError(s);
  }

  std::string_view instance;
  std::vector<ResultEntry> entries;
  s = decoder->DecodeResults(input, instance, entries);
  if (s.ok()) {
    Check(json::Validate(input, "message").ok(), "invalid JSON accepted");
    CheckResults(instance, entries);
  } else {
    CheckError(s);
  }
  return 0;
}
