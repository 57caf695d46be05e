// batchbus/config.cc — Config defaults, key parsing, layering and checks.
#include "batchbus/config.h"

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "names.h"
#include "secrets.h"
#include "strcat.h"

extern char** environ;

namespace batchbus {
namespace {

// The public API uses std::string_view; Abseil may be built with its own
// absl::string_view (Debian's is), so this file works in absl::string_view
// and converts at the boundary.
using Sv = absl::string_view;
Sv ToSv(std::string_view s) { return Sv(s.data(), s.size()); }
std::string_view ToStd(Sv s) { return std::string_view(s.data(), s.size()); }

constexpr Sv kEnvPrefix = "BATCHBUS_";
constexpr Sv kKafkaKeyPrefix = "kafka.";
constexpr Sv kKafkaEnvPrefix = "BATCHBUS_KAFKA_";
constexpr Sv kConfigEnv = "BATCHBUS_CONFIG";

// BATCHBUS_KAFKA_<X> variables that belong to the test-broker script
// (scripts/kafka, docs/kafka-broker.md), not to librdkafka;
// MergeEnvironment() skips them. None of them maps to a librdkafka property.
constexpr Sv kKafkaEnvIgnored[] = {
    "PORT",       "CONTROLLER_PORT", "HOME",          "STATE",
    "FRESH",      "AUTO_CREATE",     "VERSION",       "JAVA_OPTS",
    "LOG_LEVEL",  "PROBE",           "PROPERTIES",    "START_TIMEOUT",
    "STOP_TIMEOUT", "SCRIPT",        "HEAP",          "NODES",
    "SASL",       "SASL_PORT",       "SASL_USERS",    "SASL_ALLOW_EVERYONE"};

constexpr char kPlaceholderNamespace[] = "{namespace}";
constexpr char kPlaceholderProcessor[] = "{processor}";

// ---------------------------------------------------------------------------
// Value parsing. Every parser gets the key only to name it in errors.

absl::Status BadValue(Sv key, Sv value, Sv what) {
  return absl::InvalidArgumentError(
      absl::StrCat("config key '", key, "': '", value, "' is not ", what));
}

bool AllDigits(Sv s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Parses decimal digits into `out`; false when not all digits or when the
// number exceeds `max`.
bool ParseDigits(Sv s, uint64_t max, uint64_t& out) {
  if (!AllDigits(s)) return false;
  uint64_t v = 0;
  for (char c : s) {
    const uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (max - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

absl::Status TooLarge(Sv key, Sv value, uint64_t max) {
  return absl::InvalidArgumentError(absl::StrCat(
      "config key '", key, "': '", value, "' is too large (at most ", max,
      ")"));
}

// A non-negative integer of at most `max`.
absl::StatusOr<uint64_t> ParseCount(Sv key, Sv value, uint64_t max) {
  if (!AllDigits(value)) {
    return BadValue(key, value, "a non-negative integer");
  }
  uint64_t v = 0;
  if (!ParseDigits(value, max, v)) return TooLarge(key, value, max);
  return v;
}

// A non-negative integer of bytes, optionally followed by k/K, m/M or g/G
// (KiB, MiB, GiB).
absl::StatusOr<uint64_t> ParseBytes(Sv key, Sv value, uint64_t max) {
  uint64_t unit = 1;
  Sv digits = value;
  if (!digits.empty()) {
    switch (digits.back()) {
      case 'k':
      case 'K':
        unit = uint64_t{1} << 10;
        break;
      case 'm':
      case 'M':
        unit = uint64_t{1} << 20;
        break;
      case 'g':
      case 'G':
        unit = uint64_t{1} << 30;
        break;
      default:
        break;
    }
    if (unit != 1) digits.remove_suffix(1);
  }
  if (!AllDigits(digits)) {
    return BadValue(key, value,
                    "a non-negative integer of bytes (optionally with "
                    "suffix k, m or g for KiB, MiB, GiB)");
  }
  uint64_t v = 0;
  if (!ParseDigits(digits, max / unit, v)) return TooLarge(key, value, max);
  return v * unit;
}

absl::StatusOr<absl::Duration> ParseMillis(Sv key, Sv value) {
  constexpr uint64_t kMax =
      static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (!AllDigits(value)) {
    return BadValue(key, value,
                    "a non-negative integer (a duration in milliseconds)");
  }
  uint64_t v = 0;
  if (!ParseDigits(value, kMax, v)) return TooLarge(key, value, kMax);
  return absl::Milliseconds(static_cast<int64_t>(v));
}

// An int, possibly negative.
absl::StatusOr<int> ParseSignedInt(Sv key, Sv value) {
  Sv digits = value;
  const bool negative = absl::ConsumePrefix(&digits, "-");
  if (!AllDigits(digits)) return BadValue(key, value, "an integer");
  const uint64_t max =
      negative ? uint64_t{1} << 31 : uint64_t{std::numeric_limits<int>::max()};
  uint64_t v = 0;
  if (!ParseDigits(digits, max, v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("config key '", key, "': '", value,
                     "' is out of range for an int"));
  }
  return negative ? static_cast<int>(-static_cast<int64_t>(v))
                  : static_cast<int>(v);
}

absl::StatusOr<bool> ParseBool(Sv key, Sv value) {
  const std::string v = absl::AsciiStrToLower(value);
  if (v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no") return false;
  return BadValue(key, value, "a boolean (true, false, 1, 0, yes or no)");
}

absl::StatusOr<BackpressurePolicy> ParseBackpressure(Sv key, Sv value) {
  const std::string v = absl::AsciiStrToLower(value);
  if (v == "wait") return BackpressurePolicy::kWait;
  if (v == "fail") return BackpressurePolicy::kFail;
  return BadValue(key, value, "a backpressure policy (wait or fail)");
}

constexpr uint64_t kMaxSize = std::numeric_limits<size_t>::max();
constexpr uint64_t kMaxInt = std::numeric_limits<int>::max();

// Parsers with the bounds the fields need, in the one shape the key tables
// take: (key, value) -> value or error.
absl::StatusOr<std::string> ParseString(Sv, Sv value) {
  return std::string(value);
}
absl::StatusOr<uint64_t> ParseSizeCount(Sv key, Sv value) {
  return ParseCount(key, value, kMaxSize);
}
absl::StatusOr<uint64_t> ParseIntCount(Sv key, Sv value) {
  return ParseCount(key, value, kMaxInt);
}
absl::StatusOr<uint64_t> ParsePort(Sv key, Sv value) {
  return ParseCount(key, value, 65535);
}
absl::StatusOr<LogLevel> ParseLevel(Sv key, Sv value) {
  if (auto level = ParseLogLevel(ToStd(absl::AsciiStrToLower(value)))) {
    return *level;
  }
  return BadValue(key, value, "a log level (error, warning, info or debug)");
}
absl::StatusOr<uint64_t> ParseSizeBytes(Sv key, Sv value) {
  return ParseBytes(key, value, kMaxSize);
}

// ---------------------------------------------------------------------------
// The key tables. MergeEnvironment() derives the variable names from these,
// so a key added here is settable from files, Set() and the environment.

using GlobalSetter = absl::Status (*)(Config&, Sv key, Sv value);
using PrioritySetter = absl::Status (*)(PriorityConfig&, Sv key, Sv value);

// Sets `owner.*Field` to `Parse(key, value)`: one setter per table row,
// written once for every field.
template <typename Owner, auto Field, auto Parse>
absl::Status SetField(Owner& owner, Sv key, Sv value) {
  auto parsed = Parse(key, value);
  if (!parsed.ok()) return parsed.status();
  owner.*Field = static_cast<std::remove_reference_t<decltype(owner.*Field)>>(
      *std::move(parsed));
  return absl::OkStatus();
}
template <auto Field, auto Parse>
constexpr GlobalSetter kSet = SetField<Config, Field, Parse>;
template <auto Field, auto Parse>
constexpr PrioritySetter kSetPriority = SetField<PriorityConfig, Field, Parse>;

// realtime.max_bytes defaults to max_message_bytes; it keeps following it for
// as long as the two are equal.
absl::Status SetMaxMessageBytes(Config& c, Sv key, Sv value) {
  absl::StatusOr<uint64_t> bytes = ParseSizeBytes(key, value);
  if (!bytes.ok()) return bytes.status();
  PriorityConfig& realtime = c.For(Priority::kRealtime);
  if (realtime.max_bytes == c.max_message_bytes) realtime.max_bytes = *bytes;
  c.max_message_bytes = *bytes;
  return absl::OkStatus();
}

absl::StatusOr<double> ParseMultiplier(Sv key, Sv value) {
  double v = 0;
  if (!absl::SimpleAtod(value, &v) || !(v >= 1.0) || v > 1000.0) {
    return BadValue(key, value, "a number from 1 to 1000");
  }
  return v;
}
absl::StatusOr<uint64_t> ParseAttempts(Sv key, Sv value) {
  absl::StatusOr<uint64_t> n = ParseCount(key, value, 1'000'000);
  if (n.ok() && *n == 0) return BadValue(key, value, "at least 1");
  return n;
}

using RetrySetter = absl::Status (*)(RetryOverrides&, Sv key, Sv value);
template <auto Field, auto Parse>
constexpr RetrySetter kSetRetry = SetField<RetryOverrides, Field, Parse>;

struct RetryKey {
  Sv name;  // After "retry." or "group.<name>.".
  RetrySetter set;
};

const RetryKey kRetryKeys[] = {
    {"max_attempts", kSetRetry<&RetryOverrides::max_attempts, ParseAttempts>},
    {"initial_delay_ms",
     kSetRetry<&RetryOverrides::initial_delay, ParseMillis>},
    {"multiplier", kSetRetry<&RetryOverrides::multiplier, ParseMultiplier>},
    {"max_delay_ms", kSetRetry<&RetryOverrides::max_delay, ParseMillis>},
};

absl::Status SetRetry(RetryOverrides& retry, Sv key, Sv field, Sv value) {
  for (const RetryKey& k : kRetryKeys) {
    if (k.name == field) return k.set(retry, key, value);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown config key '", key,
      "'; the retry keys end in max_attempts, initial_delay_ms, multiplier "
      "and max_delay_ms"));
}

struct GlobalKey {
  Sv name;
  GlobalSetter set;
};
struct PriorityKey {
  Sv name;  // After "<priority>.".
  PrioritySetter set;
};

const GlobalKey kGlobalKeys[] = {
    {"brokers", kSet<&Config::brokers, ParseString>},
    {"namespace", kSet<&Config::ns, ParseString>},
    {"client_id", kSet<&Config::client_id, ParseString>},
    {"max_inflight_jobs", kSet<&Config::max_inflight_jobs, ParseSizeCount>},
    {"max_inflight_bytes", kSet<&Config::max_inflight_bytes, ParseSizeBytes>},
    {"backpressure", kSet<&Config::backpressure, ParseBackpressure>},
    {"submit_wait_ms", kSet<&Config::submit_wait, ParseMillis>},
    {"status_retention_ms", kSet<&Config::status_retention, ParseMillis>},
    {"max_message_bytes", SetMaxMessageBytes},
    {"reply_topic", kSet<&Config::reply_topic, ParseString>},
    {"reply_partition", kSet<&Config::reply_partition, ParseSignedInt>},
    {"group_id", kSet<&Config::group_id, ParseString>},
    {"processor_instance", kSet<&Config::processor_instance, ParseString>},
    {"prefetch_jobs", kSet<&Config::prefetch_jobs, ParseSizeCount>},
    {"fetch_queue_kbytes", kSet<&Config::fetch_queue_kbytes, ParseSizeCount>},
    {"result_linger_ms", kSet<&Config::result_linger, ParseMillis>},
    {"result_max_bytes", kSet<&Config::result_max_bytes, ParseSizeBytes>},
    {"realtime_pacing", kSet<&Config::realtime_pacing, ParseBool>},
    {"dead_letter_failed_jobs",
     kSet<&Config::dead_letter_failed_jobs, ParseBool>},
    {"realtime_pacing_target_ms",
     kSet<&Config::realtime_pacing_target, ParseMillis>},
    {"deadline_skew_ms", kSet<&Config::deadline_skew, ParseMillis>},
    {"dead_letter_topic", kSet<&Config::dead_letter_topic, ParseString>},
    {"create_topics", kSet<&Config::create_topics, ParseBool>},
    {"topic_partitions", kSet<&Config::topic_partitions, ParseIntCount>},
    {"replication_factor", kSet<&Config::replication_factor, ParseIntCount>},
    {"min_insync_replicas",
     kSet<&Config::min_insync_replicas, ParseIntCount>},
    {"close_timeout_ms", kSet<&Config::close_timeout, ParseMillis>},
    {"metrics_port", kSet<&Config::metrics_port, ParsePort>},
    {"metrics_address", kSet<&Config::metrics_address, ParseString>},
    {"log_level", kSet<&Config::log_level, ParseLevel>},
};

const PriorityKey kPriorityKeys[] = {
    {"max_jobs", kSetPriority<&PriorityConfig::max_jobs, ParseSizeCount>},
    {"max_bytes", kSetPriority<&PriorityConfig::max_bytes, ParseSizeBytes>},
    {"max_linger_ms", kSetPriority<&PriorityConfig::max_linger, ParseMillis>},
    {"batch_timeout_ms",
     kSetPriority<&PriorityConfig::batch_timeout, ParseMillis>},
    {"topic", kSetPriority<&PriorityConfig::topic, ParseString>},
};

// "normal.max_jobs" -> "BATCHBUS_NORMAL_MAX_JOBS".
std::string EnvName(Sv key) {
  std::string name = absl::StrCat(kEnvPrefix, key);
  for (char& c : name) {
    c = c == '.' ? '_' : absl::ascii_toupper(static_cast<unsigned char>(c));
  }
  return name;
}

// Every key except kafka.*, in table order.
std::vector<std::string> KnownKeys() {
  std::vector<std::string> keys;
  for (const GlobalKey& k : kGlobalKeys) keys.emplace_back(k.name);
  for (const RetryKey& k : kRetryKeys) keys.push_back(absl::StrCat("retry.", k.name));
  for (Priority p : kAllPriorities) {
    for (const PriorityKey& k : kPriorityKeys) {
      keys.push_back(absl::StrCat(ToSv(PriorityName(p)), ".", k.name));
    }
  }
  return keys;
}

// Same code, message prefixed with `context`.
absl::Status WithContext(const absl::Status& status, Sv context) {
  return absl::Status(status.code(),
                      absl::StrCat(context, ": ", status.message()));
}

std::string Substitute(Sv tmpl, Sv ns, Sv processor) {
  return absl::StrReplaceAll(
      tmpl, {{kPlaceholderNamespace, ns}, {kPlaceholderProcessor, processor}});
}

// Stands in for a processor name when Validate() checks topic templates.
constexpr char kSampleProcessor[] = "processor";

// `placeholders` lists what `key` substitutes, for the error message.
absl::Status CheckTopicTemplate(Sv key, Sv tmpl, Sv resolved, Sv placeholders) {
  if (IsValidTopicName(ToStd(resolved))) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "config key '", key, "': template '", tmpl, "' gives topic '", resolved,
      "', which is not a valid Kafka topic name (1 to 249 characters from "
      "[A-Za-z0-9._-]); placeholders substituted here: ", placeholders));
}

constexpr char kBothPlaceholders[] = "{namespace} and {processor}";

absl::Status CheckBrokers(Sv brokers) {
  Sv rest = brokers;
  if (absl::ConsumePrefix(&rest, "mock://")) {
    if (rest.empty() ||
        (rest.size() == 1 && rest[0] >= '1' && rest[0] <= '9')) {
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "config key 'brokers': '", brokers,
        "' is not valid; after 'mock://' give nothing or a broker count "
        "from 1 to 9, e.g. 'mock://3'"));
  }
  if (absl::ConsumePrefix(&rest, "kafka://")) {
    if (rest.empty()) {
      return absl::InvalidArgumentError(
          "config key 'brokers': 'kafka://' needs at least one host:port, "
          "e.g. 'kafka://localhost:9092'");
    }
    for (Sv entry : absl::StrSplit(rest, ',')) {
      const Sv hostport = absl::StripAsciiWhitespace(entry);
      const size_t colon = hostport.rfind(':');
      bool ok = colon != Sv::npos && colon > 0;
      if (ok) {
        Sv host = hostport.substr(0, colon);
        if (host.front() == '[') {  // [IPv6]:port
          ok = host.size() > 2 && host.back() == ']';
        } else {
          ok = host.find_first_of(":[]/ ") == Sv::npos;
        }
      }
      uint64_t port = 0;
      if (ok) {
        ok = ParseDigits(hostport.substr(colon + 1), 65535, port) && port > 0;
      }
      if (!ok) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config key 'brokers': '", hostport, "' in '", brokers,
            "' is not host:port (port 1-65535); give a comma-separated list "
            "such as 'kafka://k1:9092,k2:9092'"));
      }
    }
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "config key 'brokers': '", brokers,
      "' must start with 'mock://' (embedded test cluster) or 'kafka://' "
      "followed by host:port[,host:port...]"));
}

