// Secrets never leave the library: the values of secret properties are
// redacted wherever a property is named (errors), and scrubbed from every
// log line and error a Create returns, should a Kafka client repeat one.
//
// Threads: all functions are safe from any thread.
#ifndef BATCHBUS_LIB_SECRETS_H_
#define BATCHBUS_LIB_SECRETS_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "batchbus/config.h"

namespace batchbus {

inline constexpr std::string_view kRedacted = "[redacted]";

// `*password*`, `*secret*` (any case), `ssl.key.pem`, `ssl_key.pem`,
// `sasl.oauthbearer.config`, with or without a `kafka.`, `producer.` or
// `consumer.` scope.
bool IsSecretKey(std::string_view key);

// `value`, or kRedacted when `key` is secret.
std::string_view Shown(std::string_view key, std::string_view value);

// Remembers the secret values of `config.kafka` (process-wide), so that
// Scrub finds them in any text.
void RememberSecrets(const Config& config);

// `text` with every remembered secret value replaced by kRedacted.
std::string Scrub(std::string_view text);
absl::Status Scrub(const absl::Status& status);

}  // namespace batchbus

#endif  // BATCHBUS_LIB_SECRETS_H_
