// Seeded random mutation test of the wire decoders.
//
// Valid batch and result messages are mutated at random (bit flips, byte
// inserts and deletes, truncation, duplicated chunks, swaps, splices and
// JSON-ish tokens) and fed to both Decoder::DecodeBatch and
// Decoder::DecodeResults. Nothing may crash (run under ASan to also catch
// memory errors), every failure must be InvalidArgument, and every success
// must be self-consistent: the message is valid JSON and so is every data
// value (by the rules of json::Validate), views lie inside the decoded
// storage, re-encoding what was decoded and decoding it again gives the same
// fields, and a fresh decoder agrees with a long-lived one.
//
// The run is deterministic for a seed. Environment:
//   BATCHBUS_FUZZ_ITERATIONS  number of mutants (default 200000, ~2-5 s)
//   BATCHBUS_FUZZ_SEED        seed (default fixed; printed at the start)
//   BATCHBUS_FUZZ_CORPUS_DIR  if set, the seed messages are also written
//                             there, one file each, as a libFuzzer corpus
//                             for tests/fuzz/wire_fuzzer.cc
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "batchbus/job.h"
#include "gtest/gtest.h"
#include "json.h"
#include "random.h"
#include "simdjson.h"
#include "fuzz/wire_checks.h"
#include "wire.h"

namespace batchbus::wire {
namespace {

constexpr uint64_t kDefaultSeed = 0x6261746368627573ull;  // "batchbus"
constexpr uint64_t kDefaultIterations = 200000;

uint64_t EnvNumber(const char* name, uint64_t fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr || *text == '\0') return fallback;
  return std::strtoull(text, nullptr, 0);
}

// xoshiro256**, seeded through splitmix64: fast and the same everywhere.
// The fuzz run's generator: seeded, so a run repeats for its seed.
class Rng {
 public:
  explicit Rng(uint64_t seed) : gen_(seed) {}
  uint64_t Next() { return gen_.Next(); }
  // Uniform in [0, n); n > 0.
  size_t Below(size_t n) { return static_cast<size_t>(Next() % n); }
  bool OneIn(size_t n) { return Below(n) == 0; }

 private:
  Xoshiro256 gen_;
};

// ------------------------------------------------------------ seeds

struct SeedJob {
  JobId id;
  std::string group;
  std::string data;
};

std::string Batch(const BatchHeader& h, const std::vector<SeedJob>& jobs) {
  BatchWriter w;
  w.Begin(h);
  for (const SeedJob& j : jobs) w.AddJob(j.id, j.group, j.data);
  return w.Finish();
}

std::vector<std::string> SeedMessages() {
  const std::string instance = "0123456789abcdef0123456789abcdef";
  BatchHeader h;
  h.instance = instance;
  h.seq = 17;
  h.reply_topic = "batchbus.replies";
  h.reply_partition = 2;
  h.processor = "payments";
  h.priority = Priority::kNormal;

  std::vector<std::string> seeds;
  seeds.push_back(Batch(h, {}));
  seeds.push_back(Batch(h, {{JobId(1, 2), "payment-submit",
                             R"({"amount":"12.50","user":12345})"}}));
  h.priority = Priority::kSlow;
  seeds.push_back(Batch(
      h, {{JobId(0x0123456789abcdefull, 0xfedcba9876543210ull), "a",
           R"({"a":[1,2.5,-3e-7,true,false,null],"b":{"c":"d\"e\\f\u00e9"}})"},
          {JobId(3, 4), "q\"uote\\d \x01", "\"str \\n \\ud83d\\ude00\""},
          {JobId(5, 6), "utf-8 \xc3\xa9\xe6\x97\xa5", "-0"},
          {JobId(7, 8), "", "[]"},
          {JobId(9, 10), "w", "{ \"spaced\" : [ 1 , { } ] }"}}));
  h.priority = Priority::kRealtime;
  h.instance = "in\"stance";
  h.processor = "pro\\cessor";
  seeds.push_back(Batch(h, {{JobId(~0ull, ~0ull), "g", "18446744073709551615"},
                            {JobId(11, 12), "h", "[[[[{\"x\":[]}]]]]"}}));
  // Hand-written: unknown fields, other field order, whitespace.
  seeds.push_back(
      " {\"future\":[1,{\"x\":null}], \"jobs\" : [ {\"data\":{\"k\":[true]},"
      "\"extra\":\"e\",\"group\":\"g\",\"id\":\"0000000000000000000000000000"
      "00ff\"} ], \"priority\":\"slow\",\"processor\":\"p\","
      "\"reply_partition\":0,\"reply_topic\":\"r\",\"seq\":0,"
      "\"instance\":\"i\",\"v\":1 }\n");

  ResultWriter r;
  r.Begin(instance);
  seeds.push_back(r.Finish());
  r.Begin(instance);
  r.AddOk(17, 0, JobId(1, 2), R"({"status":"paid","id":991})");
  seeds.push_back(r.Finish());
  r.Begin("in\"stance");
  r.AddOk(17, 0, JobId(1, 2), "[1,{\"a\":\"b\\\"c\"},null]");
  r.AddError(17, 1, JobId(3, 4), "failed: \"x\" \\ \n\t\x01 \xc3\xa9");
  r.AddOk(18, 4294967295u, JobId(~0ull, ~0ull), "-12.5e-3");
  r.AddError(19, 0, JobId(5, 6), "");
  r.AddOk(19, 1, JobId(7, 8), "\"s\"");
  seeds.push_back(r.Finish());
  seeds.push_back(
      "{\"results\":[{\"status\":\"PROCESSED_ERROR\",\"error\":\"e\","
      "\"id\":\"000000000000000000000000000000aa\",\"i\":3,\"seq\":2,"
      "\"more\":{}}],\"instance\":\"x\",\"v\":1,\"later\":[]}");
  return seeds;
}

