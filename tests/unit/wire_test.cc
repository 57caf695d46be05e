// Unit tests for the wire format (lib/wire.h) and the JSON helpers it uses
// (lib/json.h). docs/wire-format.md is the reference these tests pin down.
#include "wire.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "batchbus/job.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "json.h"
#include "simdjson.h"

namespace batchbus::wire {
namespace {

using ::testing::HasSubstr;

constexpr std::string_view kInstance = "0123456789abcdef0123456789abcdef";
const JobId kId1(0x0123456789abcdefull, 0xfedcba9876543210ull);
const JobId kId2(1, 2);
const JobId kId3(~0ull, ~0ull);

BatchHeader Header(Priority priority = Priority::kNormal) {
  BatchHeader h;
  h.instance = kInstance;
  h.seq = 42;
  h.reply_topic = "batchbus.replies";
  h.reply_partition = 3;
  h.processor = "payments";
  h.priority = priority;
  return h;
}

struct InJob {
  JobId id;
  std::string group;
  std::string data;
};

std::string EncodeBatch(const BatchHeader& h, const std::vector<InJob>& jobs) {
  BatchWriter w;
  w.Begin(h);
  for (const InJob& j : jobs) w.AddJob(j.id, j.group, j.data);
  return w.Finish();
}

// A batch message written by hand from (key, raw JSON value) pairs, so tests
// can drop, repeat or spoil single fields.
using Fields = std::vector<std::pair<std::string, std::string>>;

std::string Object(const Fields& fields) {
  std::string out = "{";
  for (const auto& [key, value] : fields) {
    if (out.size() > 1) out += ",";
    out += "\"" + key + "\":" + value;
  }
  return out + "}";
}

const std::string kIdText = "\"0123456789abcdeffedcba9876543210\"";

Fields JobFields() {
  return {{"id", kIdText}, {"group", "\"g\""}, {"data", "{\"a\":1}"}};
}

Fields BatchFields(const std::string& jobs = "[" + Object(JobFields()) + "]") {
  return {{"v", "1"},
          {"instance", "\"" + std::string(kInstance) + "\""},
          {"seq", "7"},
          {"reply_topic", "\"batchbus.replies\""},
          {"reply_partition", "0"},
          {"processor", "\"payments\""},
          {"priority", "\"normal\""},
          {"jobs", jobs}};
}

Fields Without(Fields fields, const std::string& key) {
  for (auto it = fields.begin(); it != fields.end(); ++it) {
    if (it->first == key) {
      fields.erase(it);
      return fields;
    }
  }
  ADD_FAILURE() << "no field " << key;
  return fields;
}

Fields With(Fields fields, const std::string& key, const std::string& value) {
  for (auto& [k, v] : fields) {
    if (k == key) {
      v = value;
      return fields;
    }
  }
  fields.emplace_back(key, value);
  return fields;
}

Fields ResultFields(const std::string& results) {
  return {{"v", "1"},
          {"instance", "\"" + std::string(kInstance) + "\""},
          {"results", results}};
}

std::string OkResult(const std::string& extra = "") {
  return "{\"seq\":7,\"i\":0,\"id\":" + kIdText +
         ",\"status\":\"PROCESSED_OK\",\"data\":{\"r\":1}" + extra + "}";
}

absl::Status DecodeBatchText(std::string_view text) {
  Decoder d;
  DecodedBatch b;
  return d.DecodeBatch(text, b);
}

absl::Status DecodeResultsText(std::string_view text) {
  Decoder d;
  std::string_view instance;
  std::vector<ResultEntry> entries;
  return d.DecodeResults(text, instance, entries);
}

// InvalidArgument whose message contains `fragment`.
void ExpectMalformed(const absl::Status& s, std::string_view fragment) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("malformed message"));
  EXPECT_THAT(std::string(s.message()), HasSubstr(std::string(fragment)));
}

// True when `view` lies inside [base, base + size).
bool Inside(std::string_view view, const char* base, size_t size) {
  return view.data() >= base && view.data() + view.size() <= base + size;
}

// ------------------------------------------------------------ batch: encode

TEST(WireBatch, WritesTheDocumentedLayout) {
  const std::string msg =
      EncodeBatch(Header(Priority::kSlow), {{kId1, "g", "[1, 2]"}});
  EXPECT_EQ(msg,
            "{\"v\":2,\"instance\":\"0123456789abcdef0123456789abcdef\","
            "\"seq\":42,\"reply_topic\":\"batchbus.replies\","
            "\"reply_partition\":3,\"processor\":\"payments\","
            "\"priority\":\"slow\",\"jobs\":[{\"id\":"
            "\"0123456789abcdeffedcba9876543210\",\"group\":\"g\","
            "\"data\":[1, 2]}]}");
  EXPECT_TRUE(json::Validate(msg, "batch").ok());
}

TEST(WireBatch, RoundTripsHeaderFields) {
  for (Priority p : kAllPriorities) {
    BatchHeader h = Header(p);
    h.seq = UINT64_MAX;
    h.reply_partition = INT32_MAX;
    const std::string msg = EncodeBatch(h, {});
    Decoder d;
    DecodedBatch b;
    ASSERT_TRUE(d.DecodeBatch(msg, b).ok()) << msg;
    EXPECT_EQ(b.instance, kInstance);
    EXPECT_EQ(b.seq, UINT64_MAX);
    EXPECT_EQ(b.reply_topic, "batchbus.replies");
    EXPECT_EQ(b.reply_partition, INT32_MAX);
    EXPECT_EQ(b.processor, "payments");
    EXPECT_EQ(b.priority, p);
    EXPECT_TRUE(b.jobs.empty());
  }
}

