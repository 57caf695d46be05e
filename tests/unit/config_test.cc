#include "batchbus/config.h"

#include <stdlib.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"

extern char** environ;

namespace batchbus {
namespace {

// Clears every BATCHBUS_* variable for the test and restores them after, so
// the tests neither see nor leak environment settings.
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      const std::string var(*e);
      const size_t eq = var.find('=');
      if (eq == std::string::npos) continue;
      if (var.compare(0, 9, "BATCHBUS_") == 0) {
        saved_.emplace_back(var.substr(0, eq), var.substr(eq + 1));
      }
    }
    for (const auto& [name, value] : saved_) unsetenv(name.c_str());
  }

  void TearDown() override {
    for (const std::string& name : set_) unsetenv(name.c_str());
    for (const auto& [name, value] : saved_) {
      setenv(name.c_str(), value.c_str(), 1);
    }
    for (const std::string& path : files_) std::remove(path.c_str());
  }

  void SetEnv(const std::string& name, const std::string& value) {
    setenv(name.c_str(), value.c_str(), 1);
    set_.push_back(name);
  }

  // Writes `text` to a fresh file in the test temp dir; returns its path.
  std::string WriteFile(const std::string& text) {
    const std::string path = absl::StrCat(
        ::testing::TempDir(), "batchbus_config_test_",
        ::testing::UnitTest::GetInstance()->current_test_info()->name(), "_",
        files_.size(), ".conf");
    std::ofstream out(path, std::ios::trunc);
    out << text;
    out.close();
    files_.push_back(path);
    return path;
  }

  static void ExpectInvalid(const absl::Status& s, const std::string& needle) {
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), needle))
        << "expected \"" << needle << "\" in: " << s;
  }

 private:
  std::vector<std::pair<std::string, std::string>> saved_;
  std::vector<std::string> set_;
  std::vector<std::string> files_;
};

TEST_F(ConfigTest, DefaultsMatchHeaderAndValidate) {
  const Config c;
  EXPECT_EQ(c.brokers, "mock://");
  EXPECT_EQ(c.ns, "batchbus");
  EXPECT_EQ(c.client_id, "batchbus");

  const PriorityConfig& rt = c.For(Priority::kRealtime);
  EXPECT_EQ(rt.max_jobs, 1u);
  EXPECT_EQ(rt.max_bytes, c.max_message_bytes);
  EXPECT_EQ(rt.max_linger, absl::ZeroDuration());
  EXPECT_EQ(rt.batch_timeout, absl::Seconds(10));

  const PriorityConfig& normal = c.For(Priority::kNormal);
  EXPECT_EQ(normal.max_jobs, 500u);
  EXPECT_EQ(normal.max_bytes, 512u * 1024);
  EXPECT_EQ(normal.max_linger, absl::Milliseconds(5));
  EXPECT_EQ(normal.batch_timeout, absl::Seconds(30));

  const PriorityConfig& slow = c.For(Priority::kSlow);
  EXPECT_EQ(slow.max_jobs, 5000u);
  EXPECT_EQ(slow.max_bytes, 900000u);
  EXPECT_EQ(slow.max_linger, absl::Milliseconds(50));
  EXPECT_EQ(slow.batch_timeout, absl::Seconds(300));

  for (Priority p : kAllPriorities) EXPECT_TRUE(c.For(p).topic.empty());
  EXPECT_TRUE(c.kafka.empty());
  EXPECT_TRUE(c.Validate().ok()) << c.Validate();
}

