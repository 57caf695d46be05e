#include "connect_failures.h"

#include <map>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "strcat.h"

namespace batchbus {
namespace {

// Oldest librdkafka whose SCRAM client-final-message Kafka 4.x accepts.
constexpr int kScramFixedVersion = 0x020601ff;
// Handles that failed and never asked are forgotten past this many.
constexpr size_t kMaxRemembered = 256;

struct Failures {
  std::mutex mu;
  std::map<std::string, std::string, std::less<>> by_client;
};

Failures& TheFailures() {
  static auto* failures = new Failures;
  return *failures;
}

bool UsesScram(const Config& config) {
  for (const auto& [key, value] : config.kafka) {
    if ((absl::EndsWith(key, "sasl.mechanism") ||
         absl::EndsWith(key, "sasl.mechanisms")) &&
        absl::StartsWithIgnoreCase(value, "SCRAM")) {
      return true;
    }
  }
  return false;
}

std::string VersionString(int v) {
  return StrCat((v >> 24) & 0xff, ".", (v >> 16) & 0xff, ".", (v >> 8) & 0xff);
}

}  // namespace

bool IsConnectFailure(std::string_view facility, std::string_view text) {
  return facility == "FAIL" &&
         (text.find("in state SSL_HANDSHAKE") != std::string_view::npos ||
          text.find("in state AUTH_") != std::string_view::npos);
}

void NoteConnectFailure(std::string_view client, std::string_view facility,
                        std::string_view text) {
  if (!IsConnectFailure(facility, text)) return;
  Failures& f = TheFailures();
  std::lock_guard<std::mutex> lock(f.mu);
  if (f.by_client.size() >= kMaxRemembered) f.by_client.clear();
  f.by_client[std::string(client)] = std::string(text);
}

std::optional<std::string> TakeConnectFailure(std::string_view client) {
  Failures& f = TheFailures();
  std::lock_guard<std::mutex> lock(f.mu);
  auto it = f.by_client.find(client);
  if (it == f.by_client.end()) return std::nullopt;
  std::string text = std::move(it->second);
  f.by_client.erase(it);
  return text;
}

absl::Status ConnectFailureStatus(const Config& config, std::string_view text,
                                  int rdkafka_version) {
  const bool tls = text.find("SSL_HANDSHAKE") != std::string_view::npos;
  std::string msg = StrCat(
      "the cluster at ", config.brokers, " refused the connection (",
      tls ? "TLS handshake" : "SASL login", "): ", text, ". ",
      tls ? "Check kafka.ssl.ca.location (the CA that signed the brokers' "
            "certificates) and that the broker address matches its certificate"
          : "Check kafka.sasl.username, kafka.sasl.password and "
            "kafka.sasl.mechanism");
  if (!tls && UsesScram(config) && rdkafka_version < kScramFixedVersion) {
    msg += StrCat(
        ". Note: with librdkafka ", VersionString(rdkafka_version),
        " (older than 2.6.1) Kafka 4.x brokers refuse every SCRAM login, "
        "whatever the password; use a newer librdkafka, or SASL PLAIN over "
        "TLS (kafka.security.protocol = SASL_SSL, kafka.sasl.mechanism = "
        "PLAIN)");
  }
  return absl::UnauthenticatedError(msg);
}

}  // namespace batchbus