TEST(WireBatch, RoundTripsJobsWithRawData) {
  // Every JSON type, escapes, raw UTF-8, nesting and inner whitespace. The
  // decoder must hand back exactly these bytes: data is never re-serialised.
  const std::vector<std::string> datas = {
      R"({"a":1,"b":[true,false,null],"c":{"d":"e"}})",
      R"([1,"two",3.5,-4e-3,{"x":[]},[],{}])",
      R"("plain")",
      R"("esc \" \\ \/ \b \f \n \r \t \u0001 \u00e9 \ud83d\ude00")",
      "\"raw utf-8: \xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\"",
      "0",
      "-0",
      "42",
      "-17",
      "3.14159",
      "1e-7",
      "6.02E+23",
      "18446744073709551615",
      "-9223372036854775808",
      "true",
      "false",
      "null",
      "{}",
      "[]",
      "\"\"",
      "{ \"spaced\" : [ 1 , 2 ,\t3 ] ,\r\n  \"nested\" : { \"deeper\" : "
      "{ \"deepest\" : [ [ ] , { } ] } } }",
      R"({"a":{"b":{"c":{"d":{"e":{"f":[[[[["deep"]]]]]}}}}}})",
      R"({"dup":1,"dup":2})",
      R"({"unicode key \u00e9":"v","":""})",
  };
  std::vector<InJob> jobs;
  for (size_t i = 0; i < datas.size(); ++i) {
    ASSERT_TRUE(json::Validate(datas[i], "data").ok()) << datas[i];
    jobs.push_back({JobId(i, i * 7 + 1), "group-" + std::to_string(i),
                    datas[i]});
  }
  const std::string msg = EncodeBatch(Header(), jobs);
  Decoder d;
  DecodedBatch b;
  ASSERT_TRUE(d.DecodeBatch(msg, b).ok()) << msg;
  ASSERT_EQ(b.jobs.size(), jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    SCOPED_TRACE(jobs[i].data);
    EXPECT_EQ(b.jobs[i].id, jobs[i].id);
    EXPECT_EQ(b.jobs[i].group, jobs[i].group);
    EXPECT_EQ(b.jobs[i].data, jobs[i].data);  // Byte for byte.
  }
  EXPECT_EQ(b.instance, kInstance);
  EXPECT_EQ(b.seq, 42u);
  EXPECT_EQ(b.reply_partition, 3);
}

TEST(WireBatch, DataIsAViewIntoTheMessageCopy) {
  const std::string msg = EncodeBatch(Header(), {{kId1, "g", R"({"a":[1]})"},
                                                 {kId2, "h", "\"s\""}});
  Decoder d;
  DecodedBatch b;
  ASSERT_TRUE(d.DecodeBatch(msg, b).ok());
  for (const DecodedJob& j : b.jobs) {
    EXPECT_TRUE(Inside(j.data, b.storage.get(), msg.size())) << j.data;
    EXPECT_TRUE(Inside(j.group, b.storage.get(), msg.size())) << j.group;
  }
  // The caller's buffer is not referenced: it may go away.
  EXPECT_FALSE(Inside(b.jobs[0].data, msg.data(), msg.size()));
}

TEST(WireBatch, SurroundingWhitespaceOfDataIsDropped) {
  // Submit trims data before encoding; a writer given padded text still
  // yields the bare value on the other side.
  const std::string msg = EncodeBatch(
      Header(), {{kId1, "g", " \n\t[1, 2] \r\n"}, {kId2, "g", "  7  "}});
  Decoder d;
  DecodedBatch b;
  ASSERT_TRUE(d.DecodeBatch(msg, b).ok()) << msg;
  EXPECT_EQ(b.jobs[0].data, "[1, 2]");
  EXPECT_EQ(b.jobs[1].data, "7");
}

TEST(WireBatch, GroupNamesNeedingEscapesRoundTrip) {
  const std::vector<std::string> groups = {
      "",
      "plain",
      "q\"uo\"te",
      "back\\slash\\",
      std::string("nul\0byte", 8),
      "ctl \x01 \x1f \x7f",
      "ws \n \t \r \b \f",
      "slash / and \\/",
      "utf-8 \xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80",
      "\\u0041 stays literal",
      std::string(3000, '"'),
  };
  std::vector<InJob> jobs;
  for (size_t i = 0; i < groups.size(); ++i) {
    jobs.push_back({JobId(0, i + 1), groups[i], "null"});
  }
  const std::string msg = EncodeBatch(Header(), jobs);
  ASSERT_TRUE(json::Validate(msg, "batch").ok());
  Decoder d;
  DecodedBatch b;
  ASSERT_TRUE(d.DecodeBatch(msg, b).ok()) << msg;
  ASSERT_EQ(b.jobs.size(), groups.size());
  for (size_t i = 0; i < groups.size(); ++i) {
    EXPECT_EQ(b.jobs[i].group, groups[i]) << i;
    EXPECT_EQ(b.jobs[i].data, "null");
  }
}

TEST(WireBatch, EscapedHeaderStringsRoundTripAndOutliveTheDecoder) {
  // Escaped strings are unescaped into an owned block appended to
  // `storage`; every view must survive the decoder and a move of the batch.
  BatchHeader h = Header();
  const std::string instance = "in\"stance\\";
  const std::string topic = "re\tply";
  const std::string processor = "pro\xc3\xa9 \x01";
  h.instance = instance;
  h.reply_topic = topic;
  h.processor = processor;
  const std::string msg =
      EncodeBatch(h, {{kId1, "gr\"oup", "{\"k\":\"v\\n\"}"},
                      {kId2, "plain", "1"}});
  DecodedBatch moved;
  {
    auto d = std::make_unique<Decoder>();
    DecodedBatch b;
    ASSERT_TRUE(d->DecodeBatch(msg, b).ok()) << msg;
    moved = std::move(b);
    // A second decode on the same decoder must not disturb the first batch.
    DecodedBatch other;
    ASSERT_TRUE(d->DecodeBatch(EncodeBatch(Header(), {{kId3, "x\\y", "2"}}),
                               other)
                    .ok());
    EXPECT_EQ(other.jobs[0].group, "x\\y");
  }
  EXPECT_EQ(moved.instance, instance);
  EXPECT_EQ(moved.reply_topic, topic);
  EXPECT_EQ(moved.processor, processor);
  ASSERT_EQ(moved.jobs.size(), 2u);
  EXPECT_EQ(moved.jobs[0].group, "gr\"oup");
  EXPECT_EQ(moved.jobs[0].data, "{\"k\":\"v\\n\"}");  // Still raw.
  EXPECT_EQ(moved.jobs[1].group, "plain");
  EXPECT_EQ(moved.jobs[1].data, "1");
}