int64_t Ms(absl::Duration d) { return absl::ToInt64Milliseconds(d); }

absl::Status AtLeast(Sv key, uint64_t value, uint64_t min, Sv why = "") {
  if (value >= min) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "config key '", key, "' is ", value, "; it must be at least ", min,
      why.empty() ? "" : " (", why, why.empty() ? "" : ")"));
}

absl::Status NotNegative(Sv key, absl::Duration d) {
  if (d >= absl::ZeroDuration()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "config key '", key, "' is ", Ms(d), " ms; it must not be negative"));
}

}  // namespace

Config::Config() {
  PriorityConfig& realtime = For(Priority::kRealtime);
  realtime.max_jobs = 1;
  realtime.max_bytes = max_message_bytes;
  realtime.max_linger = absl::ZeroDuration();
  realtime.batch_timeout = absl::Seconds(10);

  PriorityConfig& normal = For(Priority::kNormal);
  normal.max_jobs = 500;
  normal.max_bytes = 512 * 1024;
  normal.max_linger = absl::Milliseconds(5);
  normal.batch_timeout = absl::Seconds(30);

  PriorityConfig& slow = For(Priority::kSlow);
  slow.max_jobs = 5000;
  slow.max_bytes = 900'000;
  slow.max_linger = absl::Milliseconds(50);
  slow.batch_timeout = absl::Seconds(300);
}

