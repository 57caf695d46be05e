#include "wire.h"

#include <charconv>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <utility>

#include "strcat.h"
#include "json.h"
#include "simdjson.h"

namespace batchbus::wire {
namespace od = simdjson::ondemand;

// ---------------------------------------------------------------- encoding

namespace {

void AppendUint(std::string& out, uint64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, end - buf);
}

void AppendInt(std::string& out, int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  out.append(buf, end - buf);
}

void AppendId(std::string& out, const JobId& id) {
  out.push_back('"');
  id.AppendTo(out);
  out.push_back('"');
}

// {"id":"<32>","group":,"data":} plus a separating comma. The group's quotes
// are counted by json::QuotedSize.
constexpr size_t kJobFixedSize = 1 + 5 + 34 + 9 + 8 + 1 + 1;

}  // namespace

void BatchWriter::Begin(const BatchHeader& h) {
  buf_.clear();
  jobs_ = 0;
  buf_.append("{\"v\":");
  AppendInt(buf_, kVersion);
  buf_.append(",\"instance\":");
  json::AppendQuoted(buf_, h.instance);
  buf_.append(",\"seq\":");
  AppendUint(buf_, h.seq);
  buf_.append(",\"reply_topic\":");
  json::AppendQuoted(buf_, h.reply_topic);
  buf_.append(",\"reply_partition\":");
  AppendInt(buf_, h.reply_partition);
  buf_.append(",\"processor\":");
  json::AppendQuoted(buf_, h.processor);
  buf_.append(",\"priority\":\"");
  buf_.append(PriorityName(h.priority));
  buf_.push_back('"');
  if (h.expires_ms > 0) {
    buf_.append(",\"expires_ms\":");
    AppendInt(buf_, h.expires_ms);
  }
  buf_.append(",\"jobs\":[");
}

namespace {

// Bytes of a field `,"key":` with a number of at most 20 digits.
constexpr size_t NumberFieldSize(std::string_view key) {
  return key.size() + 4 + 20;
}

// An upper bound of what AppendFields writes.
size_t FieldsSize(const JobFields& f) {
  size_t n = 0;
  if (f.attempt != 1) n += NumberFieldSize("attempt");
  if (f.first_attempt_ms != 0) n += NumberFieldSize("first_attempt_ms");
  if (f.not_before_ms != 0) n += NumberFieldSize("not_before_ms");
  if (f.deadline_ms != 0) n += NumberFieldSize("deadline_ms");
  if (f.expires_ms != 0) n += NumberFieldSize("expires_ms");
  if (f.index != JobFields::kOwnIndex) n += NumberFieldSize("index");
  if (f.events) n += sizeof(",\"events\":true") - 1;
  if (f.reserved) n += sizeof(",\"reserved\":true") - 1;
  if (!f.last_error.empty()) {
    n += sizeof(",\"last_error\":") - 1 + json::QuotedSize(f.last_error);
  }
  if (!f.traceparent.empty()) {
    n += sizeof(",\"traceparent\":") - 1 + json::QuotedSize(f.traceparent);
  }
  if (!f.tracestate.empty()) {
    n += sizeof(",\"tracestate\":") - 1 + json::QuotedSize(f.tracestate);
  }
  return n;
}

void AppendNumberField(std::string& out, std::string_view key, int64_t v) {
  out.append(",\"");
  out.append(key);
  out.append("\":");
  AppendInt(out, v);
}

void AppendTrace(std::string& out, const JobFields& f) {
  if (!f.traceparent.empty()) {
    out.append(",\"traceparent\":");
    json::AppendQuoted(out, f.traceparent);
  }
  if (!f.tracestate.empty()) {
    out.append(",\"tracestate\":");
    json::AppendQuoted(out, f.tracestate);
  }
}

void AppendFields(std::string& out, const JobFields& f) {
  if (f.attempt != 1) AppendNumberField(out, "attempt", f.attempt);
  if (f.first_attempt_ms != 0) {
    AppendNumberField(out, "first_attempt_ms", f.first_attempt_ms);
  }
  if (f.not_before_ms != 0) AppendNumberField(out, "not_before_ms", f.not_before_ms);
  if (f.deadline_ms != 0) AppendNumberField(out, "deadline_ms", f.deadline_ms);
  if (f.expires_ms != 0) AppendNumberField(out, "expires_ms", f.expires_ms);
  if (f.index != JobFields::kOwnIndex) AppendNumberField(out, "index", f.index);
  if (f.events) out.append(",\"events\":true");
  if (f.reserved) out.append(",\"reserved\":true");
  if (!f.last_error.empty()) {
    out.append(",\"last_error\":");
    json::AppendQuoted(out, f.last_error);
  }
  AppendTrace(out, f);
}

}  // namespace