TEST_F(ConfigTest, SetEveryKey) {
  Config c;
  const std::pair<const char*, const char*> settings[] = {
      {"brokers", "kafka://a:1,b:2"},
      {"namespace", "ns1"},
      {"client_id", "me"},
      {"normal.max_jobs", "200"},
      {"normal.max_bytes", "300000"},
      {"normal.max_linger_ms", "7"},
      {"normal.batch_timeout_ms", "60000"},
      {"normal.topic", "{namespace}-{processor}-n"},
      {"slow.max_jobs", "9"},
      {"realtime.batch_timeout_ms", "1500"},
      {"max_inflight_jobs", "10"},
      {"max_inflight_bytes", "2m"},
      {"backpressure", "fail"},
      {"submit_wait_ms", "250"},
      {"max_message_bytes", "1M"},
      {"reply_topic", "{namespace}.answers"},
      {"reply_partition", "3"},
      {"group_id", "g-{processor}"},
      {"prefetch_jobs", "12"},
      {"fetch_queue_kbytes", "64"},
      {"result_linger_ms", "0"},
      {"result_max_bytes", "64k"},
      {"realtime_pacing", "false"},
      {"realtime_pacing_target_ms", "5"},
      {"dead_letter_topic", "{namespace}.dlq"},
      {"dead_letter_failed_jobs", "yes"},
      {"status_retention_ms", "60000"},
      {"create_topics", "no"},
      {"topic_partitions", "8"},
      {"replication_factor", "3"},
      {"close_timeout_ms", "2000"},
      {"kafka.security.protocol", "ssl"},
  };
  for (const auto& [key, value] : settings) {
    ASSERT_TRUE(c.Set(key, value).ok()) << key << ": " << c.Set(key, value);
  }
  EXPECT_EQ(c.brokers, "kafka://a:1,b:2");
  EXPECT_EQ(c.ns, "ns1");
  EXPECT_TRUE(c.dead_letter_failed_jobs);
  EXPECT_EQ(c.status_retention, absl::Minutes(1));
  EXPECT_EQ(c.client_id, "me");
  EXPECT_EQ(c.For(Priority::kNormal).max_jobs, 200u);
  EXPECT_EQ(c.For(Priority::kNormal).max_bytes, 300000u);
  EXPECT_EQ(c.For(Priority::kNormal).max_linger, absl::Milliseconds(7));
  EXPECT_EQ(c.For(Priority::kNormal).batch_timeout, absl::Seconds(60));
  EXPECT_EQ(c.For(Priority::kSlow).max_jobs, 9u);
  EXPECT_EQ(c.For(Priority::kRealtime).batch_timeout,
            absl::Milliseconds(1500));
  EXPECT_EQ(c.max_inflight_jobs, 10u);
  EXPECT_EQ(c.max_inflight_bytes, 2u << 20);
  EXPECT_EQ(c.backpressure, BackpressurePolicy::kFail);
  EXPECT_EQ(c.submit_wait, absl::Milliseconds(250));
  EXPECT_EQ(c.max_message_bytes, 1u << 20);
  EXPECT_EQ(c.reply_partition, 3);
  EXPECT_EQ(c.prefetch_jobs, 12u);
  EXPECT_EQ(c.fetch_queue_kbytes, 64u);
  EXPECT_FALSE(c.realtime_pacing);
  EXPECT_EQ(c.realtime_pacing_target, absl::Milliseconds(5));
  EXPECT_EQ(c.result_linger, absl::ZeroDuration());
  EXPECT_EQ(c.result_max_bytes, 64u * 1024);
  EXPECT_FALSE(c.create_topics);
  EXPECT_EQ(c.topic_partitions, 8);
  EXPECT_EQ(c.replication_factor, 3);
  EXPECT_EQ(c.close_timeout, absl::Seconds(2));
  EXPECT_EQ(c.kafka.at("security.protocol"), "ssl");

  EXPECT_EQ(c.TopicFor("pay", Priority::kNormal), "ns1-pay-n");
  EXPECT_EQ(c.ReplyTopic(), "ns1.answers");
  EXPECT_EQ(c.GroupIdFor("pay"), "g-pay");
  EXPECT_EQ(c.DeadLetterTopicFor("pay"), "ns1.dlq");
  EXPECT_TRUE(c.Validate().ok()) << c.Validate();
}