TEST(WireBatch, InvalidUtf8InAGroupIsReplacedNotPoisoningTheBatch) {
  // JSON must be UTF-8: a group with a stray byte is written with U+FFFD in
  // its place so the other jobs of the batch still decode.
  const std::string msg = EncodeBatch(
      Header(), {{kId1, "bad \xff byte", "1"}, {kId2, "cut \xe6\x97", "2"},
                 {kId3, "fine", "3"}});
  Decoder d;
  DecodedBatch b;
  ASSERT_TRUE(d.DecodeBatch(msg, b).ok()) << msg;
  ASSERT_EQ(b.jobs.size(), 3u);
  EXPECT_EQ(b.jobs[0].group, "bad \xef\xbf\xbd byte");
  EXPECT_EQ(b.jobs[1].group, "cut \xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(b.jobs[2].group, "fine");
}

TEST(WireBatch, EmptyBatchDecodes) {
  Decoder d;
  DecodedBatch b;
  ASSERT_TRUE(d.DecodeBatch(EncodeBatch(Header(), {}), b).ok());
  EXPECT_TRUE(b.jobs.empty());
  EXPECT_EQ(b.seq, 42u);
}

TEST(WireBatch, DecodedBatchCanBeReused) {
  Decoder d;
  DecodedBatch b;
  ASSERT_TRUE(
      d.DecodeBatch(EncodeBatch(Header(), {{kId1, "a", "1"}, {kId2, "b", "2"}}),
                    b)
          .ok());
  BatchHeader h = Header(Priority::kRealtime);
  h.processor = "other";
  h.seq = 1;
  ASSERT_TRUE(d.DecodeBatch(EncodeBatch(h, {{kId3, "c", "3"}}), b).ok());
  ASSERT_EQ(b.jobs.size(), 1u);
  EXPECT_EQ(b.jobs[0].id, kId3);
  EXPECT_EQ(b.processor, "other");
  EXPECT_EQ(b.priority, Priority::kRealtime);
  EXPECT_EQ(b.seq, 1u);
}

TEST(WireBatch, UnknownFieldsAreIgnored) {
  // Forward compatibility: a v1 reader skips fields it does not know, at the
  // top level and inside jobs, whatever their type.
  Fields job = JobFields();
  job.emplace_back("attempt", "3");
  job.emplace_back("trace", R"({"span":[1,2,{"x":null}]})");
  Fields fields = BatchFields("[" + Object(job) + "]");
  fields.insert(fields.begin(), {"future", R"(["a",{"b":true}])"});
  fields.emplace_back("compression", "\"none\"");
  Decoder d;
  DecodedBatch b;
  ASSERT_TRUE(d.DecodeBatch(Object(fields), b).ok()) << Object(fields);
  ASSERT_EQ(b.jobs.size(), 1u);
  EXPECT_EQ(b.jobs[0].data, "{\"a\":1}");
}

TEST(WireBatch, FieldOrderDoesNotMatter) {
  Fields fields = BatchFields();
  std::reverse(fields.begin(), fields.end());
  Fields job = JobFields();
  std::reverse(job.begin(), job.end());
  fields = With(fields, "jobs", "[" + Object(job) + "]");
  Decoder d;
  DecodedBatch b;
  ASSERT_TRUE(d.DecodeBatch(Object(fields), b).ok());
  EXPECT_EQ(b.jobs[0].id, kId1);
  EXPECT_EQ(b.jobs[0].group, "g");
}

TEST(WireBatch, WhitespaceBetweenTokensIsAccepted) {
  const std::string msg =
      " \n{ \"v\" : 1 , \"instance\" : \"i\" , \"seq\" : 1 , \"reply_topic\" "
      ": \"r\" , \"reply_partition\" : 0 , \"processor\" : \"p\" , "
      "\"priority\" : \"slow\" , \"jobs\" : [ { \"id\" : " +
      kIdText + " , \"group\" : \"g\" , \"data\" : [ 1 ,\t2 ] } ] }\r\n ";
  Decoder d;
  DecodedBatch b;
  ASSERT_TRUE(d.DecodeBatch(msg, b).ok());
  EXPECT_EQ(b.jobs[0].data, "[ 1 ,\t2 ]");
  EXPECT_EQ(b.priority, Priority::kSlow);
}

TEST(WireBatch, UppercaseHexIdsAreAccepted) {
  Fields job = With(JobFields(), "id", "\"0123456789ABCDEFFEDCBA9876543210\"");
  Decoder d;
  DecodedBatch b;
  ASSERT_TRUE(d.DecodeBatch(Object(BatchFields("[" + Object(job) + "]")), b)
                  .ok());
  EXPECT_EQ(b.jobs[0].id, kId1);
}

// ------------------------------------------------------------ batch: sizes

TEST(WireBatch, JobSizeIsExactAfterTheFirstJobAndOneMoreForTheFirst) {
  // JobSize counts the separating comma. The first job of a batch has none,
  // so it appends JobSize - 1 bytes; every later job appends exactly
  // JobSize. Either way FinishedSize() + JobSize() never underestimates.
  const std::vector<std::string> groups = {
      "", "g", "payment-submit", "q\"", "\\", "ctl\x01\x1f", "\n\t\r\b\f",
      "utf-8 \xc3\xa9\xe6\x97\xa5", "bad \xff\xc3", std::string(500, '\x02')};
  const std::vector<std::string> datas = {
      "null", "{}", R"({"a":[1,2,3],"b":"\u00e9"})", "-1.5e10",
      "\"" + std::string(10000, 'x') + "\""};
  for (const std::string& group : groups) {
    for (const std::string& data : datas) {
      SCOPED_TRACE(testing::Message() << "group size " << group.size()
                                      << ", data size " << data.size());
      const size_t size = BatchWriter::JobSize(group, data);
      BatchWriter w;
      w.Begin(Header());
      for (int i = 0; i < 3; ++i) {
        const size_t before = w.FinishedSize();
        w.AddJob(kId1, group, data);
        const size_t grown = w.FinishedSize() - before;
        EXPECT_EQ(grown, i == 0 ? size - 1 : size) << "job " << i;
        EXPECT_LE(w.FinishedSize(), before + size);
      }
    }
  }
}

TEST(WireBatch, JobSizeMatchesAMixedSequence) {
  BatchWriter w;
  w.Begin(Header());
  size_t predicted = w.FinishedSize();
  const std::vector<InJob> jobs = {{kId1, "a", "1"},
                                   {kId2, "b\"c", R"({"x":"y"})"},
                                   {kId3, "", "[]"},
                                   {kId1, "\x01", "null"}};
  for (const InJob& j : jobs) {
    predicted += BatchWriter::JobSize(j.group, j.data);
    w.AddJob(j.id, j.group, j.data);
    EXPECT_EQ(w.FinishedSize() + 1, predicted);  // Only the first comma.
  }
  EXPECT_EQ(w.jobs(), jobs.size());
}

TEST(WireBatch, FinishedSizeIsExact) {
  BatchWriter w;
  w.Begin(Header());
  EXPECT_EQ(w.jobs(), 0u);
  const size_t empty = w.FinishedSize();
  std::string msg = w.Finish();
  EXPECT_EQ(msg.size(), empty);
  w.Begin(Header());
  w.AddJob(kId1, "g\n", R"({"a":1})");
  w.AddJob(kId2, "h", "2");
  const size_t two = w.FinishedSize();
  msg = w.Finish();
  EXPECT_EQ(msg.size(), two);
  EXPECT_EQ(w.jobs(), 0u);
}

TEST(WireBatch, WriterIsReusableAfterFinish) {
  BatchWriter w;
  w.Begin(Header());
  w.AddJob(kId1, "a", "1");
  const std::string first = w.Finish();
  w.Begin(Header());
  w.AddJob(kId1, "a", "1");
  EXPECT_EQ(w.Finish(), first);
}

// Bytes of the header, beyond the instance, reply topic and processor names.
size_t HeaderOverhead(uint64_t seq, int32_t partition, Priority priority) {
  BatchHeader h = Header(priority);
  h.seq = seq;
  h.reply_partition = partition;
  BatchWriter w;
  w.Begin(h);
  return w.FinishedSize() - h.instance.size() - h.reply_topic.size() -
         h.processor.size();
}

TEST(WireBatch, HeaderFitsBatchOverheadForRealisticSeqAndPartition) {
  // The submitter rejects a job when kBatchOverhead + names + JobSize
  // exceeds max_message_bytes. That estimate holds for batch numbers below
  // 10^9 and reply partitions below 10^4.
  for (Priority p : kAllPriorities) {
    EXPECT_LE(HeaderOverhead(999'999'999, 9'999, p), kBatchOverhead);
  }
}

// The largest header: a 20-digit seq, a 10-digit partition and "realtime".
TEST(WireBatch, HeaderFitsBatchOverheadInTheWorstCase) {
  EXPECT_LE(HeaderOverhead(UINT64_MAX, INT32_MAX, Priority::kRealtime),
            kBatchOverhead);
}

// ------------------------------------------------------------ batch: reject

TEST(WireBatchRejects, NotJson) {
  for (std::string_view text :
       {"", "   ", "nope", "{", "}", "{\"v\":1", "\"str", "\xff\xfe",
        "{\"v\":1,}", "{'v':1}"}) {
    SCOPED_TRACE(text);
    EXPECT_EQ(DecodeBatchText(text).code(), absl::StatusCode::kInvalidArgument);
  }
  ExpectMalformed(DecodeBatchText("nope"), "not");
}

TEST(WireBatchRejects, NotAnObject) {
  for (std::string_view text : {"[]", "42", "null", "\"batch\"", "true"}) {
    SCOPED_TRACE(text);
    ExpectMalformed(DecodeBatchText(text), "not a single JSON object");
  }
}

TEST(WireBatchRejects, WrongVersion) {
  ExpectMalformed(DecodeBatchText(Object(With(BatchFields(), "v", "3"))),
                  "unsupported version 3");
  ExpectMalformed(DecodeBatchText(Object(With(BatchFields(), "v", "0"))),
                  "unsupported version 0");
  ExpectMalformed(DecodeBatchText(Object(With(BatchFields(), "v", "-1"))),
                  "unsupported version -1");
  ExpectMalformed(DecodeBatchText(Object(With(BatchFields(), "v", "\"1\""))),
                  "field 'v'");
  ExpectMalformed(DecodeBatchText(Object(With(BatchFields(), "v", "1.0"))),
                  "field 'v'");
}

TEST(WireBatchRejects, MissingHeaderFieldsAreNamed) {
  ASSERT_TRUE(DecodeBatchText(Object(BatchFields())).ok());
  for (const char* key : {"v", "instance", "seq", "reply_topic",
                          "reply_partition", "processor", "priority", "jobs"}) {
    SCOPED_TRACE(key);
    ExpectMalformed(DecodeBatchText(Object(Without(BatchFields(), key))),
                    std::string("batch lacks ") + key);
  }
  ExpectMalformed(
      DecodeBatchText(Object(Without(Without(BatchFields(), "seq"), "jobs"))),
      "batch lacks seq, jobs");
  ExpectMalformed(DecodeBatchText("{}"), "batch lacks v, instance");
}

TEST(WireBatchRejects, MissingJobFieldsAreNamed) {
  for (const char* key : {"id", "group", "data"}) {
    SCOPED_TRACE(key);
    const std::string jobs = "[" + Object(JobFields()) + "," +
                             Object(Without(JobFields(), key)) + "]";
    ExpectMalformed(DecodeBatchText(Object(BatchFields(jobs))),
                    std::string("job 1 lacks ") + key);
  }
  ExpectMalformed(DecodeBatchText(Object(BatchFields("[{}]"))),
                  "job 0 lacks id, group, data");
}

TEST(WireBatchRejects, FieldsOfTheWrongType) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"instance", "5"},          {"instance", "null"},
      {"seq", "\"7\""},           {"seq", "-1"},
      {"seq", "1.5"},             {"seq", "18446744073709551616"},
      {"reply_topic", "[]"},      {"reply_partition", "-1"},
      {"reply_partition", "2147483648"}, {"reply_partition", "\"3\""},
      {"processor", "{}"},        {"priority", "1"},
      {"jobs", "{}"},             {"jobs", "null"},
      {"jobs", "[1]"},            {"jobs", "[[]]"},
  };
  for (const auto& [key, value] : cases) {
    SCOPED_TRACE(key + " = " + value);
    const absl::Status s =
        DecodeBatchText(Object(With(BatchFields(), key, value)));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()),
                testing::AnyOf(HasSubstr("'" + key + "'"), HasSubstr("job"),
                               HasSubstr("priority")));
  }
  ExpectMalformed(
      DecodeBatchText(Object(With(BatchFields(), "reply_partition", "-1"))),
      "field 'reply_partition'");
  ExpectMalformed(DecodeBatchText(Object(With(BatchFields(), "jobs", "{}"))),
                  "jobs");
  ExpectMalformed(DecodeBatchText(Object(With(BatchFields(), "jobs", "[1]"))),
                  "job");
}

