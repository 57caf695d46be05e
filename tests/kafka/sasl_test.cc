// SASL_SSL (kafka tier): the test broker's SASL_SSL listener
// (scripts/kafka start --sasl: TLS with a CA made at start, SASL PLAIN and
// SCRAM-SHA-512, ACLs enforced). Jobs run through it; a wrong password or
// an untrusted certificate fails Create within seconds, naming the cause
// and never the secret; a user allowed to write a processor's job topics
// but not to read them can submit, and its processor is refused.
//
// The listener is on $BATCHBUS_KAFKA_SASL_PORT (default the broker's port
// + 10), its CA and passwords in $BATCHBUS_KAFKA_STATE/sasl (default
// /tmp/batchbus-kafka-<port>/sasl). Plain connections to the broker are
// ANONYMOUS, a super user: the test sets up ACLs through them.
#include <sys/stat.h>

#include <mutex>
#include <thread>

#include "gmock/gmock.h"
#include "kafka/kafka_tier.h"

namespace batchbus::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr absl::Duration kCreateBound = absl::Seconds(10);

std::string SaslDir() {
  return EnvOr("BATCHBUS_KAFKA_STATE",
               "/tmp/batchbus-kafka-" + std::to_string(KafkaPort())) +
         "/sasl";
}

int SaslPort() {
  return std::atoi(
      EnvOr("BATCHBUS_KAFKA_SASL_PORT", std::to_string(KafkaPort() + 10))
          .c_str());
}

std::string Password(const std::string& user) {
  std::string p = ReadFile(SaslDir() + "/" + user + ".password");
  while (!p.empty() && (p.back() == '\n' || p.back() == '\r')) p.pop_back();
  return p;
}

// Every log line (and its fields) while it lives.
class LogCapture {
 public:
  LogCapture() {
    SetLogSink([this](const LogRecord& r) {
      std::string line(r.message);
      for (size_t i = 0; i < r.num_fields; ++i) {
        line += " " + std::string(r.fields[i].key) + "=" +
                std::string(r.fields[i].value);
      }
      std::lock_guard<std::mutex> lock(mu_);
      text_ += line + "\n";
    });
  }
  ~LogCapture() { SetLogSink(nullptr); }
  std::string text() {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }

 private:
  std::mutex mu_;
  std::string text_;
};

class SaslTest : public ClusterTest {
 protected:
  void SetUp() override {
    ClusterTest::SetUp();
    struct stat st;
    ASSERT_EQ(stat((SaslDir() + "/ca.pem").c_str(), &st), 0)
        << "no SASL material in " << SaslDir()
        << ": start the test broker with `scripts/kafka start --sasl` "
           "(scripts/test does)";
    plain_ = config_;  // The PLAINTEXT listener: ANONYMOUS, a super user.
    config_.close_timeout = absl::Seconds(5);
  }

  // config_ on the SASL_SSL listener as `user`.
  Config As(const std::string& user, const std::string& password,
            const std::string& mechanism = "PLAIN",
            const std::string& ca = "ca.pem") {
    Config c = config_;
    c.brokers = "kafka://127.0.0.1:" + std::to_string(SaslPort());
    c.kafka["security.protocol"] = "SASL_SSL";
    c.kafka["sasl.mechanism"] = mechanism;
    c.kafka["sasl.username"] = user;
    c.kafka["sasl.password"] = password;
    c.kafka["ssl.ca.location"] = SaslDir() + "/" + ca;
    return c;
  }