absl::Status Config::Set(std::string_view key_in, std::string_view value_in) {
  const Sv key = absl::StripAsciiWhitespace(ToSv(key_in));
  const Sv value = absl::StripAsciiWhitespace(ToSv(value_in));

  Sv property = key;
  if (absl::ConsumePrefix(&property, kKafkaKeyPrefix)) {
    if (property.empty()) {
      return absl::InvalidArgumentError(
          "config key 'kafka.' names no librdkafka property; write "
          "'kafka.<property>', e.g. 'kafka.security.protocol'");
    }
    kafka[std::string(property)] = std::string(value);
    return absl::OkStatus();
  }

  for (const GlobalKey& k : kGlobalKeys) {
    if (k.name == key) return k.set(*this, key, value);
  }
  if (Sv field = key; absl::ConsumePrefix(&field, "retry.")) {
    return SetRetry(retry, key, field, value);
  }
  // group.<name>.<field>; a group's name may hold dots, a field does not.
  if (Sv rest = key; absl::ConsumePrefix(&rest, "group.")) {
    const size_t dot = rest.rfind('.');
    if (dot == Sv::npos || dot == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "config key '", key, "' names no group setting; write "
          "'group.<name>.max_attempts' (or initial_delay_ms, multiplier, "
          "max_delay_ms, max_rate)"));
    }
    const std::string group(rest.substr(0, dot));
    if (rest.substr(dot + 1) == "max_rate") {
      double rate = 0;
      if (!absl::SimpleAtod(value, &rate) || !(rate > 0) || rate > 1e9) {
        return absl::InvalidArgumentError(absl::StrCat(
            "config key '", key, "' has value '", value,
            "'; expected jobs per second, a number above 0 and at most 1e9"));
      }
      group_max_rate[group] = rate;
      return absl::OkStatus();
    }
    auto it = group_retry.find(group);
    RetryOverrides scratch = it == group_retry.end() ? RetryOverrides{} : it->second;
    absl::Status s = SetRetry(scratch, key, rest.substr(dot + 1), value);
    if (s.ok()) group_retry[group] = scratch;  // A bad value changes nothing.
    return s;
  }

  const size_t dot = key.find('.');
  if (dot != Sv::npos) {
    const Sv prefix = key.substr(0, dot);
    const Sv name = key.substr(dot + 1);
    if (std::optional<Priority> p = ParsePriority(ToStd(prefix))) {
      for (const PriorityKey& k : kPriorityKeys) {
        if (k.name == name) return k.set(For(*p), key, value);
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown config key '", key, "'; the per-priority keys are ", prefix,
          ".max_jobs, ", prefix, ".max_bytes, ", prefix, ".max_linger_ms, ",
          prefix, ".batch_timeout_ms and ", prefix, ".topic"));
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown config key '", key,
      "'; keys are lowercase, see docs/configuration.md for the list "
      "(raw librdkafka properties go under 'kafka.')"));
}