TEST_F(ConfigTest, SetTrimsAndParsesEnums) {
  Config c;
  ASSERT_TRUE(c.Set(" backpressure ", "  WAIT\t").ok());
  EXPECT_EQ(c.backpressure, BackpressurePolicy::kWait);
  for (const char* yes : {"true", "1", "yes", "TRUE"}) {
    c.create_topics = false;
    ASSERT_TRUE(c.Set("create_topics", yes).ok()) << yes;
    EXPECT_TRUE(c.create_topics) << yes;
  }
  for (const char* no : {"false", "0", "no"}) {
    c.create_topics = true;
    ASSERT_TRUE(c.Set("create_topics", no).ok()) << no;
    EXPECT_FALSE(c.create_topics) << no;
  }
  ExpectInvalid(c.Set("create_topics", "maybe"), "'create_topics'");
  ExpectInvalid(c.Set("backpressure", "drop"), "'backpressure'");
  ASSERT_TRUE(c.Set("reply_partition", "-1").ok());
  EXPECT_EQ(c.reply_partition, -1);
}

TEST_F(ConfigTest, DurationsAndSizesParse) {
  Config c;
  ASSERT_TRUE(c.Set("slow.max_linger_ms", "0").ok());
  EXPECT_EQ(c.For(Priority::kSlow).max_linger, absl::ZeroDuration());
  ASSERT_TRUE(c.Set("slow.batch_timeout_ms", "86400000").ok());
  EXPECT_EQ(c.For(Priority::kSlow).batch_timeout, absl::Hours(24));
  ASSERT_TRUE(c.Set("close_timeout_ms", "1").ok());
  EXPECT_EQ(c.close_timeout, absl::Milliseconds(1));

  ASSERT_TRUE(c.Set("normal.max_bytes", "100k").ok());
  EXPECT_EQ(c.For(Priority::kNormal).max_bytes, 100u * 1024);
  ASSERT_TRUE(c.Set("normal.max_bytes", "1K").ok());
  EXPECT_EQ(c.For(Priority::kNormal).max_bytes, 1024u);
  ASSERT_TRUE(c.Set("max_inflight_bytes", "1g").ok());
  EXPECT_EQ(c.max_inflight_bytes, size_t{1} << 30);

  ExpectInvalid(c.Set("normal.max_linger_ms", "5ms"),
                "config key 'normal.max_linger_ms': '5ms'");
  ExpectInvalid(c.Set("normal.max_linger_ms", "-5"), "'-5'");
  ExpectInvalid(c.Set("normal.max_linger_ms", "1.5"), "'1.5'");
  ExpectInvalid(c.Set("normal.max_bytes", "12kb"), "'normal.max_bytes'");
  ExpectInvalid(c.Set("normal.max_bytes", "k"), "'normal.max_bytes'");
  ExpectInvalid(c.Set("max_message_bytes", "99999999999999999999999"),
                "too large");
  ExpectInvalid(c.Set("max_inflight_bytes", "99999999999999g"), "too large");
  ExpectInvalid(c.Set("topic_partitions", "3000000000"), "too large");
  ExpectInvalid(c.Set("reply_partition", "-3000000000"), "out of range");
}

TEST_F(ConfigTest, BadValueNamesKeyAndValue) {
  Config c;
  const absl::Status s = c.Set("normal.max_jobs", "abc");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "config key 'normal.max_jobs': 'abc' is not a non-negative "
            "integer");
  ExpectInvalid(c.Set("normal.max_jobs", ""), "'normal.max_jobs': ''");
  ExpectInvalid(c.Set("normal.max_jobs", "-1"), "'normal.max_jobs': '-1'");
  ExpectInvalid(c.Set("normal.max_jobs", "+1"), "'normal.max_jobs': '+1'");
  ExpectInvalid(c.Set("prefetch_jobs", "1 000"), "'prefetch_jobs'");
  // A failed Set leaves the value alone.
  EXPECT_EQ(c.For(Priority::kNormal).max_jobs, 500u);
}