size_t BatchWriter::JobSize(std::string_view group, std::string_view data,
                            const JobFields* fields) {
  // Exact for every plain job after the first; the first job has no
  // separator, so this is one byte more than it appends and never an
  // underestimate.
  const size_t size = kJobFixedSize + json::QuotedSize(group) + data.size();
  return fields == nullptr ? size : size + FieldsSize(*fields);
}

void BatchWriter::AddJob(const JobId& id, std::string_view group,
                         std::string_view data, const JobFields* fields) {
  if (jobs_ > 0) buf_.push_back(',');
  buf_.append("{\"id\":");
  AppendId(buf_, id);
  buf_.append(",\"group\":");
  json::AppendQuoted(buf_, group);
  if (fields != nullptr) AppendFields(buf_, *fields);
  buf_.append(",\"data\":");
  buf_.append(data);
  buf_.push_back('}');
  ++jobs_;
}

std::string BatchWriter::Finish() {
  buf_.append("]}");
  jobs_ = 0;
  return std::move(buf_);
}

void ResultWriter::Begin(std::string_view instance, int version) {
  buf_.clear();
  results_ = 0;
  version_ = version;
  buf_.append("{\"v\":");
  AppendInt(buf_, version);
  buf_.append(",\"instance\":");
  json::AppendQuoted(buf_, instance);
  buf_.append(",\"results\":[");
}

void ResultWriter::AddPrefix(uint64_t seq, uint32_t index, const JobId& id) {
  if (results_ > 0) buf_.push_back(',');
  buf_.append("{\"seq\":");
  AppendUint(buf_, seq);
  buf_.append(",\"i\":");
  AppendUint(buf_, index);
  buf_.append(",\"id\":");
  AppendId(buf_, id);
  ++results_;
}

void ResultWriter::AddAttempts(uint32_t attempts) {
  if (attempts <= 1 || version_ < 2) return;
  buf_.append(",\"attempts\":");
  AppendUint(buf_, attempts);
}

void ResultWriter::AddTrace(const JobFields* fields) {
  if (fields != nullptr && version_ >= 2) AppendTrace(buf_, *fields);
}

void ResultWriter::AddOk(uint64_t seq, uint32_t index, const JobId& id,
                         std::string_view data, uint32_t attempts,
                         const JobFields* fields) {
  AddPrefix(seq, index, id);
  AddAttempts(attempts);
  AddTrace(fields);
  buf_.append(",\"status\":\"PROCESSED_OK\",\"data\":");
  buf_.append(data);
  buf_.push_back('}');
}

void ResultWriter::AddError(uint64_t seq, uint32_t index, const JobId& id,
                            std::string_view error, uint32_t attempts,
                            const JobFields* fields) {
  AddPrefix(seq, index, id);
  AddAttempts(attempts);
  AddTrace(fields);
  buf_.append(",\"status\":\"PROCESSED_ERROR\",\"error\":");
  json::AppendQuoted(buf_, error);
  buf_.push_back('}');
}

void ResultWriter::AddExpired(uint64_t seq, uint32_t index, const JobId& id,
                              std::string_view error,
                              const JobFields* fields) {
  if (version_ < 2) return AddError(seq, index, id, error);
  AddPrefix(seq, index, id);
  AddTrace(fields);
  buf_.append(",\"status\":\"EXPIRED\",\"error\":");
  json::AppendQuoted(buf_, error);
  buf_.push_back('}');
}

bool ResultWriter::AddEvent(uint64_t seq, uint32_t index, const JobId& id,
                            ResultEntry::Kind kind, std::string_view data,
                            uint32_t attempt) {
  if (version_ < 2 || kind == ResultEntry::Kind::kResult) return false;
  AddPrefix(seq, index, id);
  if (kind == ResultEntry::Kind::kStarted) {
    buf_.append(",\"event\":\"started\"");
  } else {
    buf_.append(",\"event\":\"progress\",\"data\":");
    buf_.append(data);
  }
  if (attempt > 1) {
    buf_.append(",\"attempt\":");
    AppendUint(buf_, attempt);
  }
  buf_.push_back('}');
  return true;
}

