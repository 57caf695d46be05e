#include "dead_letter.h"

#include "absl/strings/match.h"
#include "output.h"

namespace batchbus::cli {

const std::string* DeadLetter::Header(std::string_view name) const {
  for (auto it = headers.rbegin(); it != headers.rend(); ++it) {
    if (it->first == name) return &it->second;
  }
  return nullptr;
}

std::string DeadLetter::Error() const {
  const std::string* e = Header("batchbus.error");
  return e ? *e : "";
}

std::string DeadLetter::Origin() const {
  if (const std::string* o = Header("batchbus.origin")) return *o;
  if (kind == Kind::kMalformed) {
    const std::string e = Error();
    const size_t colon = e.find(": ");
    if (colon != std::string::npos && e.find('[') < colon) {
      return e.substr(0, colon);
    }
  }
  return "";
}

std::string DeadLetter::OriginTopic() const {
  const std::string o = Origin();
  const size_t bracket = o.find('[');
  return bracket == std::string::npos ? o : o.substr(0, bracket);
}

std::string_view DeadLetter::KindName() const {
  switch (kind) {
    case Kind::kFailedJob: return "failed job";
    case Kind::kUndeliveredJob: return "undelivered job";
    case Kind::kResults: return "results";
    case Kind::kMalformed: return "malformed";
  }
  return "?";
}

std::string DeadLetter::ToJson() const {
  JsonLine j;
  j.Int("partition", partition).Int("offset", offset);
  if (time != absl::InfinitePast()) j.Int("time_ms", absl::ToUnixMillis(time));
  j.Str("kind", KindName()).Str("key", key);
  JsonLine h;
  for (const auto& [name, value] : headers) h.Str(name, value);
  j.Raw("headers", h.Done());
  j.Str("value", value);
  return j.Done();
}

DeadLetter::Kind Classify(const DeadLetter& d) {
  if (d.Header("batchbus.attempts") != nullptr) {
    return DeadLetter::Kind::kFailedJob;
  }
  const std::string e = d.Error();
  if (absl::StartsWith(e, "results not delivered")) {
    return DeadLetter::Kind::kResults;
  }
  if (absl::StartsWith(e, "job not delivered")) {
    return DeadLetter::Kind::kUndeliveredJob;
  }
  return DeadLetter::Kind::kMalformed;
}

DeadLetter FromMessage(const rd_kafka_message_t* m) {
  DeadLetter d;
  d.partition = m->partition;
  d.offset = m->offset;
  rd_kafka_timestamp_type_t type;
  const int64_t ts = rd_kafka_message_timestamp(m, &type);
  if (ts >= 0) d.time = absl::FromUnixMillis(ts);
  if (m->key) d.key.assign(static_cast<const char*>(m->key), m->key_len);
  if (m->payload) {
    d.value.assign(static_cast<const char*>(m->payload), m->len);
  }
  rd_kafka_headers_t* headers = nullptr;
  if (rd_kafka_message_headers(m, &headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    for (size_t i = 0;
         rd_kafka_header_get_all(headers, i, &name, &value, &size) == 0; ++i) {
      d.headers.emplace_back(
          name, value ? std::string(static_cast<const char*>(value), size)
                      : std::string());
    }
  }
  d.kind = Classify(d);
  return d;
}

}  // namespace batchbus::cli