const std::vector<std::string>& Tokens() {
  static const std::vector<std::string> tokens = {
      "{", "}", "[", "]", ",", ":", "\"", "\\", "\\u", "\\ud800", "\\u0000",
      "\\\"", "null", "true", "false", "tru", "nul", "-", "0", "-0", "01",
      "1e999", "1.5", "1e", "18446744073709551616", "-9223372036854775809",
      "4294967296", "2147483648", " ", "\n", "\t", "\x01", "\xff", "\xc3",
      "\xe2\x82", "\xf0\x9f\x98\x80", "\"x\"", "\"\"", "[]", "{}",
      "\"v\":1,", "\"v\":2,", "\"jobs\":[],", "\"results\":[],", "\"data\":",
      "\"data\":1,", "\"error\":\"e\",", "\"group\":\"g\",",
      "\"id\":\"0123456789abcdef0123456789abcdef\",",
      "\"id\":\"0123456789abcdef0123456789abcde\",",
      "\"status\":\"PROCESSED_OK\",", "\"status\":\"BATCH_FAILED\",",
      "\"priority\":\"realtime\",", "\"priority\":\"urgent\",",
      "\"seq\":1,", "\"i\":0,", "\"reply_partition\":-1,",
      "{\"a\":[1,{\"b\":null}]}", "[[[[[[[[", "]]]]]]]]",
      "{\"id\":\"0123456789abcdef0123456789abcdef\",\"group\":\"g\","
      "\"data\":[1]}",
  };
  return tokens;
}

// ------------------------------------------------------------ mutation