std::string ResultWriter::Finish() {
  buf_.append("]}");
  results_ = 0;
  return std::move(buf_);
}

// ---------------------------------------------------------------- decoding

// On Demand checks only what it visits: it skips the inside of values (job
// data, unknown fields) without validating them, and does not always notice
// unbalanced brackets. So every message is also parsed once with the DOM
// parser that json::Validate uses, and accepted only if it is valid JSON as
// a whole. Data that Submit accepted nests at most simdjson's default depth,
// inside the message's own three levels (object, array, entry).
constexpr size_t kMessageMaxDepth = simdjson::DEFAULT_MAX_DEPTH + 3;

struct Decoder::State {
  State() {
    // Sets the depth limit; capacity grows with the messages, keeping it.
    const simdjson::error_code e = dom.allocate(
        simdjson::dom::MINIMAL_DOCUMENT_CAPACITY, kMessageMaxDepth);
    (void)e;  // Out of memory: parse() allocates again (default depth).
  }
  od::parser parser;
  simdjson::dom::parser dom;  // Whole-message validation.
  std::string padded;  // For result messages.
  std::deque<std::string> unescaped;  // Result error strings with escapes.

  // SUCCESS when `len` bytes at `buf` (followed by SIMDJSON_PADDING
  // readable bytes) are one valid JSON value.
  // A number too large for simdjson is valid JSON: then the message is
  // checked again with its numbers neutralized (json::NeutralizeNumbers).
  simdjson::error_code Validate(const char* buf, size_t len) {
    simdjson::dom::element ignored;
    auto e = dom.parse(reinterpret_cast<const uint8_t*>(buf), len, false)
                 .get(ignored);
    if (!e || !json::IsNumberError(e)) return e;
    return dom.parse(json::NeutralizeNumbers(std::string_view(buf, len)))
        .get(ignored);
  }
};

Decoder::Decoder() : state_(std::make_unique<State>()) {}
Decoder::~Decoder() = default;

