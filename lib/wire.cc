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
  buf_.append("\",\"jobs\":[");
}

size_t BatchWriter::JobSize(std::string_view group, std::string_view data) {
  // Exact for every job after the first; the first job has no separator, so
  // this is one byte more than it appends and never an underestimate.
  return kJobFixedSize + json::QuotedSize(group) + data.size();
}

void BatchWriter::AddJob(const JobId& id, std::string_view group,
                         std::string_view data) {
  if (jobs_ > 0) buf_.push_back(',');
  buf_.append("{\"id\":");
  AppendId(buf_, id);
  buf_.append(",\"group\":");
  json::AppendQuoted(buf_, group);
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

void ResultWriter::Begin(std::string_view instance) {
  buf_.clear();
  results_ = 0;
  buf_.append("{\"v\":");
  AppendInt(buf_, kVersion);
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

void ResultWriter::AddOk(uint64_t seq, uint32_t index, const JobId& id,
                         std::string_view data) {
  AddPrefix(seq, index, id);
  buf_.append(",\"status\":\"PROCESSED_OK\",\"data\":");
  buf_.append(data);
  buf_.push_back('}');
}

void ResultWriter::AddError(uint64_t seq, uint32_t index, const JobId& id,
                            std::string_view error) {
  AddPrefix(seq, index, id);
  buf_.append(",\"status\":\"PROCESSED_ERROR\",\"error\":");
  json::AppendQuoted(buf_, error);
  buf_.push_back('}');
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
  simdjson::error_code Validate(const char* buf, size_t len) {
    simdjson::dom::element ignored;
    return dom.parse(reinterpret_cast<const uint8_t*>(buf), len, false)
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

}  // namespace

absl::Status Decoder::DecodeBatch(std::string_view payload, DecodedBatch& out) {
  // `out` may be reused: no view may survive into the new storage.
  out.instance = {};
  out.seq = 0;
  out.reply_topic = {};
  out.reply_partition = 0;
  out.processor = {};
  out.priority = Priority::kNormal;
  out.jobs.clear();
  std::deque<std::string> keep;  // Only used for escaped names.
  char* buf = PaddedCopy(payload, out.storage);
  od::document doc;
  if (auto e = state_->parser
                   .iterate(buf, payload.size(),
                            payload.size() + simdjson::SIMDJSON_PADDING)
                   .get(doc)) {
    return Malformed("not JSON", e);
  }
  od::object root;
  if (auto e = doc.get_object().get(root)) {
    return Malformed("not a single JSON object", e);
  }
  bool have_version = false, have_jobs = false, have_instance = false,
       have_seq = false, have_reply = false, have_partition = false,
       have_processor = false, have_priority = false;
  for (auto field : root) {
    std::string_view key;
    if (auto e = field.unescaped_key().get(key)) return Malformed("key", e);
    od::value v = field.value();
    simdjson::error_code e = simdjson::SUCCESS;
    if (key == "v") {
      int64_t version;
      e = v.get_int64().get(version);
      if (!e && version != kVersion) {
        return Malformed(StrCat("unsupported version ", version));
      }
      have_version = true;
    } else if (key == "instance") {
      e = StringValue(v, keep, out.instance);
      have_instance = true;
    } else if (key == "seq") {
      e = v.get_uint64().get(out.seq);
      have_seq = true;
    } else if (key == "reply_topic") {
      e = StringValue(v, keep, out.reply_topic);
      have_reply = true;
    } else if (key == "reply_partition") {
      int64_t p = 0;
      e = v.get_int64().get(p);
      if (!e && (p < 0 || p > INT32_MAX)) e = simdjson::NUMBER_OUT_OF_RANGE;
      out.reply_partition = static_cast<int32_t>(p);
      have_partition = true;
    } else if (key == "processor") {
      e = StringValue(v, keep, out.processor);
      have_processor = true;
    } else if (key == "priority") {
      have_priority = true;
      std::string_view name;
      e = v.get_string().get(name);
      if (!e) {
        auto p = ParsePriority(name);
        if (!p) return Malformed(StrCat("unknown priority '", name, "'"));
        out.priority = *p;
      }
    } else if (key == "jobs") {
      od::array jobs;
      if ((e = v.get_array().get(jobs))) return Malformed("jobs", e);
      for (auto element : jobs) {
        od::object job;
        if ((e = element.get_object().get(job))) return Malformed("job", e);
        DecodedJob& dj = out.jobs.emplace_back();
        bool have_id = false, have_group = false, have_data = false;
        for (auto jf : job) {
          std::string_view jkey;
          if ((e = jf.unescaped_key().get(jkey))) return Malformed("key", e);
          od::value jv = jf.value();
          if (jkey == "id") {
            if (auto s = IdValue(jv, dj.id); !s.ok()) return s;
            have_id = true;
          } else if (jkey == "group") {
            e = StringValue(jv, keep, dj.group);
            have_group = true;
          } else if (jkey == "data") {
            e = RawValue(jv, dj.data);
            have_data = true;
          }
          if (e) return Malformed(StrCat("job field '", jkey, "'"), e);
        }
        if (!have_id || !have_group || !have_data) {
          return Malformed(StrCat(
              "job ", out.jobs.size() - 1, " lacks ",
              Missing({{"id", have_id},
                       {"group", have_group},
                       {"data", have_data}})));
        }
      }
      have_jobs = true;
    }
    if (e) return Malformed(StrCat("field '", key, "'"), e);
  }
  if (!AtEnd(doc)) return Malformed("trailing content after the batch");
  if (!have_version || !have_jobs || !have_instance || !have_seq ||
      !have_reply || !have_partition || !have_processor || !have_priority) {
    return Malformed(StrCat(
        "batch lacks ",
        Missing({{"v", have_version},
                 {"instance", have_instance},
                 {"seq", have_seq},
                 {"reply_topic", have_reply},
                 {"reply_partition", have_partition},
                 {"processor", have_processor},
                 {"priority", have_priority},
                 {"jobs", have_jobs}})));
  }
  if (auto e = state_->Validate(buf, payload.size())) {
    return Malformed("not JSON", e);
  }
  if (!keep.empty()) {
    // Rare: escaped names. Move them where the views can outlive `keep` by
    // re-pointing into a single owned block appended to storage.
    size_t total = payload.size() + simdjson::SIMDJSON_PADDING;
    for (auto& s : keep) total += s.size();
    std::unique_ptr<char[]> grown(new char[total]);
    std::memcpy(grown.get(), out.storage.get(),
                payload.size() + simdjson::SIMDJSON_PADDING);
    const char* old_base = out.storage.get();
    char* cursor = grown.get() + payload.size() + simdjson::SIMDJSON_PADDING;
    auto rebase = [&](std::string_view& view) {
      if (view.data() >= old_base &&
          view.data() < old_base + payload.size() + simdjson::SIMDJSON_PADDING) {
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
    }
    out.storage = std::move(grown);
  }
  return absl::OkStatus();
}

absl::Status Decoder::DecodeResults(std::string_view payload,
                                    std::string_view& instance,
                                    std::vector<ResultEntry>& out) {
  out.clear();
  state_->unescaped.clear();
  const size_t need = payload.size() + simdjson::SIMDJSON_PADDING;
  if (state_->padded.size() < need) state_->padded.resize(need);
  std::memcpy(state_->padded.data(), payload.data(), payload.size());
  // simdjson peeks at the first padding byte; what an earlier, longer
  // message left there must not change the outcome.
  std::memset(state_->padded.data() + payload.size(), 0,
              simdjson::SIMDJSON_PADDING);
  od::document doc;
  if (auto e = state_->parser.iterate(state_->padded.data(), payload.size(),
                                      state_->padded.size())
                   .get(doc)) {
    return Malformed("not JSON", e);
  }
  od::object root;
  if (auto e = doc.get_object().get(root)) {
    return Malformed("not a single JSON object", e);
  }
  bool have_version = false, have_results = false, have_instance = false;
  instance = {};
  for (auto field : root) {
    std::string_view key;
    if (auto e = field.unescaped_key().get(key)) return Malformed("key", e);
    od::value v = field.value();
    simdjson::error_code e = simdjson::SUCCESS;
    if (key == "v") {
      int64_t version;
      e = v.get_int64().get(version);
      if (!e && version != kVersion) {
        return Malformed(StrCat("unsupported version ", version));
      }
      have_version = true;
    } else if (key == "instance") {
      e = StringValue(v, state_->unescaped, instance);
      have_instance = true;
    } else if (key == "results") {
      od::array results;
      if ((e = v.get_array().get(results))) return Malformed("results", e);
      for (auto element : results) {
        od::object r;
        if ((e = element.get_object().get(r))) return Malformed("result", e);
        ResultEntry& entry = out.emplace_back();
        bool have_seq = false, have_i = false, have_id = false,
             have_status = false, have_data = false;
        for (auto rf : r) {
          std::string_view rkey;
          if ((e = rf.unescaped_key().get(rkey))) return Malformed("key", e);
          od::value rv = rf.value();
          if (rkey == "seq") {
            e = rv.get_uint64().get(entry.seq);
            have_seq = true;
          } else if (rkey == "i") {
            uint64_t i = 0;
            e = rv.get_uint64().get(i);
            if (!e && i > UINT32_MAX) e = simdjson::NUMBER_OUT_OF_RANGE;
            entry.index = static_cast<uint32_t>(i);
            have_i = true;
          } else if (rkey == "id") {
            if (auto s = IdValue(rv, entry.id); !s.ok()) return s;
            have_id = true;
          } else if (rkey == "status") {
            std::string_view s;
            e = rv.get_string().get(s);
            if (!e) {
              auto status = ParseJobStatus(s);
              if (!status || !IsTerminal(*status)) {
                return Malformed(StrCat("unknown result status '", s, "'"));
              }
              entry.status = *status;
            }
            have_status = true;
          } else if (rkey == "data") {
            e = RawValue(rv, entry.data);
            have_data = true;
          } else if (rkey == "error") {
            e = StringValue(rv, state_->unescaped, entry.error);
          }
          if (e) return Malformed(StrCat("result field '", rkey, "'"), e);
        }
        if (!have_seq || !have_i || !have_id || !have_status) {
          return Malformed(StrCat("result ", out.size() - 1, " lacks ",
                                  Missing({{"seq", have_seq},
                                           {"i", have_i},
                                           {"id", have_id},
                                           {"status", have_status}})));
        }
        // Only the field that belongs to the status is kept.
        if (entry.status == JobStatus::kProcessedOk) {
          if (!have_data) {
            return Malformed(StrCat("result ", out.size() - 1,
                                    " is PROCESSED_OK without data"));
          }
          entry.error = {};
        } else {
          entry.data = {};
        }
      }
      have_results = true;
    }
    if (e) return Malformed(StrCat("field '", key, "'"), e);
  }
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