TEST_F(ConfigTest, UnknownKeyRejected) {
  Config c;
  ExpectInvalid(c.Set("no_such_key", "1"), "unknown config key 'no_such_key'");
  ExpectInvalid(c.Set("fast.max_jobs", "1"), "'fast.max_jobs'");
  ExpectInvalid(c.Set("normal.max_job", "1"), "'normal.max_job'");
  ExpectInvalid(c.Set("Normal.Max_Jobs", "1"), "'Normal.Max_Jobs'");
  ExpectInvalid(c.Set("ns", "x"), "'ns'");  // The key is `namespace`.
  ExpectInvalid(c.Set("kafka.", "x"), "kafka.");
}

TEST_F(ConfigTest, RealtimeMaxBytesFollowsMaxMessageBytes) {
  Config c;
  ASSERT_TRUE(c.Set("max_message_bytes", "2000000").ok());
  EXPECT_EQ(c.For(Priority::kRealtime).max_bytes, 2000000u);
  ASSERT_TRUE(c.Set("realtime.max_bytes", "4096").ok());
  ASSERT_TRUE(c.Set("max_message_bytes", "3000000").ok());
  EXPECT_EQ(c.For(Priority::kRealtime).max_bytes, 4096u);
  EXPECT_TRUE(c.Validate().ok()) << c.Validate();
}

TEST_F(ConfigTest, FileWithCommentsAndSpaces) {
  const std::string path = WriteFile(
      "# batchbus settings\n"
      "\n"
      "brokers = kafka://k1:9092,k2:9092   # two brokers\n"
      "namespace=shop\n"
      "   normal.max_jobs   =   200   \n"
      "\t# indented comment\n"
      "slow.max_linger_ms = 100\r\n"
      "kafka.sasl.password = pa#ss   # '#' inside a value stays\n"
      "kafka.security.protocol=sasl_ssl\n"
      "reply_topic =\n"
      "create_topics = false");  // No final newline.
  Config c;
  ASSERT_TRUE(c.MergeFile(path).ok()) << c.MergeFile(path);
  EXPECT_EQ(c.brokers, "kafka://k1:9092,k2:9092");
  EXPECT_EQ(c.ns, "shop");
  EXPECT_EQ(c.For(Priority::kNormal).max_jobs, 200u);
  EXPECT_EQ(c.For(Priority::kSlow).max_linger, absl::Milliseconds(100));
  EXPECT_EQ(c.kafka.at("sasl.password"), "pa#ss");
  EXPECT_EQ(c.kafka.at("security.protocol"), "sasl_ssl");
  EXPECT_EQ(c.reply_topic, "");
  EXPECT_FALSE(c.create_topics);
  EXPECT_TRUE(c.Validate().ok()) << c.Validate();
}

TEST_F(ConfigTest, FileErrorsNamePathAndLine) {
  Config c;
  const std::string bad_value =
      WriteFile("namespace = a\nnormal.max_jobs = abc\n");
  absl::Status s = c.MergeFile(bad_value);
  ExpectInvalid(s, absl::StrCat(bad_value,
                                ":2: config key 'normal.max_jobs': 'abc' is "
                                "not a non-negative integer"));

  const std::string unknown = WriteFile("\n\n\nbogus = 1\n");
  ExpectInvalid(c.MergeFile(unknown), absl::StrCat(unknown, ":4:"));
  ExpectInvalid(c.MergeFile(unknown), "'bogus'");

  const std::string no_equals = WriteFile("brokers mock://\n");
  ExpectInvalid(c.MergeFile(no_equals), absl::StrCat(no_equals, ":1:"));

  const std::string no_key = WriteFile(" = 5\n");
  ExpectInvalid(c.MergeFile(no_key), absl::StrCat(no_key, ":1:"));
}