  // Allows `operation` on `name` (a prefix with kPrefixed) to `user`.
  struct Acl {
    rd_kafka_ResourceType_t type;
    std::string name;
    rd_kafka_ResourcePatternType_t pattern;
    rd_kafka_AclOperation_t operation;
  };
  void Allow(const std::string& user, const std::vector<Acl>& acls) {
    auto conf = kafka::MakeConf(plain_, kafka::Role::kProducer, {});
    ASSERT_TRUE(conf.ok()) << conf.status();
    auto rk = kafka::MakeHandle(RD_KAFKA_PRODUCER, std::move(*conf));
    ASSERT_TRUE(rk.ok()) << rk.status();
    std::vector<rd_kafka_AclBinding_t*> bindings;
    char err[512];
    for (const Acl& a : acls) {
      rd_kafka_AclBinding_t* b = rd_kafka_AclBinding_new(
          a.type, a.name.c_str(), a.pattern, ("User:" + user).c_str(), "*",
          a.operation, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, err, sizeof err);
      ASSERT_NE(b, nullptr) << err;
      bindings.push_back(b);
    }
    kafka::QueuePtr queue(rd_kafka_queue_new(rk->get()));
    rd_kafka_CreateAcls(rk->get(), bindings.data(), bindings.size(), nullptr,
                        queue.get());
    kafka::EventPtr ev(rd_kafka_queue_poll(queue.get(), 30'000));
    rd_kafka_AclBinding_destroy_array(bindings.data(), bindings.size());
    ASSERT_TRUE(ev) << "CreateAcls: no answer in 30 s";
    ASSERT_EQ(rd_kafka_event_error(ev.get()), RD_KAFKA_RESP_ERR_NO_ERROR)
        << rd_kafka_event_error_string(ev.get());
    size_t n = 0;
    const rd_kafka_acl_result_t** results = rd_kafka_CreateAcls_result_acls(
        rd_kafka_event_CreateAcls_result(ev.get()), &n);
    for (size_t i = 0; i < n; ++i) {
      const rd_kafka_error_t* e = rd_kafka_acl_result_error(results[i]);
      ASSERT_EQ(e, nullptr) << rd_kafka_error_string(e);
    }
    // ACLs reach the brokers' authorizers through the metadata log.
    absl::SleepFor(absl::Seconds(1));
  }

  // Everything under the test's namespace, topics and groups.
  void AllowAll(const std::string& user) {
    Allow(user, {{RD_KAFKA_RESOURCE_TOPIC, config_.ns,
                  RD_KAFKA_RESOURCE_PATTERN_PREFIXED, RD_KAFKA_ACL_OPERATION_ALL},
                 {RD_KAFKA_RESOURCE_GROUP, config_.ns,
                  RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
                  RD_KAFKA_ACL_OPERATION_ALL}});
  }

  // Submitter::Create with `config`, which must fail: its status, checked
  // to come within kCreateBound and to hold no password.
  absl::Status CreateMustFail(const Config& config, const std::string& secret) {
    LogCapture logs;
    const absl::Time start = absl::Now();
    auto submitter = Submitter::Create(config);
    const absl::Duration took = absl::Now() - start;
    EXPECT_FALSE(submitter.ok());
    EXPECT_LT(took, kCreateBound) << "Create waited " << took;
    auto processor = Processor::Create(config, "sasl");
    EXPECT_FALSE(processor.ok());
    EXPECT_LT(absl::Now() - start - took, kCreateBound);
    const std::string all =
        submitter.status().ToString() + "\n" +
        processor.status().ToString() + "\n" + logs.text();
    EXPECT_THAT(all, Not(HasSubstr(secret))) << "a secret leaked:\n" << all;
    EXPECT_EQ(submitter.status().code(), processor.status().code());
    return submitter.status();
  }

  Config plain_;
};

TEST_F(SaslTest, JobsRunThroughTheSaslSslListener) {
  AllowAll("batchbus");
  const Config config = As("batchbus", Password("batchbus"));
  RunningProcessor processor(config, "sasl", {{"echo", Echo()}});
  ASSERT_NE(processor.get(), nullptr);
  auto submitter = NewSubmitter(config);
  ASSERT_TRUE(submitter);
  Collector results;
  constexpr int kJobs = 300;
  for (int i = 0; i < kJobs; ++i) {
    const Priority p = kAllPriorities[i % 3];
    ASSERT_TRUE(submitter
                    ->Submit(MakeJob("sasl", p, "{\"i\":" + std::to_string(i) + "}"),
                             results.Callback())
                    .ok());
  }
  ASSERT_TRUE(results.WaitFor(kJobs, absl::Seconds(60)))
      << results.total() << " of " << kJobs << " results";
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk), kJobs);
  EXPECT_EQ(results.MaxCallbacksPerJob(), 1u);
}