absl::Status Config::MergeFile(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    const int err = errno;
    const std::string message =
        absl::StrCat("cannot open config file '", path,
                     "': ", std::strerror(err));
    if (err == ENOENT || err == ENOTDIR) {
      return absl::NotFoundError(message);
    }
    if (err == EACCES || err == EPERM) {
      return absl::PermissionDeniedError(message);
    }
    return absl::UnavailableError(message);
  }
  std::string text;
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    text.append(buffer, n);
  }
  const bool read_failed = std::ferror(file) != 0;
  const int err = errno;
  std::fclose(file);
  if (read_failed) {
    const std::string message = absl::StrCat(
        "cannot read config file '", path, "': ", std::strerror(err));
    return err == EISDIR ? absl::InvalidArgumentError(message)
                         : absl::UnavailableError(message);
  }

  int line_number = 0;
  for (Sv line : absl::StrSplit(text, '\n')) {
    ++line_number;
    const std::string where = absl::StrCat(path, ":", line_number);
    // A '#' starts a comment at the start of the line or after whitespace;
    // elsewhere (e.g. "pass#word") it is part of the value.
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '#' &&
          (i == 0 || absl::ascii_isspace(static_cast<unsigned char>(
                         line[i - 1])))) {
        line = line.substr(0, i);
        break;
      }
    }
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    const size_t eq = line.find('=');
    if (eq == Sv::npos) {
      // A line that names a secret is not repeated.
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": expected 'key = value', got '",
          ToAbsl(Shown(ToStd(line), ToStd(line))), "'"));
    }
    const Sv key = absl::StripAsciiWhitespace(line.substr(0, eq));
    if (key.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": missing key before '=' in '", line, "'"));
    }
    if (absl::Status s = Set(ToStd(key), ToStd(line.substr(eq + 1)));
        !s.ok()) {
      return WithContext(s, where);
    }
  }
  return absl::OkStatus();
}

