// Secrets stay out of errors and log lines: secret properties are known by
// name, their values are redacted where a property is named, and scrubbed
// from any text once a config carrying them was seen.
#include "secrets.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "batchbus/config.h"
#include "batchbus/log.h"
#include "log.h"

namespace batchbus {
namespace {

TEST(SecretsTest, SecretPropertiesAreKnownByName) {
  for (const char* key :
       {"sasl.password", "kafka.sasl.password", "ssl.key.password",
        "kafka.producer.ssl.keystore.password", "sasl.oauthbearer.client.secret",
        "SASL.PASSWORD", "ssl.key.pem", "sasl.oauthbearer.config"}) {
    EXPECT_TRUE(IsSecretKey(key)) << key;
  }
  for (const char* key : {"sasl.username", "ssl.ca.location", "brokers",
                          "security.protocol"}) {
    EXPECT_FALSE(IsSecretKey(key)) << key;
  }
  EXPECT_EQ(Shown("sasl.password", "hunter22"), kRedacted);
  EXPECT_EQ(Shown("sasl.username", "alice"), "alice");
}

TEST(SecretsTest, RememberedValuesAreScrubbedFromLogLinesAndErrors) {
  Config config;
  config.kafka["sasl.password"] = "correct-horse-battery";
  config.kafka["sasl.username"] = "alice";
  RememberSecrets(config);
  EXPECT_EQ(Scrub("auth as alice with correct-horse-battery failed"),
            "auth as alice with [redacted] failed");
  const absl::Status s =
      Scrub(absl::UnavailableError("broker said correct-horse-battery?"));
  EXPECT_TRUE(absl::IsUnavailable(s));
  EXPECT_EQ(s.message(), "broker said [redacted]?");

  std::vector<std::string> lines;
  SetLogSink([&](const LogRecord& r) {
    std::string line = std::string(r.component) + ": " + std::string(r.message);
    for (size_t i = 0; i < r.num_fields; ++i) {
      line += " " + std::string(r.fields[i].key) + "=" +
              std::string(r.fields[i].value);
    }
    lines.push_back(line);
  });
  log::Emit(LogLevel::kError, "kafka", "login correct-horse-battery",
            {{"sasl.password", "anything"}, {"user", "alice"}});
  SetLogSink(nullptr);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "kafka: login [redacted] sasl.password=[redacted] user=alice");
}

TEST(SecretsTest, ConfigFileLineNamingASecretIsNotRepeatedInItsError) {
  const std::string path = ::testing::TempDir() + "/secret.conf";
  FILE* f = std::fopen(path.c_str(), "w");
  std::fputs("kafka.sasl.password hunter2-no-equals\n", f);
  std::fclose(f);
  Config config;
  const absl::Status s = config.MergeFile(path);
  ASSERT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_EQ(std::string(s.message()).find("hunter2"), std::string::npos) << s;
}

TEST(SecretsTest, LevelsParseAndFilter) {
  EXPECT_EQ(ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(ParseLogLevel("warn"), LogLevel::kWarning);
  EXPECT_FALSE(ParseLogLevel("loud").has_value());
  const LogLevel before = GetLogLevel();
  int seen = 0;
  SetLogSink([&](const LogRecord&) { ++seen; });
  SetLogLevel(LogLevel::kWarning);
  log::Info("test", "not shown");
  log::Warning("test", "shown");
  SetLogLevel(before);
  SetLogSink(nullptr);
  EXPECT_EQ(seen, 1);
  Config config;
  EXPECT_TRUE(config.Set("log_level", "info").ok());
  EXPECT_EQ(config.log_level, LogLevel::kInfo);
  EXPECT_TRUE(absl::IsInvalidArgument(config.Set("log_level", "loud")));
  EXPECT_TRUE(config.Set("metrics_port", "9464").ok());
  EXPECT_EQ(config.metrics_port, 9464);
  EXPECT_FALSE(config.Set("metrics_port", "70000").ok());
}

}  // namespace
}  // namespace batchbus