TEST_F(ConfigTest, MissingFileIsNotFound) {
  Config c;
  const std::string path =
      absl::StrCat(::testing::TempDir(), "batchbus_no_such_file.conf");
  const absl::Status s = c.MergeFile(path);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), path)) << s;

  EXPECT_EQ(Config::Load(path).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ConfigTest, EnvironmentOverridesFile) {
  const std::string path = WriteFile(
      "normal.max_jobs = 200\n"
      "namespace = from_file\n"
      "client_id = file-client\n");
  SetEnv("BATCHBUS_NORMAL_MAX_JOBS", " 300 ");
  SetEnv("BATCHBUS_NAMESPACE", "from_env");
  SetEnv("BATCHBUS_BROKERS", "mock://3");
  SetEnv("BATCHBUS_SLOW_BATCH_TIMEOUT_MS", "1000");
  SetEnv("BATCHBUS_CREATE_TOPICS", "0");

  const absl::StatusOr<Config> c = Config::Load(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->For(Priority::kNormal).max_jobs, 300u);
  EXPECT_EQ(c->ns, "from_env");
  EXPECT_EQ(c->client_id, "file-client");
  EXPECT_EQ(c->brokers, "mock://3");
  EXPECT_EQ(c->For(Priority::kSlow).batch_timeout, absl::Seconds(1));
  EXPECT_FALSE(c->create_topics);
}

TEST_F(ConfigTest, BadEnvironmentValueNamesVariableAndKey) {
  SetEnv("BATCHBUS_PREFETCH_JOBS", "lots");
  Config c;
  const absl::Status s = c.MergeEnvironment();
  ExpectInvalid(s, "BATCHBUS_PREFETCH_JOBS");
  ExpectInvalid(s, "config key 'prefetch_jobs': 'lots'");
}

TEST_F(ConfigTest, KafkaPassthroughFromFileAndEnvironment) {
  const std::string path = WriteFile(
      "kafka.security.protocol = plaintext\n"
      "kafka.ssl.ca.location = /etc/ca.pem\n"
      "kafka.some_under_scored.prop = x\n");
  SetEnv("BATCHBUS_KAFKA_SECURITY_PROTOCOL", "ssl");
  SetEnv("BATCHBUS_KAFKA_SASL_MECHANISMS", "PLAIN");
  SetEnv("BATCHBUS_KAFKA_PRODUCER_COMPRESSION_CODEC", "lz4");
  // Used by the broker scripts; must not become librdkafka properties.
  SetEnv("BATCHBUS_KAFKA_PORT", "9092");
  SetEnv("BATCHBUS_KAFKA_HOME", "/opt/kafka");
  SetEnv("BATCHBUS_KAFKA_STATE", "/tmp/state");
  SetEnv("BATCHBUS_KAFKA_FRESH", "1");
  SetEnv("BATCHBUS_KAFKA_AUTO_CREATE", "1");
  SetEnv("BATCHBUS_KAFKA_CONTROLLER_PORT", "9093");
  SetEnv("BATCHBUS_KAFKA_VERSION", "4.1.1");
  SetEnv("BATCHBUS_KAFKA_JAVA_OPTS", "-Xmx1g");
  SetEnv("BATCHBUS_KAFKA_HEAP", "2g");
  SetEnv("BATCHBUS_KAFKA_LOG_LEVEL", "INFO");
  SetEnv("BATCHBUS_KAFKA_PROBE", "kcat");
  SetEnv("BATCHBUS_KAFKA_PROPERTIES", "a=b");
  SetEnv("BATCHBUS_KAFKA_START_TIMEOUT", "90");
  SetEnv("BATCHBUS_KAFKA_STOP_TIMEOUT", "30");
  SetEnv("BATCHBUS_KAFKA_NODES", "3");
  SetEnv("BATCHBUS_KAFKA_SASL", "1");
  SetEnv("BATCHBUS_KAFKA_SASL_PORT", "9102");
  SetEnv("BATCHBUS_KAFKA_SASL_USERS", "admin");
  SetEnv("BATCHBUS_KAFKA_SASL_ALLOW_EVERYONE", "false");
  // Not config keys either.
  SetEnv("BATCHBUS_LOG_LEVEL", "debug");

  const absl::StatusOr<Config> c = Config::Load(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->kafka.at("security.protocol"), "ssl");  // Env wins.
  EXPECT_EQ(c->kafka.at("ssl.ca.location"), "/etc/ca.pem");
  EXPECT_EQ(c->kafka.at("sasl.mechanisms"), "PLAIN");
  EXPECT_EQ(c->kafka.at("some_under_scored.prop"), "x");
  // Scoped to producers (see kafka::MakeConf).
  EXPECT_EQ(c->kafka.at("producer.compression.codec"), "lz4");
  EXPECT_EQ(c->kafka.size(), 5u);
  for (const char* ignored :
       {"port", "home", "state", "fresh", "auto.create", "controller.port",
        "version", "java.opts", "heap", "log.level", "probe", "properties",
        "start.timeout", "stop.timeout"}) {
    EXPECT_EQ(c->kafka.count(ignored), 0u) << ignored;
  }
}