absl::Status Config::MergeEnvironment() {
  for (const std::string& key : KnownKeys()) {
    const std::string name = EnvName(key);
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) continue;
    if (absl::Status s = Set(key, value); !s.ok()) {
      return WithContext(s, absl::StrCat("environment variable ", name));
    }
  }

  if (environ == nullptr) return absl::OkStatus();
  for (char** entry = environ; *entry != nullptr; ++entry) {
    Sv var(*entry);
    const size_t eq = var.find('=');
    if (eq == Sv::npos) continue;
    Sv name = var.substr(0, eq);
    const Sv value = var.substr(eq + 1);
    if (!absl::ConsumePrefix(&name, kKafkaEnvPrefix)) continue;
    bool ignored = false;
    for (Sv skip : kKafkaEnvIgnored) ignored |= name == skip;
    if (ignored) continue;
    if (name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "environment variable ", kKafkaEnvPrefix,
          " names no librdkafka property; use e.g. "
          "BATCHBUS_KAFKA_SECURITY_PROTOCOL=ssl"));
    }
    std::string property = absl::AsciiStrToLower(name);
    for (char& c : property) {
      if (c == '_') c = '.';
    }
    kafka[property] = std::string(absl::StripAsciiWhitespace(value));
  }
  return absl::OkStatus();
}

