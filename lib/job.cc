// batchbus/job.cc — names of priorities and statuses, and JobId.
#include "batchbus/job.h"

#include "random.h"

#include <pthread.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>

namespace batchbus {
namespace {

constexpr std::array<std::string_view, kNumPriorities> kPriorityNames = {
    "realtime", "normal", "slow"};

constexpr std::array<std::string_view, 6> kJobStatusNames = {
    "NEW",          "SUBMITTED",    "PROCESSED_OK", "PROCESSED_ERROR",
    "BATCH_FAILED", "EXPIRED"};

// ---------------------------------------------------------------------------
// Random ids.
//
// Each thread owns a xoshiro256** generator. It is seeded once, on the
// thread's first JobId::Random(), from 256 bits of std::random_device mixed
// (through splitmix64) with the thread id, the clock, the process id and the
// address of the thread's state. After that, an id costs two generator steps
// and no system call. A fork() bumps a generation counter so that parent and
// child never continue the same sequence: the child reseeds on its next id.

std::atomic<uint64_t> fork_generation{1};

void OnForkChild() {
  fork_generation.fetch_add(1, std::memory_order_relaxed);
}


constexpr auto Rotl = Xoshiro256::Rotl;

class IdGenerator {
 public:
  uint64_t Next() {
    const uint64_t generation =
        fork_generation.load(std::memory_order_relaxed);
    if (generation != generation_) Seed(generation);
    return gen_.Next();
  }

 private:
  void Seed(uint64_t generation) {
    static std::once_flag atfork_once;
    std::call_once(atfork_once,
                   [] { pthread_atfork(nullptr, nullptr, &OnForkChild); });

    std::random_device device;
    std::array<uint64_t, 4> entropy;
    for (uint64_t& e : entropy) {
      e = (static_cast<uint64_t>(device()) << 32) ^ device();
    }
    uint64_t mix =
        static_cast<uint64_t>(
            std::hash<std::thread::id>{}(std::this_thread::get_id())) ^
        static_cast<uint64_t>(
            std::chrono::steady_clock::now().time_since_epoch().count()) ^
        Rotl(static_cast<uint64_t>(
                 std::chrono::system_clock::now().time_since_epoch().count()),
             21) ^
        Rotl(static_cast<uint64_t>(getpid()), 43) ^
        Rotl(static_cast<uint64_t>(reinterpret_cast<uintptr_t>(this)), 11) ^
        generation;
    std::array<uint64_t, 4> state;
    for (int i = 0; i < 4; ++i) state[i] = entropy[i] ^ SplitMix64(mix);
    gen_.SetState(state);
    generation_ = generation;
  }

  Xoshiro256 gen_;
  uint64_t generation_ = 0;  // 0: not seeded yet.
};

// ---------------------------------------------------------------------------
// Hex text.

// kHexPairs[2*b], kHexPairs[2*b+1] are the two lowercase digits of byte b.
constexpr std::array<char, 512> MakeHexPairs() {
  constexpr char kDigits[] = "0123456789abcdef";
  std::array<char, 512> table{};
  for (int b = 0; b < 256; ++b) {
    table[2 * b] = kDigits[b >> 4];
    table[2 * b + 1] = kDigits[b & 0xf];
  }
  return table;
}
constexpr std::array<char, 512> kHexPairs = MakeHexPairs();

// Value of a hex digit (either case), or -1.
constexpr std::array<int8_t, 256> MakeHexValues() {
  std::array<int8_t, 256> table{};
  for (int c = 0; c < 256; ++c) table[c] = -1;
  for (int d = 0; d < 10; ++d) table['0' + d] = static_cast<int8_t>(d);
  for (int d = 0; d < 6; ++d) {
    table['a' + d] = static_cast<int8_t>(10 + d);
    table['A' + d] = static_cast<int8_t>(10 + d);
  }
  return table;
}
constexpr std::array<int8_t, 256> kHexValues = MakeHexValues();

void WriteHex64(uint64_t v, char* out) {
  for (int i = 7; i >= 0; --i) {
    const unsigned byte = static_cast<unsigned>(v & 0xff);
    out[2 * i] = kHexPairs[2 * byte];
    out[2 * i + 1] = kHexPairs[2 * byte + 1];
    v >>= 8;
  }
}

bool ReadHex64(const char* in, uint64_t& v) {
  uint64_t result = 0;
  for (int i = 0; i < 16; ++i) {
    const int8_t d = kHexValues[static_cast<unsigned char>(in[i])];
    if (d < 0) return false;
    result = (result << 4) | static_cast<uint64_t>(d);
  }
  v = result;
  return true;
}

}  // namespace

std::string_view PriorityName(Priority p) {
  const auto i = static_cast<size_t>(p);
  return i < kPriorityNames.size() ? kPriorityNames[i] : "unknown";
}

std::optional<Priority> ParsePriority(std::string_view name) {
  for (Priority p : kAllPriorities) {
    if (PriorityName(p) == name) return p;
  }
  return std::nullopt;
}

std::string_view JobStatusName(JobStatus s) {
  const auto i = static_cast<size_t>(s);
  return i < kJobStatusNames.size() ? kJobStatusNames[i] : "UNKNOWN";
}

std::optional<JobStatus> ParseJobStatus(std::string_view name) {
  for (size_t i = 0; i < kJobStatusNames.size(); ++i) {
    if (kJobStatusNames[i] == name) return static_cast<JobStatus>(i);
  }
  return std::nullopt;
}

JobId JobId::Random() {
  thread_local IdGenerator generator;
  for (;;) {
    const uint64_t hi = generator.Next();
    const uint64_t lo = generator.Next();
    // Zero means "unassigned"; never hand it out (odds are 2^-128 anyway).
    if (hi != 0 || lo != 0) return JobId(hi, lo);
  }
}

std::optional<JobId> JobId::FromString(std::string_view text) {
  if (text.size() != 32) return std::nullopt;
  uint64_t hi = 0;
  uint64_t lo = 0;
  if (!ReadHex64(text.data(), hi) || !ReadHex64(text.data() + 16, lo)) {
    return std::nullopt;
  }
  return JobId(hi, lo);
}

std::string JobId::ToString() const {
  std::string out;
  AppendTo(out);
  return out;
}

void JobId::AppendTo(std::string& out) const {
  const size_t at = out.size();
  out.resize(at + 32);
  WriteHex64(hi_, &out[at]);
  WriteHex64(lo_, &out[at + 16]);
}

}  // namespace batchbus