namespace {

absl::Status Malformed(std::string_view what, simdjson::error_code e) {
  return absl::InvalidArgumentError(
      StrCat("malformed message: ", what, ": ",
                   simdjson::error_message(e)));
}

absl::Status Malformed(std::string_view what) {
  return absl::InvalidArgumentError(StrCat("malformed message: ", what));
}

// The raw text of any JSON value, without surrounding whitespace. Not
// validated here: the whole message is (see Decoder::State).
simdjson::error_code RawValue(od::value v, std::string_view& out) {
  od::json_type type;
  if (auto e = v.type().get(type)) return e;
  switch (type) {
    case od::json_type::object: {
      od::object o;
      if (auto e = v.get_object().get(o)) return e;
      if (auto e = o.raw_json().get(out)) return e;
      break;
    }
    case od::json_type::array: {
      od::array a;
      if (auto e = v.get_array().get(a)) return e;
      if (auto e = a.raw_json().get(out)) return e;
      break;
    }
    default:
      // A scalar: its token runs to the next structural character.
      out = v.raw_json_token();
      break;
  }
  out = json::TrimWhitespace(out);
  return simdjson::SUCCESS;
}

// A string value as a view into the input when it has no escapes; otherwise
// unescaped into `keep`.
simdjson::error_code StringValue(od::value v, std::deque<std::string>& keep,
                                 std::string_view& out) {
  std::string_view raw = json::TrimWhitespace(v.raw_json_token());
  std::string_view s;
  if (auto e = v.get_string().get(s)) return e;
  if (raw.size() >= 2 && raw.find('\\') == std::string_view::npos) {
    out = raw.substr(1, raw.size() - 2);
  } else {
    out = keep.emplace_back(s);
  }
  return simdjson::SUCCESS;
}

absl::Status IdValue(od::value v, JobId& out) {
  std::string_view s;
  if (auto e = v.get_string().get(s)) return Malformed("field 'id'", e);
  auto id = JobId::FromString(s);
  if (!id) {
    return Malformed(StrCat("job id '", s.substr(0, 64),
                            "' is not 32 hex digits"));
  }
  out = *id;
  return absl::OkStatus();
}

// "a, b" for the names whose flag is false.
std::string Missing(
    std::initializer_list<std::pair<const char*, bool>> fields) {
  std::string out;
  for (const auto& [name, present] : fields) {
    if (present) continue;
    if (!out.empty()) out.append(", ");
    out.append(name);
  }
  return out;
}

// True when nothing but whitespace follows the root value.
bool AtEnd(od::document& doc) {
  const char* location = nullptr;
  return doc.current_location().get(location) != simdjson::SUCCESS;
}

char* PaddedCopy(std::string_view payload, std::unique_ptr<char[]>& storage) {
  storage.reset(new char[payload.size() + simdjson::SIMDJSON_PADDING]);
  std::memcpy(storage.get(), payload.data(), payload.size());
  std::memset(storage.get() + payload.size(), 0, simdjson::SIMDJSON_PADDING);
  return storage.get();
}

// The root object of the message in `buf` (`len` bytes, `cap` readable).
absl::Status OpenRoot(od::parser& parser, char* buf, size_t len, size_t cap,
                      od::document& doc, od::object& root) {
  if (auto e = parser.iterate(buf, len, cap).get(doc)) {
    return Malformed("not JSON", e);
  }
  if (auto e = doc.get_object().get(root)) {
    return Malformed("not a single JSON object", e);
  }
  return absl::OkStatus();
}

absl::Status CheckVersion(od::value v, int& out) {
  int64_t version = 0;
  if (auto e = v.get_int64().get(version)) return Malformed("field 'v'", e);
  if (version < kOldestVersion || version > kVersion) {
    return Malformed(StrCat("unsupported version ", version));
  }
  out = static_cast<int>(version);
  return absl::OkStatus();
}

ABSL_ATTRIBUTE_NOINLINE absl::Status FieldErrorOf(std::string_view prefix,
                                                  std::string_view key,
                                                  simdjson::error_code e) {
  return Malformed(StrCat(prefix, "field '", key, "'"), e);
}

// Called for every field: the error path stays out of line.
inline absl::Status FieldError(std::string_view prefix, std::string_view key,
                               simdjson::error_code e) {
  if (ABSL_PREDICT_TRUE(!e)) return absl::OkStatus();
  return FieldErrorOf(prefix, key, e);
}

// Calls `on_field(key, value)` for each field of `object`; stops at the
// first error it or the parser returns.
template <typename OnField>
absl::Status ForEachField(od::object object, OnField on_field) {
  for (auto field : object) {
    std::string_view key;
    if (auto e = field.unescaped_key().get(key)) return Malformed("key", e);
    if (absl::Status s = on_field(key, field.value()); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// Calls `on_object(object)` for each element of the array `v`, which must
// hold objects only. `what` names an element in errors.
template <typename OnObject>
absl::Status ForEachObject(od::value v, std::string_view array_name,
                           std::string_view what, OnObject on_object) {
  od::array array;
  if (auto e = v.get_array().get(array)) return Malformed(array_name, e);
  for (auto element : array) {
    od::object object;
    if (auto e = element.get_object().get(object)) return Malformed(what, e);
    if (absl::Status s = on_object(object); !s.ok()) return s;
  }
  return absl::OkStatus();
}

simdjson::error_code PartitionValue(od::value v, int32_t& out) {
  int64_t p = 0;
  if (auto e = v.get_int64().get(p)) return e;
  if (p < 0 || p > INT32_MAX) return simdjson::NUMBER_OUT_OF_RANGE;
  out = static_cast<int32_t>(p);
  return simdjson::SUCCESS;
}

simdjson::error_code IndexValue(od::value v, uint32_t& out) {
  uint64_t i = 0;
  if (auto e = v.get_uint64().get(i)) return e;
  if (i > UINT32_MAX) return simdjson::NUMBER_OUT_OF_RANGE;
  out = static_cast<uint32_t>(i);
  return simdjson::SUCCESS;
}

absl::Status PriorityValue(od::value v, Priority& out) {
  std::string_view name;
  if (auto e = v.get_string().get(name)) return FieldError("", "priority", e);
  auto p = ParsePriority(name);
  if (!p) return Malformed(StrCat("unknown priority '", name, "'"));
  out = *p;
  return absl::OkStatus();
}

absl::Status ResultStatusValue(od::value v, JobStatus& out) {
  std::string_view s;
  if (auto e = v.get_string().get(s)) return FieldError("result ", "status", e);
  auto status = ParseJobStatus(s);
  if (!status || !IsTerminal(*status)) {
    return Malformed(StrCat("unknown result status '", s, "'"));
  }
  out = *status;
  return absl::OkStatus();
}

// A non-negative 64-bit integer (unix ms).
simdjson::error_code MillisValue(od::value v, int64_t& out) {
  if (auto e = v.get_int64().get(out)) return e;
  return out < 0 ? simdjson::NUMBER_OUT_OF_RANGE : simdjson::SUCCESS;
}

// A lifecycle field of a job (version 2); false when `key` is none.
bool DecodeJobField(std::string_view key, od::value v,
                    std::deque<std::string>& keep, JobFields& f,
                    simdjson::error_code& e) {
  if (key == "attempt") {
    e = IndexValue(v, f.attempt);
    if (!e && f.attempt == 0) e = simdjson::NUMBER_OUT_OF_RANGE;
  } else if (key == "first_attempt_ms") {
    e = MillisValue(v, f.first_attempt_ms);
  } else if (key == "not_before_ms") {
    e = MillisValue(v, f.not_before_ms);
  } else if (key == "deadline_ms") {
    e = MillisValue(v, f.deadline_ms);
  } else if (key == "expires_ms") {
    e = MillisValue(v, f.expires_ms);
  } else if (key == "index") {
    e = IndexValue(v, f.index);
  } else if (key == "events") {
    e = v.get_bool().get(f.events);
  } else if (key == "reserved") {
    e = v.get_bool().get(f.reserved);
  } else if (key == "last_error") {
    e = StringValue(v, keep, f.last_error);
  } else if (key == "traceparent") {
    e = StringValue(v, keep, f.traceparent);
  } else if (key == "tracestate") {
    e = StringValue(v, keep, f.tracestate);
  } else {
    return false;
  }
  return true;
}

// One job of a batch; `index` names it in errors.
absl::Status DecodeJob(od::object object, size_t index,
                       std::deque<std::string>& keep, DecodedJob& job) {
  bool have_id = false, have_group = false, have_data = false;
  absl::Status s = ForEachField(object, [&](std::string_view key,
                                            od::value v) -> absl::Status {
    simdjson::error_code e = simdjson::SUCCESS;
    if (key == "id") {
      have_id = true;
      return IdValue(v, job.id);
    } else if (key == "group") {
      e = StringValue(v, keep, job.group);
      have_group = true;
    } else if (key == "data") {
      e = RawValue(v, job.data);
      have_data = true;
    } else {
      DecodeJobField(key, v, keep, job.fields, e);
    }
    return FieldError("job ", key, e);
  });
  if (!s.ok()) return s;
  if (have_id && have_group && have_data) return absl::OkStatus();
  return Malformed(StrCat("job ", index, " lacks ",
                          Missing({{"id", have_id},
                                   {"group", have_group},
                                   {"data", have_data}})));
}

// The fields of a batch's root object, and which of them were seen.
struct BatchFields {
  bool version = false, instance = false, seq = false, reply_topic = false,
       reply_partition = false, processor = false, priority = false,
       jobs = false;

  std::string Missing() const {
    return wire::Missing({{"v", version},
                          {"instance", instance},
                          {"seq", seq},
                          {"reply_topic", reply_topic},
                          {"reply_partition", reply_partition},
                          {"processor", processor},
                          {"priority", priority},
                          {"jobs", jobs}});
  }
  bool Complete() const { return Missing().empty(); }
};

absl::Status DecodeBatchField(std::string_view key, od::value v,
                              std::deque<std::string>& keep,
                              DecodedBatch& out, BatchFields& seen) {
  simdjson::error_code e = simdjson::SUCCESS;
  if (key == "v") {
    seen.version = true;
    return CheckVersion(v, out.version);
  } else if (key == "expires_ms") {
    e = MillisValue(v, out.expires_ms);
  } else if (key == "instance") {
    e = StringValue(v, keep, out.instance);
    seen.instance = true;
  } else if (key == "seq") {
    e = v.get_uint64().get(out.seq);
    seen.seq = true;
  } else if (key == "reply_topic") {
    e = StringValue(v, keep, out.reply_topic);
    seen.reply_topic = true;
  } else if (key == "reply_partition") {
    e = PartitionValue(v, out.reply_partition);
    seen.reply_partition = true;
  } else if (key == "processor") {
    e = StringValue(v, keep, out.processor);
    seen.processor = true;
  } else if (key == "priority") {
    seen.priority = true;
    return PriorityValue(v, out.priority);
  } else if (key == "jobs") {
    seen.jobs = true;
    return ForEachObject(v, "jobs", "job", [&](od::object job) {
      const size_t index = out.jobs.size();
      return DecodeJob(job, index, keep, out.jobs.emplace_back());
    });
  }
  return FieldError("", key, e);
}

// Escaped names were unescaped into `keep`, whose strings die with the
// decode call: copy them behind the payload in one owned block and re-point
// every view into it.
void MoveEscapedIntoStorage(size_t payload_size,
                            const std::deque<std::string>& keep,
                            DecodedBatch& out) {
  const size_t padded = payload_size + simdjson::SIMDJSON_PADDING;
  size_t total = padded;
  for (const auto& s : keep) total += s.size();
  std::unique_ptr<char[]> grown(new char[total]);
  std::memcpy(grown.get(), out.storage.get(), padded);
  const char* old_base = out.storage.get();
  char* cursor = grown.get() + padded;
  auto rebase = [&](std::string_view& view) {
    if (view.data() >= old_base && view.data() < old_base + padded) {
      view = std::string_view(grown.get() + (view.data() - old_base),
                              view.size());
      return;
    }
    std::memcpy(cursor, view.data(), view.size());
    view = std::string_view(cursor, view.size());
    cursor += view.size();
  };
  rebase(out.instance);
  rebase(out.reply_topic);
  rebase(out.processor);
  for (auto& job : out.jobs) {
    rebase(job.group);
    rebase(job.data);
    if (!job.fields.last_error.empty()) rebase(job.fields.last_error);
    if (!job.fields.traceparent.empty()) rebase(job.fields.traceparent);
    if (!job.fields.tracestate.empty()) rebase(job.fields.tracestate);
  }
  out.storage = std::move(grown);
}

absl::Status EventValue(od::value v, ResultEntry::Kind& out) {
  std::string_view s;
  if (auto e = v.get_string().get(s)) return FieldError("result ", "event", e);
  if (s == "started") {
    out = ResultEntry::Kind::kStarted;
  } else if (s == "progress") {
    out = ResultEntry::Kind::kProgress;
  } else {
    return Malformed(StrCat("unknown event '", s, "'"));
  }
  return absl::OkStatus();
}

// One entry of a result message; `index` names it in errors.
absl::Status DecodeResultEntry(od::object object, size_t index,
                               std::deque<std::string>& unescaped,
                               ResultEntry& entry) {
  bool have_seq = false, have_i = false, have_id = false, have_status = false,
       have_data = false, have_event = false;
  absl::Status s = ForEachField(object, [&](std::string_view key,
                                            od::value v) -> absl::Status {
    simdjson::error_code e = simdjson::SUCCESS;
    if (key == "seq") {
      e = v.get_uint64().get(entry.seq);
      have_seq = true;
    } else if (key == "i") {
      e = IndexValue(v, entry.index);
      have_i = true;
    } else if (key == "id") {
      have_id = true;
      return IdValue(v, entry.id);
    } else if (key == "status") {
      have_status = true;
      return ResultStatusValue(v, entry.status);
    } else if (key == "event") {
      have_event = true;
      return EventValue(v, entry.kind);
    } else if (key == "data") {
      e = RawValue(v, entry.data);
      have_data = true;
    } else if (key == "error") {
      e = StringValue(v, unescaped, entry.error);
    } else if (key == "attempts" || key == "attempt") {
      e = IndexValue(v, entry.attempts);
    } else if (key == "traceparent") {
      e = StringValue(v, unescaped, entry.traceparent);
    } else if (key == "tracestate") {
      e = StringValue(v, unescaped, entry.tracestate);
    }
    return FieldError("result ", key, e);
  });
  if (!s.ok()) return s;
  if (have_event && have_status) {
    return Malformed(StrCat("result ", index, " has both status and event"));
  }
  if (!have_seq || !have_i || !have_id || !(have_status || have_event)) {
    return Malformed(StrCat("result ", index, " lacks ",
                            Missing({{"seq", have_seq},
                                     {"i", have_i},
                                     {"id", have_id},
                                     {"status", have_status || have_event}})));
  }
  if (have_event) {
    entry.error = {};
    if (entry.kind == ResultEntry::Kind::kStarted) {
      entry.data = {};
    } else if (!have_data) {
      return Malformed(StrCat("result ", index, " is a progress event without data"));
    }
    return absl::OkStatus();
  }
  // Only the field that belongs to the status is kept.
  if (entry.status != JobStatus::kProcessedOk) {
    entry.data = {};
    return absl::OkStatus();
  }
  entry.error = {};
  if (have_data) return absl::OkStatus();
  return Malformed(StrCat("result ", index, " is PROCESSED_OK without data"));
}

}  // namespace

absl::Status Decoder::DecodeBatch(std::string_view payload, DecodedBatch& out) {
  // `out` may be reused: no view may survive into the new storage.
  out.instance = {};
  out.seq = 0;
  out.reply_topic = {};
  out.reply_partition = 0;
  out.processor = {};
  out.priority = Priority::kNormal;
  out.version = kVersion;
  out.expires_ms = 0;
  out.jobs.clear();
  std::deque<std::string> keep;  // Only used for escaped names.
  char* buf = PaddedCopy(payload, out.storage);
  od::document doc;
  od::object root;
  absl::Status s =
      OpenRoot(state_->parser, buf, payload.size(),
               payload.size() + simdjson::SIMDJSON_PADDING, doc, root);
  if (!s.ok()) return s;
  BatchFields seen;
  s = ForEachField(root, [&](std::string_view key, od::value v) {
    return DecodeBatchField(key, v, keep, out, seen);
  });
  if (!s.ok()) return s;
  if (!AtEnd(doc)) return Malformed("trailing content after the batch");
  if (!seen.Complete()) {
    return Malformed(StrCat("batch lacks ", seen.Missing()));
  }
  if (auto e = state_->Validate(buf, payload.size())) {
    return Malformed("not JSON", e);
  }
  if (!keep.empty()) MoveEscapedIntoStorage(payload.size(), keep, out);
  return absl::OkStatus();
}

absl::Status Decoder::DecodeResults(std::string_view payload,
                                    std::string_view& instance,
                                    std::vector<ResultEntry>& out) {
  out.clear();
  instance = {};
  state_->unescaped.clear();
  const size_t need = payload.size() + simdjson::SIMDJSON_PADDING;
  if (state_->padded.size() < need) state_->padded.resize(need);
  std::memcpy(state_->padded.data(), payload.data(), payload.size());
  // simdjson peeks at the first padding byte; what an earlier, longer
  // message left there must not change the outcome.
  std::memset(state_->padded.data() + payload.size(), 0,
              simdjson::SIMDJSON_PADDING);
  od::document doc;
  od::object root;
  absl::Status s = OpenRoot(state_->parser, state_->padded.data(),
                            payload.size(), state_->padded.size(), doc, root);
  if (!s.ok()) return s;
  bool have_version = false, have_results = false, have_instance = false;
  s = ForEachField(root, [&](std::string_view key,
                             od::value v) -> absl::Status {
    if (key == "v") {
      have_version = true;
      int version = 0;
      return CheckVersion(v, version);
    } else if (key == "instance") {
      have_instance = true;
      return FieldError("", key, StringValue(v, state_->unescaped, instance));
    } else if (key == "results") {
      have_results = true;
      return ForEachObject(v, "results", "result", [&](od::object r) {
        const size_t index = out.size();
        return DecodeResultEntry(r, index, state_->unescaped,
                                 out.emplace_back());
      });
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  if (!AtEnd(doc)) return Malformed("trailing content after the results");
  if (!have_version || !have_results || !have_instance) {
    return Malformed(StrCat("result message lacks ",
                            Missing({{"v", have_version},
                                     {"instance", have_instance},
                                     {"results", have_results}})));
  }
  if (instance.empty()) {
    return Malformed("result message has an empty instance");
  }
  if (auto e = state_->Validate(state_->padded.data(), payload.size())) {
    return Malformed("not JSON", e);
  }
  return absl::OkStatus();
}

}  // namespace batchbus::wire