TEST_F(ConfigTest, LoadUsesBatchbusConfig) {
  const std::string path = WriteFile("namespace = via_env_path\n");
  SetEnv("BATCHBUS_CONFIG", path);
  absl::StatusOr<Config> c = Config::Load();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->ns, "via_env_path");

  // An explicit path wins over $BATCHBUS_CONFIG.
  const std::string other = WriteFile("namespace = explicit\n");
  c = Config::Load(other);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->ns, "explicit");

  const std::string missing =
      absl::StrCat(::testing::TempDir(), "batchbus_missing_env.conf");
  SetEnv("BATCHBUS_CONFIG", missing);
  c = Config::Load();
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(absl::StrContains(c.status().message(), missing)) << c.status();
  EXPECT_TRUE(absl::StrContains(c.status().message(), "BATCHBUS_CONFIG"))
      << c.status();
}

TEST_F(ConfigTest, LoadWithoutFileUsesDefaults) {
  const absl::StatusOr<Config> c = Config::Load();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->ns, "batchbus");
}

TEST_F(ConfigTest, LoadValidates) {
  const std::string path = WriteFile("realtime.max_jobs = 5\n");
  ExpectInvalid(Config::Load(path).status(), "realtime.max_jobs");
}

TEST_F(ConfigTest, ValidateBrokers) {
  Config c;
  for (const char* ok : {"mock://", "mock://1", "mock://9", "kafka://h:9092",
                         "kafka://a:1,b.example.com:65535",
                         "kafka://[::1]:9092", "kafka://10.0.0.1:9092"}) {
    c.brokers = ok;
    EXPECT_TRUE(c.Validate().ok()) << ok << ": " << c.Validate();
  }
  for (const char* bad :
       {"", "mock", "mock://0", "mock://10", "mock://x", "kafka://",
        "kafka://host", "kafka://host:", "kafka://host:0", "kafka://host:99999",
        "kafka://:9092", "kafka://a:1,", "localhost:9092", "http://h:1"}) {
    c.brokers = bad;
    ExpectInvalid(c.Validate(), "'brokers'");
  }
}

TEST_F(ConfigTest, ValidateNamespace) {
  Config c;
  c.ns = "";
  ExpectInvalid(c.Validate(), "'namespace'");
  c.ns = "has space";
  ExpectInvalid(c.Validate(), "'namespace'");
  c.ns = "a/b";
  ExpectInvalid(c.Validate(), "'namespace'");
  c.ns = "Prod_env-1.x";
  EXPECT_TRUE(c.Validate().ok()) << c.Validate();
}

