#include "secrets.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "absl/base/thread_annotations.h"
#include "mutex.h"
#include "strcat.h"

namespace batchbus {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return out;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.substr(s.size() - suffix.size()) == suffix;
}

struct Remembered {
  Mutex mu;
  std::set<std::string> values ABSL_GUARDED_BY(mu);
};

Remembered& TheSecrets() {
  static Remembered* r = new Remembered;
  return *r;
}

// Values shorter than this are not scrubbed from free text: they would
// match by chance (a password of "1" in every port number). They are still
// redacted wherever their property is named.
constexpr size_t kMinScrubbed = 4;

}  // namespace

bool IsSecretKey(std::string_view key) {
  const std::string k = Lower(key);
  return k.find("password") != std::string::npos ||
         k.find("secret") != std::string::npos ||
         EndsWith(k, "ssl.key.pem") || EndsWith(k, "ssl_key.pem") ||
         EndsWith(k, "sasl.oauthbearer.config");
}

std::string_view Shown(std::string_view key, std::string_view value) {
  return IsSecretKey(key) ? kRedacted : value;
}

void RememberSecrets(const Config& config) {
  Remembered& r = TheSecrets();
  MutexLock lock(&r.mu);
  for (const auto& [key, value] : config.kafka) {
    if (IsSecretKey(key) && value.size() >= kMinScrubbed) {
      r.values.insert(value);
    }
  }
}

std::string Scrub(std::string_view text) {
  std::string out(text);
  Remembered& r = TheSecrets();
  MutexLock lock(&r.mu);
  for (const std::string& secret : r.values) {
    for (size_t at = out.find(secret); at != std::string::npos;
         at = out.find(secret, at + kRedacted.size())) {
      out.replace(at, secret.size(), kRedacted);
    }
  }
  return out;
}

absl::Status Scrub(const absl::Status& status) {
  if (status.ok()) return status;
  return absl::Status(status.code(),
                      ToAbsl(Scrub(FromAbsl(status.message()))));
}

}  // namespace batchbus