TEST(WireBatchRejects, BadJobIds) {
  const std::vector<std::string> ids = {
      "\"\"",
      "\"0123456789abcdeffedcba987654321\"",    // 31 digits.
      "\"0123456789abcdeffedcba98765432100\"",  // 33 digits.
      "\"0123456789abcdefgedcba9876543210\"",   // 'g'.
      "\"0123456789abcdef fedcba987654321\"",   // Space.
      "\"-123456789abcdeffedcba9876543210\"",
  };
  for (const std::string& id : ids) {
    SCOPED_TRACE(id);
    const std::string jobs = "[" + Object(With(JobFields(), "id", id)) + "]";
    ExpectMalformed(DecodeBatchText(Object(BatchFields(jobs))),
                    "is not 32 hex digits");
  }
  const std::string numeric = "[" + Object(With(JobFields(), "id", "12")) + "]";
  ExpectMalformed(DecodeBatchText(Object(BatchFields(numeric))), "'id'");
}

TEST(WireBatchRejects, UnknownPriority) {
  for (const char* name : {"urgent", "NORMAL", "Realtime", ""}) {
    SCOPED_TRACE(name);
    ExpectMalformed(DecodeBatchText(Object(With(
                        BatchFields(), "priority",
                        std::string("\"") + name + "\""))),
                    std::string("unknown priority '") + name + "'");
  }
}