TEST_F(ConfigTest, ValidateCatchesEachRule) {
  struct Case {
    const char* key;
    const char* value;
    const char* expected;
  };
  const Case cases[] = {
      {"realtime.max_jobs", "2", "batch of one"},
      {"normal.max_jobs", "0", "'normal.max_jobs'"},
      {"slow.max_bytes", "255", "'slow.max_bytes'"},
      {"normal.max_bytes", "2000000", "max_message_bytes"},
      {"normal.batch_timeout_ms", "0", "'normal.batch_timeout_ms'"},
      {"slow.max_linger_ms", "400000", "'slow.batch_timeout_ms'"},
      {"max_message_bytes", "1023", "'max_message_bytes'"},
      {"max_inflight_jobs", "0", "'max_inflight_jobs'"},
      {"max_inflight_bytes", "999999", "'max_inflight_bytes'"},
      {"prefetch_jobs", "0", "'prefetch_jobs'"},
      {"fetch_queue_kbytes", "0", "'fetch_queue_kbytes'"},
      {"result_max_bytes", "2000000", "'result_max_bytes'"},
      {"topic_partitions", "0", "'topic_partitions'"},
      {"replication_factor", "0", "'replication_factor'"},
      {"min_insync_replicas", "2", "more than replication_factor 1"},
      {"reply_partition", "-2", "'reply_partition'"},
      {"normal.topic", "{namespace}/{processor}", "'normal.topic'"},
      {"slow.topic", "{namespace}.{processor}.{priority}", "'slow.topic'"},
      {"normal.topic", "{namespace}.{processor}.slow", "same topic"},
      {"reply_topic", "{namespace}.{processor}.replies", "'reply_topic'"},
      {"dead_letter_topic", "dead letters", "'dead_letter_topic'"},
      {"processor_instance", "pod 0", "'processor_instance'"},
  };
  for (const Case& tc : cases) {
    Config c;
    ASSERT_TRUE(c.Set(tc.key, tc.value).ok()) << tc.key;
    ExpectInvalid(c.Validate(), tc.expected);
  }
}

TEST_F(ConfigTest, ValidateRejectsNegativeDurationsSetInCode) {
  Config c;
  c.submit_wait = absl::Milliseconds(-1);
  ExpectInvalid(c.Validate(), "'submit_wait_ms'");
  c = Config();
  c.For(Priority::kNormal).batch_timeout = -absl::Seconds(1);
  ExpectInvalid(c.Validate(), "'normal.batch_timeout_ms'");
}

TEST_F(ConfigTest, RetryKeysSetTheDefaultsAndEachGroupOverridesThem) {
  Config c;
  ASSERT_TRUE(c.Set("retry.max_attempts", "5").ok());
  ASSERT_TRUE(c.Set("retry.initial_delay_ms", "200").ok());
  ASSERT_TRUE(c.Set("retry.multiplier", "1.5").ok());
  ASSERT_TRUE(c.Set("retry.max_delay_ms", "60000").ok());
  ASSERT_TRUE(c.Set("group.payment-submit.max_attempts", "10").ok());
  ASSERT_TRUE(c.Set("group.payment-submit.initial_delay_ms", "50").ok());
  EXPECT_TRUE(c.Validate().ok()) << c.Validate();

  const RetryPolicy other = c.RetryFor("echo");
  EXPECT_EQ(other.max_attempts, 5u);
  EXPECT_EQ(other.initial_delay, absl::Milliseconds(200));
  EXPECT_EQ(other.multiplier, 1.5);
  EXPECT_EQ(other.max_delay, absl::Minutes(1));
  const RetryPolicy payment = c.RetryFor("payment-submit");
  EXPECT_EQ(payment.max_attempts, 10u);
  EXPECT_EQ(payment.initial_delay, absl::Milliseconds(50));
  EXPECT_EQ(payment.multiplier, 1.5);  // From retry.*.
  EXPECT_EQ(payment.max_delay, absl::Minutes(1));

  const RetryPolicy defaults = Config().RetryFor("echo");
  EXPECT_EQ(defaults.max_attempts, RetryPolicy().max_attempts);
  EXPECT_EQ(defaults.initial_delay, RetryPolicy().initial_delay);
}