void Mutate(Rng& rng, std::string& s, const std::vector<std::string>& seeds) {
  const size_t kinds = 11;
  switch (rng.Below(kinds)) {
    case 0:  // Flip a bit.
      if (!s.empty()) s[rng.Below(s.size())] ^= char(1u << rng.Below(8));
      break;
    case 1:  // Overwrite a byte.
      if (!s.empty()) s[rng.Below(s.size())] = char(rng.Below(256));
      break;
    case 2: {  // Insert random bytes.
      const size_t n = 1 + rng.Below(4);
      std::string bytes;
      for (size_t i = 0; i < n; ++i) bytes.push_back(char(rng.Below(256)));
      s.insert(rng.Below(s.size() + 1), bytes);
      break;
    }
    case 3: {  // Delete a range.
      if (s.empty()) break;
      const size_t at = rng.Below(s.size());
      s.erase(at, 1 + rng.Below(rng.OneIn(4) ? 64 : 4));
      break;
    }
    case 4:  // Truncate.
      s.resize(rng.Below(s.size() + 1));
      break;
    case 5: {  // Duplicate a chunk somewhere else.
      if (s.empty()) break;
      const size_t from = rng.Below(s.size());
      const std::string chunk = s.substr(from, 1 + rng.Below(80));
      s.insert(rng.Below(s.size() + 1), chunk);
      break;
    }
    case 6:  // Swap two bytes.
      if (s.size() >= 2) {
        std::swap(s[rng.Below(s.size())], s[rng.Below(s.size())]);
      }
      break;
    case 7:
    case 8: {  // Insert or overwrite with a JSON-ish token.
      const std::string& token = Tokens()[rng.Below(Tokens().size())];
      const size_t at = rng.Below(s.size() + 1);
      if (rng.OneIn(2)) {
        s.insert(at, token);
      } else {
        s.replace(at, std::min(token.size(), s.size() - at), token);
      }
      break;
    }
    case 9: {  // Splice with another seed.
      const std::string& other = seeds[rng.Below(seeds.size())];
      s = s.substr(0, rng.Below(s.size() + 1)) +
          other.substr(rng.Below(other.size() + 1));
      break;
    }
    case 10: {  // Change a number.
      for (int tries = 0; tries < 8 && !s.empty(); ++tries) {
        const size_t at = rng.Below(s.size());
        if (s[at] >= '0' && s[at] <= '9') {
          static const char* const kNumbers[] = {
              "0", "9", "99999999999999999999", "-1", "1.0", "1e3", "65536"};
          s.replace(at, 1, kNumbers[rng.Below(7)]);
          break;
        }
      }
      break;
    }
  }
}

// ------------------------------------------------------------ checks

