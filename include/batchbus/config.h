// batchbus/config.h — everything a Submitter or Processor can be tuned with.
//
// A Config is a plain struct with sensible defaults. It is normally built by
// Config::Load(), which layers, in order: the defaults, a `key = value` file
// (path given, or $BATCHBUS_CONFIG), then environment variables
// (BATCHBUS_<KEY> with dots as underscores, e.g. BATCHBUS_NORMAL_MAX_JOBS=200;
// raw librdkafka properties as BATCHBUS_KAFKA_<PROPERTY>, e.g.
// BATCHBUS_KAFKA_SECURITY_PROTOCOL=ssl). Config::Set() applies one key, the
// same way for all three sources. docs/configuration.md and the README list
// every key.
//
// Not thread-safe for mutation; a Config is copied into each Submitter or
// Processor at creation.
#ifndef BATCHBUS_CONFIG_H_
#define BATCHBUS_CONFIG_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "batchbus/job.h"
#include "batchbus/log.h"

namespace batchbus {

// How a job that a handler ended with Task::Retry is delivered again:
// attempt n+1 waits initial_delay * multiplier^(n-1), at most max_delay,
// with up to 20% of jitter either way; after max_attempts attempts the job
// ends PROCESSED_ERROR and is copied to the dead letter topic.
struct RetryPolicy {
  uint32_t max_attempts = 3;
  absl::Duration initial_delay = absl::Seconds(1);
  double multiplier = 2.0;
  absl::Duration max_delay = absl::Minutes(5);
};

// Settings of a RetryPolicy that override the defaults (or, for a group,
// the processor's): keys `retry.<field>` and `group.<name>.<field>`.
struct RetryOverrides {
  std::optional<uint32_t> max_attempts;
  std::optional<absl::Duration> initial_delay;
  std::optional<double> multiplier;
  std::optional<absl::Duration> max_delay;
};

// Per-priority batching and timeout settings.
struct PriorityConfig {
  // A batch is sent when it holds `max_jobs` jobs, when adding the next job
  // would exceed `max_bytes` of encoded message, or `max_linger` after its
  // first job, whichever comes first. Realtime always uses max_jobs = 1.
  size_t max_jobs = 500;
  size_t max_bytes = 512 * 1024;
  absl::Duration max_linger = absl::Milliseconds(5);
  // Jobs of a sent batch that have no result this long after the batch was
  // sealed end as BATCH_FAILED.
  absl::Duration batch_timeout = absl::Seconds(30);
  // Topic template; "{namespace}" and "{processor}" are substituted.
  // Default: "{namespace}.{processor}.<priority name>".
  std::string topic;
};

enum class BackpressurePolicy : uint8_t {
  kWait,  // Submit waits up to submit_wait for room, then ResourceExhausted.
  kFail,  // Submit returns ResourceExhausted at once when full.
};

struct Config {
  // "mock://" or "mock://N" starts librdkafka's embedded mock cluster in this
  // process (N brokers; for demos and tests only: it keeps about 5 MiB per
  // partition and drops older data). "kafka://host:port[,host:port...]" is a
  // real cluster.
  std::string brokers = "mock://";
  // Topic namespace: jobs for processor P at priority p go to
  // "{namespace}.{P}.{p}" unless a priority's `topic` says otherwise.
  std::string ns = "batchbus";
  // Shown in logs and as librdkafka's client.id.
  std::string client_id = "batchbus";

  // Index with static_cast<int>(Priority).
  std::array<PriorityConfig, kNumPriorities> priority;

  // --- Submitter ---
  // Jobs (and bytes of job data) submitted but without a terminal status yet.
  size_t max_inflight_jobs = 1'000'000;
  size_t max_inflight_bytes = 512ull * 1024 * 1024;
  BackpressurePolicy backpressure = BackpressurePolicy::kWait;
  absl::Duration submit_wait = absl::Seconds(5);
  // Submitter::GetJobState keeps each job's state until this long after it
  // ended; zero keeps none (and costs nothing). Above zero every job asks
  // for its started and progress events, one more result entry per job.
  absl::Duration status_retention = absl::ZeroDuration();
  // Kafka's message limit; one batch message never exceeds it, and a single
  // job that cannot fit is rejected at Submit. Keep it at or below the
  // broker's message.max.bytes.
  size_t max_message_bytes = 1'000'000;
  // Where this submitter's results come back. Each submitter instance reads
  // partition R of `reply_topic` (default "{namespace}.replies") for normal
  // and slow results and partition R+1 (mod partitions) for realtime ones,
  // and skips results addressed to other instances. reply_partition < 0
  // picks R = hash(instance id) % partitions; set it per instance (e.g.
  // from a pod ordinal) for exclusive partitions.
  std::string reply_topic;
  int reply_partition = -1;