TEST_F(ConfigTest, RetryKeysRefuseBadValuesAndUnknownFields) {
  Config c;
  ExpectInvalid(c.Set("retry.max_attempts", "0"), "'retry.max_attempts'");
  ExpectInvalid(c.Set("retry.multiplier", "0.5"), "'retry.multiplier'");
  ExpectInvalid(c.Set("group.g.multiplier", "lots"), "'group.g.multiplier'");
  ExpectInvalid(c.Set("retry.max_delay_ms", "-1"), "'retry.max_delay_ms'");
  ExpectInvalid(c.Set("retry.attempts", "3"), "'retry.attempts'");
  ExpectInvalid(c.Set("group.g.bogus", "3"), "'group.g.bogus'");
  // Values set in code are held to the same ranges.
  c = Config();
  c.retry.max_attempts = 0;
  ExpectInvalid(c.Validate(), "retry.max_attempts");
  c = Config();
  c.group_retry["g"].multiplier = 0.1;
  ExpectInvalid(c.Validate(), "group.g.multiplier");
}

TEST_F(ConfigTest, GroupMaxRateIsJobsPerSecondAboveZero) {
  Config c;
  ASSERT_TRUE(c.Set("group.thumbnails.v2.max_rate", "12.5").ok());
  EXPECT_EQ(c.group_max_rate.at("thumbnails.v2"), 12.5);
  EXPECT_TRUE(c.Validate().ok()) << c.Validate();
  ExpectInvalid(c.Set("group.g.max_rate", "0"), "'group.g.max_rate'");
  ExpectInvalid(c.Set("group.g.max_rate", "fast"), "'group.g.max_rate'");
  EXPECT_EQ(c.group_max_rate.count("g"), 0u) << "a bad value changed the config";
  c.group_max_rate["h"] = -1;
  ExpectInvalid(c.Validate(), "group.h.max_rate");
}

TEST_F(ConfigTest, TopicsDefaultAndTemplates) {
  Config c;
  EXPECT_EQ(c.TopicFor("payments", Priority::kRealtime),
            "batchbus.payments.realtime");
  EXPECT_EQ(c.TopicFor("payments", Priority::kNormal),
            "batchbus.payments.normal");
  EXPECT_EQ(c.TopicFor("payments", Priority::kSlow), "batchbus.payments.slow");
  EXPECT_EQ(c.ReplyTopic(), "batchbus.replies");
  EXPECT_EQ(c.GroupIdFor("payments"), "batchbus.payments");
  EXPECT_EQ(c.DeadLetterTopicFor("payments"), "batchbus.payments.dead");

  c.ns = "prod";
  c.For(Priority::kSlow).topic = "{namespace}-bulk-{processor}";
  c.For(Priority::kNormal).topic = "shared.normal";  // No placeholders.
  c.reply_topic = "{namespace}.results";
  c.group_id = "{namespace}.workers.{processor}";
  c.dead_letter_topic = "{processor}.dlq";
  EXPECT_EQ(c.TopicFor("payments", Priority::kSlow), "prod-bulk-payments");
  EXPECT_EQ(c.TopicFor("payments", Priority::kNormal), "shared.normal");
  EXPECT_EQ(c.TopicFor("payments", Priority::kRealtime),
            "prod.payments.realtime");
  EXPECT_EQ(c.ReplyTopic(), "prod.results");
  EXPECT_EQ(c.GroupIdFor("payments"), "prod.workers.payments");
  EXPECT_EQ(c.DeadLetterTopicFor("payments"), "payments.dlq");
  EXPECT_TRUE(c.Validate().ok()) << c.Validate();
}

}  // namespace
}  // namespace batchbus