absl::StatusOr<Config> Config::Load(const std::string& path) {
  Config config;
  std::string file = path;
  bool from_env = false;
  if (file.empty()) {
    const std::string env_name(kConfigEnv);
    if (const char* env = std::getenv(env_name.c_str());
        env != nullptr && *env != '\0') {
      file = env;
      from_env = true;
    }
  }
  if (!file.empty()) {
    if (absl::Status s = config.MergeFile(file); !s.ok()) {
      return from_env ? WithContext(s, absl::StrCat("$", kConfigEnv)) : s;
    }
  }
  if (absl::Status s = config.MergeEnvironment(); !s.ok()) return s;
  if (absl::Status s = config.Validate(); !s.ok()) return s;
  return config;
}

namespace {

// Returns from the enclosing function when `expr` is an error.
#define BATCHBUS_RETURN_IF_ERROR_(expr)            \
  do {                                             \
    if (absl::Status s_ = (expr); !s_.ok()) return s_; \
  } while (0)

absl::Status MustHold(bool ok, Sv message) {
  return ok ? absl::OkStatus() : absl::InvalidArgumentError(message);
}

absl::Status CheckNamespace(Sv ns) {
  if (ns.empty()) {
    return absl::InvalidArgumentError(
        "config key 'namespace' is empty; it prefixes every topic name, "
        "e.g. 'batchbus'");
  }
  return MustHold(HasOnlyTopicChars(ToStd(ns)),
                  absl::StrCat("config key 'namespace': '", ns,
                               "' may only contain letters, digits, '.', '_' "
                               "and '-'"));
}

// Fits in one Kafka message of `max_message_bytes`: a batch, a result
// message.
absl::Status FitsInMessage(Sv key, size_t bytes, size_t max_message_bytes,
                           Sv what) {
  return MustHold(
      bytes <= max_message_bytes,
      absl::StrCat("config key '", key, "' is ", bytes,
                   ", more than max_message_bytes (", max_message_bytes,
                   "); ", what, " must fit in one Kafka message, so lower ",
                   key, " or raise max_message_bytes"));
}

absl::Status CheckPriority(Priority p, const PriorityConfig& pc,
                           size_t max_message_bytes) {
  const std::string name(PriorityName(p));
  const std::string max_bytes_key = absl::StrCat(name, ".max_bytes");
  const std::string linger_key = absl::StrCat(name, ".max_linger_ms");
  const std::string timeout_key = absl::StrCat(name, ".batch_timeout_ms");
  BATCHBUS_RETURN_IF_ERROR_(MustHold(
      p != Priority::kRealtime || pc.max_jobs == 1,
      absl::StrCat("config key 'realtime.max_jobs' is ", pc.max_jobs,
                   "; it must be 1: realtime jobs are always sent at once as "
                   "a batch of one (use the normal priority for batching)")));
  BATCHBUS_RETURN_IF_ERROR_(
      AtLeast(absl::StrCat(name, ".max_jobs"), pc.max_jobs, 1));
  BATCHBUS_RETURN_IF_ERROR_(AtLeast(max_bytes_key, pc.max_bytes, 256));
  BATCHBUS_RETURN_IF_ERROR_(FitsInMessage(max_bytes_key, pc.max_bytes,
                                          max_message_bytes, "a batch"));
  BATCHBUS_RETURN_IF_ERROR_(NotNegative(linger_key, pc.max_linger));
  BATCHBUS_RETURN_IF_ERROR_(
      MustHold(pc.batch_timeout > absl::ZeroDuration(),
               absl::StrCat("config key '", timeout_key, "' is ",
                            Ms(pc.batch_timeout), "; it must be more than 0")));
  return MustHold(pc.batch_timeout >= pc.max_linger,
                  absl::StrCat("config key '", timeout_key, "' (",
                               Ms(pc.batch_timeout), " ms) is less than ",
                               linger_key, " (", Ms(pc.max_linger),
                               " ms); a batch would time out before it is "
                               "sent"));
}

// Each priority's topic template gives a valid topic, and a topic of its own.
absl::Status CheckPriorityTopics(const Config& c) {
  std::string topics[kNumPriorities];
  for (Priority p : kAllPriorities) {
    topics[static_cast<int>(p)] = c.TopicFor(kSampleProcessor, p);
    if (c.For(p).topic.empty()) continue;
    BATCHBUS_RETURN_IF_ERROR_(CheckTopicTemplate(
        absl::StrCat(ToSv(PriorityName(p)), ".topic"), c.For(p).topic,
        topics[static_cast<int>(p)], kBothPlaceholders));
  }
  for (int a = 0; a < kNumPriorities; ++a) {
    for (int b = a + 1; b < kNumPriorities; ++b) {
      BATCHBUS_RETURN_IF_ERROR_(MustHold(
          topics[a] != topics[b],
          absl::StrCat("config keys '", ToSv(PriorityName(kAllPriorities[a])),
                       ".topic' and '",
                       ToSv(PriorityName(kAllPriorities[b])),
                       ".topic' give the same topic ('", topics[a],
                       "' for processor 'processor'); each priority needs "
                       "its own topic")));
    }
  }
  return absl::OkStatus();
}

// The keys only a Submitter reads.
absl::Status CheckSubmitterKeys(const Config& c) {
  BATCHBUS_RETURN_IF_ERROR_(
      AtLeast("max_inflight_jobs", c.max_inflight_jobs, 1));
  BATCHBUS_RETURN_IF_ERROR_(
      AtLeast("max_inflight_bytes", c.max_inflight_bytes, c.max_message_bytes,
              "max_message_bytes: room for at least one full message"));
  BATCHBUS_RETURN_IF_ERROR_(NotNegative("submit_wait_ms", c.submit_wait));
  BATCHBUS_RETURN_IF_ERROR_(
      NotNegative("status_retention_ms", c.status_retention));
  BATCHBUS_RETURN_IF_ERROR_(MustHold(
      c.reply_partition >= -1,
      absl::StrCat("config key 'reply_partition' is ", c.reply_partition,
                   "; use -1 (pick by instance id) or a partition number "
                   ">= 0")));
  if (c.reply_topic.empty()) return absl::OkStatus();
  return CheckTopicTemplate("reply_topic", c.reply_topic, c.ReplyTopic(),
                            "{namespace} only");
}

// The keys only a Processor reads.
absl::Status CheckProcessorKeys(const Config& c) {
  BATCHBUS_RETURN_IF_ERROR_(AtLeast("prefetch_jobs", c.prefetch_jobs, 1));
  BATCHBUS_RETURN_IF_ERROR_(
      AtLeast("fetch_queue_kbytes", c.fetch_queue_kbytes, 1));
  BATCHBUS_RETURN_IF_ERROR_(NotNegative("result_linger_ms", c.result_linger));
  BATCHBUS_RETURN_IF_ERROR_(
      NotNegative("realtime_pacing_target_ms", c.realtime_pacing_target));
  BATCHBUS_RETURN_IF_ERROR_(NotNegative("deadline_skew_ms", c.deadline_skew));
  BATCHBUS_RETURN_IF_ERROR_(
      AtLeast("result_max_bytes", c.result_max_bytes, 256));
  BATCHBUS_RETURN_IF_ERROR_(FitsInMessage("result_max_bytes",
                                          c.result_max_bytes,
                                          c.max_message_bytes,
                                          "a result message"));
  BATCHBUS_RETURN_IF_ERROR_(MustHold(
      c.processor_instance.size() <= 200 &&
          HasOnlyTopicChars(c.processor_instance),
      absl::StrCat("config key 'processor_instance': '",
                   ToSv(c.processor_instance),
                   "' may only contain letters, digits, '.', '_' and '-', at "
                   "most 200 of them")));
  if (c.dead_letter_topic.empty()) return absl::OkStatus();
  return CheckTopicTemplate("dead_letter_topic", c.dead_letter_topic,
                            c.DeadLetterTopicFor(kSampleProcessor),
                            kBothPlaceholders);
}

// The keys for topic creation and shutdown.
absl::Status CheckAdminKeys(const Config& c) {
  BATCHBUS_RETURN_IF_ERROR_(
      MustHold(c.topic_partitions >= 1,
               absl::StrCat("config key 'topic_partitions' is ",
                            c.topic_partitions, "; it must be at least 1")));
  BATCHBUS_RETURN_IF_ERROR_(
      MustHold(c.replication_factor >= 1,
               absl::StrCat("config key 'replication_factor' is ",
                            c.replication_factor, "; it must be at least 1")));
  BATCHBUS_RETURN_IF_ERROR_(MustHold(
      c.min_insync_replicas <= c.replication_factor,
      absl::StrCat("config key 'min_insync_replicas' is ", c.min_insync_replicas,
                   ", more than replication_factor ", c.replication_factor,
                   ": no write could ever succeed")));
  BATCHBUS_RETURN_IF_ERROR_(MustHold(
      c.metrics_port >= 0 && c.metrics_port <= 65535,
      absl::StrCat("config key 'metrics_port' is ", c.metrics_port,
                   "; use 0 (no listener) or a port from 1 to 65535")));
  return NotNegative("close_timeout_ms", c.close_timeout);
}

}  // namespace

