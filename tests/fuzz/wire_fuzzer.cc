/*
 * libFuzzer target for the wire decoders (lib/wire.cc, lib/json.cc).
 *
 * Not built by CMake. With clang (Debian: apt-get install clang
 * libclang-rt-14-dev), from the project root:
 *
 *   clang++ -std=c++17 -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Iinclude -Ilib -Itests tests/fuzz/wire_fuzzer.cc lib/wire.cc lib/json.cc \
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
#include "fuzz/wire_checks.h"
#include "wire.h"

namespace {

using namespace batchbus;  // NOLINT
using namespace batchbus::wire;  // NOLINT

[[noreturn]] void Fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "wire_fuzzer: %s %.*s\n", what,
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

void Check(const std::string& problem, std::string_view input) {
  if (!problem.empty()) Fail(problem.c_str(), input);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Decoder* decoder = new Decoder;  // Long-lived, as in production.
  static Decoder* other = new Decoder;    // Decodes the re-encoded messages.
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  uint64_t sum = 0;

  DecodedBatch batch;
  absl::Status s = decoder->DecodeBatch(input, batch);
  Check(s.ok() ? CheckBatch(input, batch, *other, sum) : CheckError(s), input);

  std::string_view instance;
  std::vector<ResultEntry> entries;
  s = decoder->DecodeResults(input, instance, entries);
  Check(s.ok() ? CheckResults(input, instance, entries, *other, sum)
               : CheckError(s),
        input);
  return 0;
}