std::string Printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(char(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

TEST(WireFuzz, RandomMutationsNeverCrashAndDecodeConsistently) {
  const uint64_t seed = EnvNumber("BATCHBUS_FUZZ_SEED", kDefaultSeed);
  const uint64_t iterations =
      EnvNumber("BATCHBUS_FUZZ_ITERATIONS", kDefaultIterations);
  std::printf("wire fuzz: seed 0x%llx, %llu iterations "
              "(BATCHBUS_FUZZ_SEED, BATCHBUS_FUZZ_ITERATIONS)\n",
              static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(iterations));
  std::fflush(stdout);

  const std::vector<std::string> seeds = SeedMessages();
  if (const char* dir = std::getenv("BATCHBUS_FUZZ_CORPUS_DIR")) {
    for (size_t i = 0; i < seeds.size(); ++i) {
      std::ofstream(std::string(dir) + "/seed-" + std::to_string(i),
                    std::ios::binary)
          << seeds[i];
    }
  }

  // The seeds themselves must be valid.
  {
    Decoder d, other;
    uint64_t sum = 0;
    for (const std::string& s : seeds) {
      DecodedBatch b;
      std::string_view instance;
      std::vector<ResultEntry> entries;
      const bool batch_ok = d.DecodeBatch(s, b).ok();
      const bool results_ok = d.DecodeResults(s, instance, entries).ok();
      ASSERT_NE(batch_ok, results_ok) << s;
      if (batch_ok) {
        ASSERT_EQ(CheckBatch(s, b, other, sum), "") << s;
      }
    }
  }

  Rng rng(seed);
  Decoder decoder;  // Long-lived, as in the processor and submitter.
  Decoder other;    // For re-encoded messages.
  uint64_t batches_ok = 0, results_ok = 0, sum = 0, done = 0;
  int failures = 0;
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t it = 0; it < iterations && failures < 5; ++it, ++done) {
    std::string input = seeds[rng.Below(seeds.size())];
    const size_t rounds = 1 + (rng.OneIn(3) ? rng.Below(6) : 0);
    for (size_t r = 0; r < rounds; ++r) Mutate(rng, input, seeds);

    std::string problem;
    DecodedBatch batch;
    const absl::Status bs = decoder.DecodeBatch(input, batch);
    if (bs.ok()) {
      ++batches_ok;
      problem = CheckBatch(input, batch, other, sum);
    } else {
      problem = CheckError(bs);
    }
    std::string_view instance;
    std::vector<ResultEntry> entries;
    const absl::Status rs = decoder.DecodeResults(input, instance, entries);
    if (problem.empty()) {
      if (rs.ok()) {
        ++results_ok;
        problem = CheckResults(input, instance, entries, other, sum);
      } else {
        problem = CheckError(rs);
      }
    }
    // A fresh decoder must agree: no state leaks from earlier messages.
    if (problem.empty() && it % 32 == 0) {
      Decoder fresh;
      DecodedBatch b2;
      std::string_view i2;
      std::vector<ResultEntry> e2;
      const absl::Status fb = fresh.DecodeBatch(input, b2);
      const absl::Status fr = fresh.DecodeResults(input, i2, e2);
      if (fb.ok() != bs.ok() || fr.ok() != rs.ok()) {
        problem = "a fresh decoder disagrees: batch " + bs.ToString() +
                  " vs " + fb.ToString() + "; results " + rs.ToString() +
                  " vs " + fr.ToString();
      }
    }
    if (!problem.empty()) {
      ++failures;
      ADD_FAILURE() << "iteration " << it << " (seed 0x" << std::hex << seed
                    << std::dec << "): " << problem
                    << "\n  input: " << Printable(input);
    }
  }
  const double seconds = std::chrono::duration<double>(
                             std::chrono::steady_clock::now() - start)
                             .count();
  std::printf("wire fuzz: %llu mutants in %.2f s; decoded OK: %llu batches, "
              "%llu result messages (checksum %llu)\n",
              static_cast<unsigned long long>(done), seconds,
              static_cast<unsigned long long>(batches_ok),
              static_cast<unsigned long long>(results_ok),
              static_cast<unsigned long long>(sum));
  // The mutator must still reach the success paths now and then.
  if (iterations >= 10000) {
    EXPECT_GT(batches_ok, 0u);
    EXPECT_GT(results_ok, 0u);
  }
}

TEST(WireFuzz, DeepNestingIsRejectedNotOverflowingTheStack) {
  Decoder d;
  // Submit allows data as deep as json::Validate does (1024 levels); the
  // message adds three levels around it.
  for (size_t depth : {100u, 1000u, 1023u, 1024u, 1025u, 100000u}) {
    const std::string data =
        std::string(depth, '[') + std::string(depth, ']');
    BatchWriter w;
    w.Begin({"i", 1, "r", 0, "p", Priority::kNormal});
    w.AddJob(JobId(1, 1), "g", data);
    DecodedBatch b;
    const absl::Status s = d.DecodeBatch(w.Finish(), b);
    // Accepted exactly when Submit's validation accepts it.
    EXPECT_EQ(s.ok(), json::Validate(data, "data").ok()) << depth << ": " << s;
    std::string_view instance;
    std::vector<ResultEntry> entries;
    const std::string text = "{\"v\":1,\"instance\":\"i\",\"results\":" +
                             std::string(depth, '[') + std::string(depth, ']') +
                             "}";
    EXPECT_FALSE(d.DecodeResults(text, instance, entries).ok());
  }
}

TEST(WireFuzz, LargeMessagesDecode) {
  // A batch near the default 1 MB message limit, with many small jobs.
  BatchWriter w;
  w.Begin({"0123456789abcdef0123456789abcdef", 1, "batchbus.replies", 0,
           "payments", Priority::kSlow});
  size_t n = 0;
  while (w.FinishedSize() + BatchWriter::JobSize("g", "{\"k\":12345}") <
         1'000'000) {
    w.AddJob(JobId(n, n), "g", "{\"k\":12345}");
    ++n;
  }
  const std::string msg = w.Finish();
  EXPECT_LE(msg.size(), 1'000'000u);
  Decoder d;
  DecodedBatch b;
  ASSERT_TRUE(d.DecodeBatch(msg, b).ok());
  EXPECT_EQ(b.jobs.size(), n);
  EXPECT_EQ(b.jobs.back().id, JobId(n - 1, n - 1));
}

}  // namespace
}  // namespace batchbus::wire
