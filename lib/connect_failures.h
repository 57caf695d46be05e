// Connect failures: a TLS handshake or a SASL login that a broker refused.
// librdkafka retries those forever and reports them only as log lines, so
// a Create against a cluster that refuses its certificate or its password
// would wait out its whole timeout and then say "timed out". The log
// callback notes each such line per client handle here; the calls that
// wait for the cluster at Create ask for it and fail at once, naming the
// cause.
//
// Threads: all functions are safe from any thread (librdkafka logs from
// its own threads).
#ifndef BATCHBUS_LIB_CONNECT_FAILURES_H_
#define BATCHBUS_LIB_CONNECT_FAILURES_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "batchbus/config.h"

namespace batchbus {

// True for a librdkafka log line that reports a refused TLS handshake or
// SASL login (facility "FAIL", in state SSL_HANDSHAKE or AUTH_*).
bool IsConnectFailure(std::string_view facility, std::string_view text);

// Remembers `text` as client `client`'s (rd_kafka_name) latest connect
// failure when IsConnectFailure says it is one.
void NoteConnectFailure(std::string_view client, std::string_view facility,
                        std::string_view text);

// The latest connect failure noted for `client`, if any; forgets it.
std::optional<std::string> TakeConnectFailure(std::string_view client);

// The status a Create returns for connect failure `text`: Unauthenticated,
// naming the failure and what to check. With a SCRAM mechanism configured
// and a librdkafka older than 2.6.1 (`rdkafka_version` as
// rd_kafka_version()), it adds that Kafka 4.x brokers refuse that
// librdkafka's SCRAM proofs whatever the password.
absl::Status ConnectFailureStatus(const Config& config, std::string_view text,
                                  int rdkafka_version);

}  // namespace batchbus

#endif  // BATCHBUS_LIB_CONNECT_FAILURES_H_
