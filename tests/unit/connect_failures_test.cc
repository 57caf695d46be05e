#include "connect_failures.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace batchbus {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Lines as librdkafka 2.0.2 logs them.
constexpr char kBadCa[] =
    "sasl_ssl://127.0.0.1:19402/bootstrap: SSL handshake failed: "
    "error:0A000086:SSL routines::certificate verify failed: broker "
    "certificate could not be verified (after 16ms in state SSL_HANDSHAKE)";
constexpr char kBadPassword[] =
    "sasl_ssl://127.0.0.1:19402/bootstrap: SASL authentication error: "
    "Authentication failed during authentication due to invalid credentials "
    "with SASL mechanism SCRAM-SHA-512 (after 315ms in state AUTH_REQ)";
constexpr char kRefusedConnection[] =
    "127.0.0.1:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection "
    "refused (after 0ms in state CONNECT)";

TEST(ConnectFailures, RefusedHandshakesAndLoginsAreFailuresOtherLinesAreNot) {
  EXPECT_TRUE(IsConnectFailure("FAIL", kBadCa));
  EXPECT_TRUE(IsConnectFailure("FAIL", kBadPassword));
  // An unreachable broker may come up: that wait stays bounded by its timeout.
  EXPECT_FALSE(IsConnectFailure("FAIL", kRefusedConnection));
  EXPECT_FALSE(IsConnectFailure("SASL", kBadPassword));
}

TEST(ConnectFailures, NotedPerClientAndTakenOnce) {
  NoteConnectFailure("rdkafka#producer-901", "FAIL", kBadPassword);
  NoteConnectFailure("rdkafka#producer-902", "FAIL", kRefusedConnection);
  EXPECT_FALSE(TakeConnectFailure("rdkafka#producer-902").has_value());
  auto taken = TakeConnectFailure("rdkafka#producer-901");
  ASSERT_TRUE(taken.has_value());
  EXPECT_EQ(*taken, kBadPassword);
  EXPECT_FALSE(TakeConnectFailure("rdkafka#producer-901").has_value());
}

TEST(ConnectFailures, StatusNamesTheCauseAndWhatToCheck) {
  Config config;
  config.brokers = "kafka://127.0.0.1:19402";
  absl::Status tls = ConnectFailureStatus(config, kBadCa, 0x020601ff);
  EXPECT_TRUE(absl::IsUnauthenticated(tls));
  EXPECT_THAT(tls.message(), HasSubstr("TLS handshake"));
  EXPECT_THAT(tls.message(), HasSubstr("certificate verify failed"));
  EXPECT_THAT(tls.message(), HasSubstr("ssl.ca.location"));

  absl::Status login = ConnectFailureStatus(config, kBadPassword, 0x020601ff);
  EXPECT_TRUE(absl::IsUnauthenticated(login));
  EXPECT_THAT(login.message(), HasSubstr("SASL login"));
  EXPECT_THAT(login.message(), HasSubstr("sasl.password"));
}

TEST(ConnectFailures, OldLibrdkafkaScramRefusalSaysWhy) {
  Config config;
  config.kafka["sasl.mechanism"] = "SCRAM-SHA-512";
  const absl::Status old_client =
      ConnectFailureStatus(config, kBadPassword, 0x020002ff);
  EXPECT_THAT(old_client.message(), HasSubstr("librdkafka 2.0.2"));
  EXPECT_THAT(old_client.message(), HasSubstr("older than 2.6.1"));
  // A fixed librdkafka, or another mechanism: no such note.
  EXPECT_THAT(ConnectFailureStatus(config, kBadPassword, 0x020601ff).message(),
              Not(HasSubstr("older than")));
  config.kafka["sasl.mechanism"] = "PLAIN";
  EXPECT_THAT(ConnectFailureStatus(config, kBadPassword, 0x020002ff).message(),
              Not(HasSubstr("older than")));
}

}  // namespace
}  // namespace batchbus