// The ranges the retry keys accept, for values set in code.
static absl::Status CheckRetry(Sv prefix, const RetryOverrides& r) {
  if (r.max_attempts && (*r.max_attempts < 1 || *r.max_attempts > 1'000'000)) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "max_attempts is ", *r.max_attempts, "; it must be 1 to 1000000"));
  }
  if (r.multiplier && !(*r.multiplier >= 1.0 && *r.multiplier <= 1000.0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, "multiplier is ", *r.multiplier, "; it must be 1 to 1000"));
  }
  for (const auto& [name, d] : {std::pair{"initial_delay_ms", r.initial_delay},
                                std::pair{"max_delay_ms", r.max_delay}}) {
    if (d && *d < absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat(
          prefix, name, " is ", absl::FormatDuration(*d), "; it must be >= 0"));
    }
  }
  return absl::OkStatus();
}

absl::Status Config::Validate() const {
  BATCHBUS_RETURN_IF_ERROR_(CheckBrokers(brokers));
  BATCHBUS_RETURN_IF_ERROR_(CheckNamespace(ns));
  BATCHBUS_RETURN_IF_ERROR_(
      AtLeast("max_message_bytes", max_message_bytes, 1024));
  for (Priority p : kAllPriorities) {
    BATCHBUS_RETURN_IF_ERROR_(CheckPriority(p, For(p), max_message_bytes));
  }
  BATCHBUS_RETURN_IF_ERROR_(CheckPriorityTopics(*this));
  BATCHBUS_RETURN_IF_ERROR_(CheckSubmitterKeys(*this));
  BATCHBUS_RETURN_IF_ERROR_(CheckProcessorKeys(*this));
  BATCHBUS_RETURN_IF_ERROR_(CheckRetry("retry.", retry));
  for (const auto& [group, rate] : group_max_rate) {
    if (!(rate > 0) || rate > 1e9) {
      return absl::InvalidArgumentError(absl::StrCat(
          "group.", Sv(group.data(), group.size()), ".max_rate is ", rate,
          "; it must be above 0 and at most 1e9 jobs/s"));
    }
  }
  for (const auto& [group, overrides] : group_retry) {
    BATCHBUS_RETURN_IF_ERROR_(
        CheckRetry(absl::StrCat("group.", Sv(group.data(), group.size()), "."),
                   overrides));
  }
  return CheckAdminKeys(*this);
}