TEST(WireBatchRejects, TrailingContent) {
  const std::string msg = EncodeBatch(Header(), {{kId1, "g", "1"}});
  for (std::string_view tail : {" x", "}", "]", "{}", ",", "1", "\"s\"",
                                "null", " {\"v\":1}"}) {
    SCOPED_TRACE(tail);
    EXPECT_EQ(DecodeBatchText(msg + std::string(tail)).code(),
              absl::StatusCode::kInvalidArgument);
  }
  // Depending on what follows, simdjson notices at the start or at the end.
  ExpectMalformed(DecodeBatchText(msg + "}"), "trailing content");
  ExpectMalformed(DecodeBatchText(msg + " x"), "not a single JSON object");
  // Whitespace after the message is fine.
  EXPECT_TRUE(DecodeBatchText(msg + " \n\t\r").ok());
}

TEST(WireBatchRejects, EveryStrictPrefixOfAValidMessage) {
  BatchHeader h = Header();
  h.processor = "pro\"cessor";
  const std::string msg = EncodeBatch(
      h, {{kId1, "g", R"({"a":[1,2.5,"x\"y"],"b":{"c":null}})"},
          {kId2, "esc\\aped", "-12.5e3"},
          {kId3, "t", "true"},
          {kId1, "s", "\"str\""}});
  Decoder d;  // Reused on purpose: stale state must not matter.
  DecodedBatch b;
  ASSERT_TRUE(d.DecodeBatch(msg, b).ok());
  for (size_t n = 0; n < msg.size(); ++n) {
    const absl::Status s = d.DecodeBatch(std::string_view(msg.data(), n), b);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument)
        << "prefix of " << n << " bytes: " << msg.substr(0, n);
    EXPECT_FALSE(s.message().empty());
  }
  // And the decoder still works afterwards.
  ASSERT_TRUE(d.DecodeBatch(msg, b).ok());
  EXPECT_EQ(b.jobs.size(), 4u);
}

TEST(WireBatchRejects, InvalidDataAnywhereInside) {
  // On Demand does not look inside a value it skips; the decoder must still
  // refuse data that json::Validate (used at Submit) refuses.
  for (std::string_view data :
       {"tru", "nul", "fals", "-", "01", "1.", ".5", "+1", "0x10",
        "'s'", "{\"a\":tru}", "[1,,2]", "[1 2]", "{\"a\" \"b\"}",
        "{\"a\":\"\\x\"}", "[1e]", "[01]", "{\"a\":1,}", "[1,]",
        "{\"a\":[}]}", "[\"\\u12\"]", "{1:2}", "[NaN]", "[Infinity]",
        "[\"tab\tinside\"]"}) {
    SCOPED_TRACE(data);
    ASSERT_FALSE(json::Validate(data, "data").ok());
    const std::string jobs = "[" + Object(With(JobFields(), "data",
                                               std::string(data))) + "]";
    EXPECT_EQ(DecodeBatchText(Object(BatchFields(jobs))).code(),
              absl::StatusCode::kInvalidArgument);
  }
  const std::string jobs =
      "[" + Object(With(JobFields(), "data", "{\"a\":tru}")) + "]";
  ExpectMalformed(DecodeBatchText(Object(BatchFields(jobs))),
                  "not JSON: Problem while parsing an atom");
}

