// Xoshiro256: the xoshiro256** generator (Blackman & Vigna) and splitmix64,
// its seeding mixer. Fast and statistically good; not for secrets. Not
// thread-safe: each thread owns its generator.
#ifndef BATCHBUS_LIB_RANDOM_H_
#define BATCHBUS_LIB_RANDOM_H_

#include <array>
#include <cstdint>

namespace batchbus {

// Advances `state` and returns its next splitmix64 output.
constexpr uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

class Xoshiro256 {
 public:
  // The sequence of `seed`: the same seed gives the same numbers.
  explicit Xoshiro256(uint64_t seed = 0) { Seed(seed); }

  void Seed(uint64_t seed) {
    for (uint64_t& s : s_) s = SplitMix64(seed);
  }
  // Sets the state itself; an all-zero state (the generator's only bad
  // one) becomes a valid one.
  void SetState(const std::array<uint64_t, 4>& state) {
    s_ = state;
    if ((s_[0] | s_[1] | s_[2] | s_[3]) == 0) s_[0] = 1;
  }

  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  static constexpr uint64_t Rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
  }

 private:
  std::array<uint64_t, 4> s_{};
};

}  // namespace batchbus

#endif  // BATCHBUS_LIB_RANDOM_H_