#undef BATCHBUS_RETURN_IF_ERROR_

RetryPolicy Config::RetryFor(std::string_view group) const {
  RetryPolicy p;
  auto apply = [&p](const RetryOverrides& o) {
    p.max_attempts = o.max_attempts.value_or(p.max_attempts);
    p.initial_delay = o.initial_delay.value_or(p.initial_delay);
    p.multiplier = o.multiplier.value_or(p.multiplier);
    p.max_delay = o.max_delay.value_or(p.max_delay);
  };
  apply(retry);
  if (auto it = group_retry.find(group); it != group_retry.end()) apply(it->second);
  return p;
}

std::string Config::TopicFor(std::string_view processor_in, Priority p) const {
  const Sv processor = ToSv(processor_in);
  const std::string& tmpl = For(p).topic;
  if (tmpl.empty()) {
    return absl::StrCat(ns, ".", processor, ".", ToSv(PriorityName(p)));
  }
  return Substitute(tmpl, ns, processor);
}

std::string Config::ReplyTopic() const {
  if (reply_topic.empty()) return absl::StrCat(ns, ".replies");
  return absl::StrReplaceAll(reply_topic, {{kPlaceholderNamespace, ns}});
}

std::string Config::GroupIdFor(std::string_view processor_in) const {
  const Sv processor = ToSv(processor_in);
  if (group_id.empty()) return absl::StrCat(ns, ".", processor);
  return Substitute(group_id, ns, processor);
}

std::string Config::DeadLetterTopicFor(std::string_view processor_in) const {
  const Sv processor = ToSv(processor_in);
  if (dead_letter_topic.empty()) {
    return absl::StrCat(ns, ".", processor, ".dead");
  }
  return Substitute(dead_letter_topic, ns, processor);
}

}  // namespace batchbus