TEST(WireBatchRejects, InvalidJsonInUnknownFields) {
  // Unknown fields are skipped, but the message as a whole must still be
  // valid JSON.
  for (std::string_view value : {"tru", "[1,,2]", "{\"a\":}", "[}", "01"}) {
    SCOPED_TRACE(value);
    Fields fields = BatchFields();
    fields.emplace_back("future", std::string(value));
    EXPECT_EQ(DecodeBatchText(Object(fields)).code(),
              absl::StatusCode::kInvalidArgument);
    Fields results = ResultFields("[" + OkResult() + "]");
    results.emplace_back("future", std::string(value));
    EXPECT_EQ(DecodeResultsText(Object(results)).code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(WireBatchRejects, UnbalancedBrackets) {
  // On Demand alone accepts some of these, depending on the bytes after the
  // message; the result must not depend on what was decoded before.
  const std::string ok = "[" + OkResult() + "]";
  const std::vector<std::string> texts = {
      Object(ResultFields(ok)) + "]}",
      "{\"results\":" + ok + ",\"instance\":\"x\",\"v\":1,\"later\"::]}",
      Object(BatchFields()) + "]}",
  };
  Decoder used;
  std::string_view instance;
  std::vector<ResultEntry> entries;
  DecodedBatch b;
  // Leave a '}' in the decoder's buffer just past where the next ones end.
  const std::string longer = Object(ResultFields(ok)) + std::string(4000, '}');
  for (const std::string& text : texts) {
    SCOPED_TRACE(text);
    (void)used.DecodeResults(longer, instance, entries);
    EXPECT_FALSE(used.DecodeResults(text, instance, entries).ok());
    EXPECT_FALSE(DecodeResultsText(text).ok());
    EXPECT_FALSE(used.DecodeBatch(text, b).ok());
  }
}

TEST(WireBatch, DecoderAcceptsExactlyWhatValidateAccepts) {
  // Data accepted at Submit must never make a batch undecodable, and data
  // refused at Submit must never reach a handler.
  const std::vector<std::string> datas = {
      "0", "-0", "0.0", "1E5", "1e-400", "1.7976931348623157e308",
      "1.8e308", "18446744073709551615", "18446744073709551616",
      "-9223372036854775809", "123456789012345678901234567890",
      "\"\\ud800\"", "\"\\udc00\"", "\"\\ud83d\\ude00\"", "\"\\u0000\"",
      "[[[[[[[[[[]]]]]]]]]]", "{\"\":{\"\":{\"\":[]}}}", "\"\\/\"",
      "[1e999]", "tru", "[true,false,null]", "\"\x7f\"",
  };
  for (const std::string& data : datas) {
    SCOPED_TRACE(data);
    const bool valid = json::Validate(data, "data").ok();
    const absl::Status s =
        DecodeBatchText(EncodeBatch(Header(), {{kId1, "g", data}}));
    EXPECT_EQ(s.ok(), valid) << s;
  }
}

// ------------------------------------------------------------ results

TEST(WireResults, WritesTheDocumentedLayout) {
  ResultWriter w;
  w.Begin(kInstance);
  EXPECT_TRUE(w.empty());
  w.AddOk(7, 0, kId1, "{\"r\":1}");
  w.AddError(7, 1, kId2, "boom \"x\"");
  EXPECT_EQ(w.results(), 2u);
  EXPECT_FALSE(w.empty());
  const size_t size = w.size();
  const std::string msg = w.Finish();
  EXPECT_EQ(msg.size(), size + 2);
  EXPECT_EQ(msg,
            "{\"v\":2,\"instance\":\"0123456789abcdef0123456789abcdef\","
            "\"results\":[{\"seq\":7,\"i\":0,\"id\":"
            "\"0123456789abcdeffedcba9876543210\",\"status\":\"PROCESSED_OK\","
            "\"data\":{\"r\":1}},{\"seq\":7,\"i\":1,\"id\":"
            "\"00000000000000010000000000000002\",\"status\":"
            "\"PROCESSED_ERROR\",\"error\":\"boom \\\"x\\\"\"}]}");
  EXPECT_EQ(w.results(), 0u);
}

TEST(WireResults, RoundTripsOkAndErrorEntries) {
  const std::string error1 =
      "failed: \"quoted\" \\ back\nslash\ttab \x01 \xc3\xa9 \xf0\x9f\x98\x80";
  const std::string data1 = R"({ "total" : 12.5, "items" : [1, "two"] })";
  ResultWriter w;
  w.Begin(kInstance);
  w.AddOk(7, 0, kId1, data1);
  w.AddError(7, 1, kId2, error1);
  w.AddOk(UINT64_MAX, UINT32_MAX, kId3, "null");
  w.AddError(9, 4, kId1, "");
  w.AddOk(9, 5, kId2, "\"s\\\"\"");
  const std::string msg = w.Finish();

  Decoder d;
  std::string_view instance;
  std::vector<ResultEntry> out;
  ASSERT_TRUE(d.DecodeResults(msg, instance, out).ok()) << msg;
  EXPECT_EQ(instance, kInstance);
  ASSERT_EQ(out.size(), 5u);

  EXPECT_EQ(out[0].seq, 7u);
  EXPECT_EQ(out[0].index, 0u);
  EXPECT_EQ(out[0].id, kId1);
  EXPECT_EQ(out[0].status, JobStatus::kProcessedOk);
  EXPECT_EQ(out[0].data, data1);  // Raw, byte for byte.
  EXPECT_EQ(out[0].error, "");

  EXPECT_EQ(out[1].index, 1u);
  EXPECT_EQ(out[1].id, kId2);
  EXPECT_EQ(out[1].status, JobStatus::kProcessedError);
  EXPECT_EQ(out[1].error, error1);  // Unescaped.
  EXPECT_EQ(out[1].data, "");

  EXPECT_EQ(out[2].seq, UINT64_MAX);
  EXPECT_EQ(out[2].index, UINT32_MAX);
  EXPECT_EQ(out[2].id, kId3);
  EXPECT_EQ(out[2].data, "null");

  EXPECT_EQ(out[3].status, JobStatus::kProcessedError);
  EXPECT_EQ(out[3].error, "");

  EXPECT_EQ(out[4].data, "\"s\\\"\"");
}

TEST(WireResults, EscapedInstanceRoundTrips) {
  ResultWriter w;
  w.Begin("in\"st\\ance");
  w.AddOk(1, 0, kId1, "1");
  Decoder d;
  std::string_view instance;
  std::vector<ResultEntry> out;
  ASSERT_TRUE(d.DecodeResults(w.Finish(), instance, out).ok());
  EXPECT_EQ(instance, "in\"st\\ance");
}

TEST(WireResults, EmptyResultMessageDecodes) {
  ResultWriter w;
  w.Begin(kInstance);
  Decoder d;
  std::string_view instance;
  std::vector<ResultEntry> out = {ResultEntry{}};
  ASSERT_TRUE(d.DecodeResults(w.Finish(), instance, out).ok());
  EXPECT_EQ(instance, kInstance);
  EXPECT_TRUE(out.empty());  // Cleared first.
}

TEST(WireResults, InvalidUtf8InAnErrorIsReplaced) {
  ResultWriter w;
  w.Begin(kInstance);
  w.AddError(1, 0, kId1, "errno text \xc3\x28 cut");
  w.AddOk(1, 1, kId2, "2");
  Decoder d;
  std::string_view instance;
  std::vector<ResultEntry> out;
  ASSERT_TRUE(d.DecodeResults(w.Finish(), instance, out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].error, "errno text \xef\xbf\xbd( cut");
  EXPECT_EQ(out[1].data, "2");
}

TEST(WireResults, OnlyTheFieldOfTheStatusIsKept) {
  const std::string results =
      "[{\"seq\":1,\"i\":0,\"id\":" + kIdText +
      ",\"status\":\"PROCESSED_OK\",\"data\":3,\"error\":\"ignored\"},"
      "{\"seq\":1,\"i\":1,\"id\":" + kIdText +
      ",\"data\":4,\"error\":\"kept\",\"status\":\"PROCESSED_ERROR\"}]";
  Decoder d;
  std::string_view instance;
  std::vector<ResultEntry> out;
  ASSERT_TRUE(
      d.DecodeResults(Object(ResultFields(results)), instance, out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].data, "3");
  EXPECT_EQ(out[0].error, "");
  EXPECT_EQ(out[1].data, "");
  EXPECT_EQ(out[1].error, "kept");
}

TEST(WireResults, UnknownFieldsAreIgnored) {
  Fields fields = ResultFields("[" + OkResult(",\"took_ms\":[1,{}]") + "]");
  fields.emplace_back("processor", "{\"name\":\"payments\"}");
  Decoder d;
  std::string_view instance;
  std::vector<ResultEntry> out;
  ASSERT_TRUE(d.DecodeResults(Object(fields), instance, out).ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data, "{\"r\":1}");
}

TEST(WireResultsRejects, Malformed) {
  const std::string one = "[" + OkResult() + "]";
  ASSERT_TRUE(DecodeResultsText(Object(ResultFields(one))).ok());
  ExpectMalformed(DecodeResultsText("[]"), "not a single JSON object");
  ExpectMalformed(DecodeResultsText("{]"), "");
  ExpectMalformed(DecodeResultsText(Object(With(ResultFields(one), "v", "3"))),
                  "unsupported version 3");
  ExpectMalformed(DecodeResultsText(Object(Without(ResultFields(one), "v"))),
                  "result message lacks v");
  ExpectMalformed(
      DecodeResultsText(Object(Without(ResultFields(one), "instance"))),
      "result message lacks instance");
  ExpectMalformed(
      DecodeResultsText(Object(Without(ResultFields(one), "results"))),
      "result message lacks results");
  ExpectMalformed(
      DecodeResultsText(Object(With(ResultFields(one), "instance", "\"\""))),
      "empty instance");
  ExpectMalformed(
      DecodeResultsText(Object(With(ResultFields(one), "results", "{}"))),
      "results");
  ExpectMalformed(DecodeResultsText(Object(ResultFields("[7]"))), "result");
  ExpectMalformed(DecodeResultsText(Object(ResultFields(one)) + "{}"),
                  "trailing content");
}

TEST(WireResultsRejects, BadEntries) {
  const std::string id = ",\"id\":" + kIdText;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"i\":0" + id + ",\"status\":\"PROCESSED_OK\",\"data\":1}",
       "result 0 lacks seq"},
      {"{\"seq\":1" + id + ",\"status\":\"PROCESSED_OK\",\"data\":1}",
       "result 0 lacks i"},
      {"{\"seq\":1,\"i\":0,\"status\":\"PROCESSED_OK\",\"data\":1}",
       "result 0 lacks id"},
      {"{\"seq\":1,\"i\":0" + id + ",\"data\":1}", "result 0 lacks status"},
      {"{\"seq\":1,\"i\":0" + id + ",\"status\":\"PROCESSED_OK\"}",
       "PROCESSED_OK without data"},
      {"{\"seq\":1,\"i\":0" + id + ",\"status\":\"DONE\"}",
       "unknown result status 'DONE'"},
      {"{\"seq\":1,\"i\":0" + id + ",\"status\":\"SUBMITTED\"}",
       "unknown result status 'SUBMITTED'"},
      {"{\"seq\":1,\"i\":0" + id + ",\"status\":\"NEW\"}",
       "unknown result status 'NEW'"},
      {"{\"seq\":1,\"i\":4294967296" + id +
           ",\"status\":\"PROCESSED_ERROR\",\"error\":\"\"}",
       "result field 'i'"},
      {"{\"seq\":-1,\"i\":0" + id + ",\"status\":\"PROCESSED_ERROR\"}",
       "result field 'seq'"},
      {"{\"seq\":1,\"i\":0,\"id\":\"abc\",\"status\":\"PROCESSED_ERROR\"}",
       "job id 'abc' is not 32 hex digits"},
      {"{\"seq\":1,\"i\":0" + id + ",\"status\":\"PROCESSED_OK\",\"data\":tru}",
       "not JSON"},
      {"{\"seq\":1,\"i\":0" + id +
           ",\"status\":\"PROCESSED_OK\",\"data\":[1,,2]}",
       "not JSON"},
      {"{\"seq\":1,\"i\":0" + id +
           ",\"status\":\"PROCESSED_ERROR\",\"error\":3}",
       "result field 'error'"},
  };
  for (const auto& [entry, fragment] : cases) {
    SCOPED_TRACE(entry);
    ExpectMalformed(DecodeResultsText(Object(ResultFields("[" + entry + "]"))),
                    fragment);
  }
}

TEST(WireResultsRejects, EveryStrictPrefixOfAValidMessage) {
  ResultWriter w;
  w.Begin(kInstance);
  w.AddOk(7, 0, kId1, R"({"a":[1,"x\"y",{"b":null}]})");
  w.AddError(7, 1, kId2, "err \"q\" \\ \n");
  w.AddOk(8, 0, kId3, "12.5e-3");
  w.AddOk(8, 1, kId3, "false");
  const std::string msg = w.Finish();
  Decoder d;
  std::string_view instance;
  std::vector<ResultEntry> out;
  ASSERT_TRUE(d.DecodeResults(msg, instance, out).ok());
  for (size_t n = 0; n < msg.size(); ++n) {
    const absl::Status s =
        d.DecodeResults(std::string_view(msg.data(), n), instance, out);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument)
        << "prefix of " << n << " bytes: " << msg.substr(0, n);
  }
  ASSERT_TRUE(d.DecodeResults(msg, instance, out).ok());
  EXPECT_EQ(out.size(), 4u);
}