  // --- Processor ---
  // Consumer group for the normal and slow topics; default
  // "{namespace}.{processor}". The realtime topic is read in
  // "<group_id>.realtime".
  std::string group_id;
  // A stable name for this processor instance, unique among the instances
  // of one processor (e.g. a StatefulSet pod's name). Set, it is the
  // group.instance.id of the processor's consumers (static membership): a
  // restarted instance takes its partitions back at once, without a
  // rebalance, and a stopped one keeps them until session.timeout.ms
  // passes. Empty (default): dynamic membership. See docs/operations.md.
  std::string processor_instance;
  // Decoded jobs kept ready per normal/slow priority (bounded prefetch).
  size_t prefetch_jobs = 1000;
  // librdkafka's per-partition fetch buffer (queued.max.messages.kbytes).
  size_t fetch_queue_kbytes = 4096;
  // Results of non-realtime jobs are sent when a batch is fully answered,
  // when a result message reaches result_max_bytes, or after result_linger.
  absl::Duration result_linger = absl::Milliseconds(2);
  size_t result_max_bytes = 512 * 1024;
  // Realtime pacing: while realtime jobs reach the processor more than
  // realtime_pacing_target later than the quickest recent one, normal and
  // slow jobs are handed out more slowly (down to a twentieth of their drain
  // rate), for as long as that makes realtime jobs faster; a cut that does
  // not help is dropped and retried later with a doubling backoff. It stops
  // one second after the last realtime job. See docs/design.md, "Realtime
  // pacing".
  bool realtime_pacing = true;
  absl::Duration realtime_pacing_target = absl::Milliseconds(2);
  // Deadlines (Job::deadline) are absolute times from the submitter's
  // clock. A processor hands a job out only while its own clock reads at
  // least deadline_skew before the deadline, so a job is never started past
  // its deadline when the two hosts' clocks differ by up to this much. Past
  // it the job ends EXPIRED, not processed.
  absl::Duration deadline_skew = absl::ZeroDuration();
  // Retries (Task::Retry): the processor's policy, and per-group ones.
  RetryOverrides retry;
  std::map<std::string, RetryOverrides, std::less<>> group_retry;
  // Jobs/s at most that a processor instance hands out of a group (keys
  // `group.<name>.max_rate`); a job over the rate waits in a delay tier for
  // its slot. Groups not named here have no limit.
  std::map<std::string, double, std::less<>> group_max_rate;
  // Malformed job messages go here; default "{namespace}.{processor}.dead".
  std::string dead_letter_topic;
  // Jobs that exhausted their retries are copied to the dead letter topic;
  // with this, so is every job that ends PROCESSED_ERROR (Task::Fail, a
  // validator's refusal, a handler's exception).
  bool dead_letter_failed_jobs = false;

  // --- Topics ---
  // Create missing topics at start (with these settings). When false, a
  // missing topic is an error at Create that names it.
  bool create_topics = true;
  int topic_partitions = 4;
  int replication_factor = 1;
  // Above 0: the topics' min.insync.replicas. With the producers' default
  // acks=all, a write then succeeds only once this many replicas have it
  // (2 with replication_factor 3 survives one broker's loss). 0: the
  // broker's default.
  int min_insync_replicas = 0;

  // --- Shutdown ---
  absl::Duration close_timeout = absl::Seconds(10);

  // --- Operations (docs/operations.md) ---
  // Above 0: serve GET /metrics (Prometheus text, batchbus/metrics.h) on
  // metrics_address:metrics_port while the Submitter or Processor lives.
  // Submitters and processors of one process that name the same port share
  // it. Create fails with Unavailable when the port cannot be bound.
  int metrics_port = 0;
  std::string metrics_address = "127.0.0.1";
  // Set: Create sets the process-wide log level (SetLogLevel) to it.
  std::optional<LogLevel> log_level;

  // Raw librdkafka properties, passed through unchanged (TLS, SASL, ...).
  std::map<std::string, std::string> kafka;

  PriorityConfig& For(Priority p) { return priority[static_cast<int>(p)]; }
  const PriorityConfig& For(Priority p) const {
    return priority[static_cast<int>(p)];
  }

  // Defaults: realtime batches of one with a 10 s timeout, normal 500 jobs /
  // 5 ms / 30 s, slow 5000 jobs / 50 ms / 300 s.
  Config();

  // Applies one setting by key (see docs/configuration.md). Unknown keys and
  // bad values are InvalidArgument naming the key.
  absl::Status Set(std::string_view key, std::string_view value);

  // Reads `key = value` lines ('#' starts a comment) and applies them.
  absl::Status MergeFile(const std::string& path);
  // Applies BATCHBUS_* environment variables.
  absl::Status MergeEnvironment();

  // Defaults, then `path` (or $BATCHBUS_CONFIG when `path` is empty), then
  // the environment, then Validate().
  static absl::StatusOr<Config> Load(const std::string& path = "");

  // Checks ranges and consistency; the message names the offending key.
  absl::Status Validate() const;

  // Topic for `processor`'s jobs at `p`, templates substituted.
  std::string TopicFor(std::string_view processor, Priority p) const;
  std::string ReplyTopic() const;
  std::string GroupIdFor(std::string_view processor) const;
  std::string DeadLetterTopicFor(std::string_view processor) const;
  // The defaults, overridden by `retry`, overridden by `group`'s entry.
  RetryPolicy RetryFor(std::string_view group) const;
};

}  // namespace batchbus

#endif  // BATCHBUS_CONFIG_H_