TEST_F(SaslTest, WrongPasswordFailsCreateFastNamingTheLogin) {
  const std::string wrong = "wrong-" + JobId::Random().ToString();
  const absl::Status s = CreateMustFail(As("batchbus", wrong), wrong);
  EXPECT_TRUE(absl::IsUnauthenticated(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("SASL login"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("sasl.password"));
}

TEST_F(SaslTest, UntrustedCertificateFailsCreateFastNamingTheHandshake) {
  const std::string password = Password("batchbus");
  const absl::Status s = CreateMustFail(
      As("batchbus", password, "PLAIN", "untrusted-ca.pem"), password);
  EXPECT_TRUE(absl::IsUnauthenticated(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("TLS handshake"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("certificate verify failed"));
}

// Kafka 4.x refuses the SCRAM proofs of librdkafka before 2.6.1 whatever
// the password (Debian 12 ships 2.0.2); with a newer librdkafka, SCRAM
// works like PLAIN.
TEST_F(SaslTest, ScramLoginWorksOrSaysWhyThisLibrdkafkaCannot) {
  AllowAll("batchbus");
  const std::string password = Password("batchbus");
  const Config config = As("batchbus", password, "SCRAM-SHA-512");
  if (rd_kafka_version() < 0x020601ff) {
    const absl::Status s = CreateMustFail(config, password);
    EXPECT_TRUE(absl::IsUnauthenticated(s)) << s;
    EXPECT_THAT(std::string(s.message()), HasSubstr("older than 2.6.1"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("SASL PLAIN over TLS"));
    return;
  }
  auto submitter = NewSubmitter(config);
  ASSERT_TRUE(submitter);
  RunningProcessor processor(config, "sasl", {{"echo", Echo()}});
  auto r = submitter->SubmitAndWait(MakeJob("sasl", Priority::kRealtime),
                                    absl::Seconds(30));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, JobStatus::kProcessedOk) << r->error;
}

// The writer may write the job topics and read its replies; nothing else.
TEST_F(SaslTest, WriteOnlyUserSubmitsAndItsProcessorIsRefused) {
  AllowAll("batchbus");
  Allow("writer",
        {{RD_KAFKA_RESOURCE_TOPIC, config_.ns, RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
          RD_KAFKA_ACL_OPERATION_WRITE},
         {RD_KAFKA_RESOURCE_TOPIC, config_.ReplyTopic(),
          RD_KAFKA_RESOURCE_PATTERN_LITERAL, RD_KAFKA_ACL_OPERATION_READ}});
  // The trusted processor creates the topics and serves the jobs.
  RunningProcessor processor(As("batchbus", Password("batchbus")), "sasl",
                             {{"echo", Echo()}});
  ASSERT_NE(processor.get(), nullptr);

  const Config writer = As("writer", Password("writer"));
  auto submitter = NewSubmitter(writer);
  ASSERT_TRUE(submitter);
  Collector results;
  constexpr int kJobs = 60;
  for (int i = 0; i < kJobs; ++i) {
    ASSERT_TRUE(submitter
                    ->Submit(MakeJob("sasl", kAllPriorities[i % 3]),
                             results.Callback())
                    .ok());
  }
  ASSERT_TRUE(results.WaitFor(kJobs, absl::Seconds(60)))
      << results.total() << " of " << kJobs << " results";
  EXPECT_EQ(results.Count(JobStatus::kProcessedOk), kJobs);

  const absl::Time start = absl::Now();
  auto refused = Processor::Create(writer, "sasl");
  EXPECT_LT(absl::Now() - start, kCreateBound);
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsPermissionDenied(refused.status())) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("consumer group " + config_.GroupIdFor("sasl")));
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("READ"));
}

}  // namespace
}  // namespace batchbus::testing