TEST(WireResultsRejects, ABatchIsNotAResultMessageAndViceVersa) {
  const std::string batch = EncodeBatch(Header(), {{kId1, "g", "1"}});
  ExpectMalformed(DecodeResultsText(batch), "lacks results");
  ResultWriter w;
  w.Begin(kInstance);
  w.AddOk(1, 0, kId1, "1");
  ExpectMalformed(DecodeBatchText(w.Finish()), "batch lacks seq");
}

// ------------------------------------------------------------ json helpers

TEST(JsonValidate, AcceptsValidValues) {
  for (std::string_view text :
       {"null", "true", "false", "0", "-0", "1.5e-3", "\"\"", "\"a\\u00e9\"",
        "{}", "[]", R"({"a":[1,{"b":null}],"c":"d"})", "  [1, 2]  ", "\n7\t",
        "\"\xc3\xa9\"", "\"\\ud83d\\ude00\""}) {
    SCOPED_TRACE(text);
    EXPECT_TRUE(json::Validate(text, "data").ok());
  }
}

TEST(JsonValidate, AcceptsNumbersNoMachineTypeHolds) {
  // RFC 8259 puts no limit on a number's size; the data passes through as
  // text, so a 30-digit id must not be refused.
  for (std::string_view text :
       {"123456789012345678901234567890", "-123456789012345678901234567890",
        "1e999", "-1.5E-999", "18446744073709551616",
        R"({"id":123456789012345678901234567890,"amount":1e400})",
        "[1e999, \"1e999\", {\"a\": [99999999999999999999999]}]"}) {
    SCOPED_TRACE(text);
    EXPECT_TRUE(json::Validate(text, "data").ok());
  }
  // Beyond the number, the grammar is still enforced.
  for (std::string_view text :
       {"[123456789012345678901234567890,]", "0123456789012345678901234",
        "123456789012345678901234567890x", "1e999 2"}) {
    SCOPED_TRACE(text);
    EXPECT_FALSE(json::Validate(text, "data").ok());
  }
}

TEST(JsonNeutralizeNumbers, ReplacesNumberTokensOnly) {
  EXPECT_EQ(json::NeutralizeNumbers(R"([1e999,-12.5,"1e999",{"k-1":7}])"),
            R"([0,0,"1e999",{"k-1":0}])");
  // Tokens that are not JSON numbers stay, so they are still refused.
  EXPECT_EQ(json::NeutralizeNumbers("[01,1.,-,+1,1e]"), "[01,1.,-,+1,1e]");
  // Escaped quotes do not end a string early.
  EXPECT_EQ(json::NeutralizeNumbers(R"(["a\"1",2])"), R"(["a\"1",0])");
}

TEST(JsonValidate, RejectsInvalidValuesNamingThem) {
  for (std::string_view text :
       {"", "  ", "tru", "nul", "{", "[1,]", "{\"a\":1,}", "01", "1e+",
        "'x'", "[1] [2]", "1 2", "{\"a\"}", "\"unterminated", "\"\xff\"",
        "\"\\x\"", "NaN", "undefined", "{a:1}"}) {
    SCOPED_TRACE(text);
    const absl::Status s = json::Validate(text, "job data");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.message()), HasSubstr("job data is not valid"));
  }
}

TEST(JsonValidate, HandlesLargeAndRepeatedInput) {
  std::string big = "[";
  for (int i = 0; i < 100000; ++i) big += (i ? ",\"x\"" : "\"x\"");
  big += "]";
  EXPECT_TRUE(json::Validate(big, "data").ok());
  EXPECT_TRUE(json::Validate("1", "data").ok());  // Smaller after larger.
  EXPECT_FALSE(json::Validate(big.substr(0, big.size() - 1), "data").ok());
}

// Parses `quoted` and returns the string it holds.
std::string Unquote(const std::string& quoted) {
  simdjson::dom::parser parser;
  std::string_view s;
  EXPECT_EQ(parser.parse(quoted).get_string().get(s), simdjson::SUCCESS)
      << quoted;
  return std::string(s);
}

TEST(JsonQuote, QuotedSizeEqualsAppendedSize) {
  std::vector<std::string> tricky = {
      "", "a", "\"", "\\", "\"\\\"", "\n\t\r\b\f", "/", "\x7f",
      std::string("\0", 1), std::string("a\0b", 3),
      "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80",  // Valid UTF-8.
      "\xff", "\xc3", "\xc3\x28", "\xe6\x97", "\xed\xa0\x80",  // Invalid.
      "\xc0\xaf", "\xf4\x90\x80\x80", "\xf0\x9f\x98", "\x80\x80",
      std::string(1000, '\x01'), std::string(1000, 'x')};
  for (int c = 0; c < 256; ++c) tricky.push_back(std::string(1, char(c)));
  for (const std::string& s : tricky) {
    SCOPED_TRACE(testing::PrintToString(s));
    std::string out = "prefix";
    json::AppendQuoted(out, s);
    EXPECT_EQ(out.size() - 6, json::QuotedSize(s));
    EXPECT_EQ(out.compare(0, 6, "prefix"), 0);
    // Always a valid JSON string.
    EXPECT_TRUE(json::Validate(std::string_view(out).substr(6), "quoted").ok())
        << out;
  }
}

TEST(JsonQuote, ValidUtf8RoundTripsExactly) {
  std::string all_ascii;
  for (int c = 0; c < 128; ++c) all_ascii.push_back(char(c));
  for (const std::string& s :
       {all_ascii, std::string("\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80"),
        std::string("\xef\xbf\xbf \xf4\x8f\xbf\xbf \xee\x80\x80"),
        std::string("q\"b\\s/")}) {
    std::string out;
    json::AppendQuoted(out, s);
    EXPECT_EQ(Unquote(out), s);
  }
}

TEST(JsonQuote, UsesShortEscapesAndLowercaseHex) {
  std::string out;
  json::AppendQuoted(out, "a\"b\\c\nd\te\rf\bg\fh\x01i\x1fj/");
  EXPECT_EQ(out, R"("a\"b\\c\nd\te\rf\bg\fh\u0001i\u001fj/")");
}

TEST(JsonQuote, InvalidUtf8BecomesReplacementCharacters) {
  std::string out;
  json::AppendQuoted(out, "a\xff" "b\xc3");
  EXPECT_EQ(Unquote(out), "a\xef\xbf\xbd" "b\xef\xbf\xbd");
  out.clear();
  json::AppendQuoted(out, "\xed\xa0\x80");  // A UTF-16 surrogate: 3 bytes.
  EXPECT_EQ(Unquote(out), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
  out.clear();
  json::AppendQuoted(out, "\"\xff\"");  // Escaping still applies.
  EXPECT_EQ(out, "\"\\\"\xef\xbf\xbd\\\"\"");
}

TEST(JsonTrim, TrimsJsonWhitespaceOnly) {
  EXPECT_EQ(json::TrimWhitespace(" \t\r\n[1] \n"), "[1]");
  EXPECT_EQ(json::TrimWhitespace("   "), "");
  EXPECT_EQ(json::TrimWhitespace(""), "");
  EXPECT_EQ(json::TrimWhitespace("\v1\f"), "\v1\f");  // Not JSON whitespace.
  EXPECT_EQ(json::TrimWhitespace("\" a \""), "\" a \"");
}

}  // namespace
}  // namespace batchbus::wire
