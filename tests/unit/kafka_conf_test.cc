// Which librdkafka properties reach producers and consumers: kafka.* keys
// apply to both, kafka.producer.* and kafka.consumer.* to one kind only.
#include "kafka.h"
#include "producer.h"

#include <string>

#include "batchbus/config.h"
#include "gtest/gtest.h"

namespace batchbus {
namespace {

std::string Get(rd_kafka_conf_t* conf, const char* property) {
  char value[512];
  size_t size = sizeof value;
  if (rd_kafka_conf_get(conf, property, value, &size) != RD_KAFKA_CONF_OK) {
    return "<unknown property>";
  }
  return value;
}

Config TestConfig() {
  Config c;
  c.brokers = "kafka://127.0.0.1:1";  // Never contacted: only configs are built.
  return c;
}

TEST(KafkaConfTest, ScopedPropertiesReachOnlyTheirRole) {
  Config c = TestConfig();
  ASSERT_TRUE(c.Set("kafka.client.rack", "rack-1").ok());
  ASSERT_TRUE(c.Set("kafka.producer.compression.codec", "lz4").ok());
  ASSERT_TRUE(c.Set("kafka.consumer.fetch.min.bytes", "4096").ok());

  auto producer = kafka::MakeConf(c, kafka::Role::kProducer, {});
  ASSERT_TRUE(producer.ok()) << producer.status();
  EXPECT_EQ(Get(producer->get(), "client.rack"), "rack-1");
  EXPECT_EQ(Get(producer->get(), "compression.codec"), "lz4");
  EXPECT_EQ(Get(producer->get(), "fetch.min.bytes"), "1");  // librdkafka's default

  auto consumer = kafka::MakeConf(c, kafka::Role::kConsumer, {});
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  EXPECT_EQ(Get(consumer->get(), "client.rack"), "rack-1");
  EXPECT_EQ(Get(consumer->get(), "fetch.min.bytes"), "4096");
  EXPECT_EQ(Get(consumer->get(), "compression.codec"), "none");
}

TEST(KafkaConfTest, ProcessorInstanceIsTheGroupInstanceIdUnlessTheUserSetsOne) {
  Config c = TestConfig();
  auto dynamic = kafka::MakeConf(c, kafka::Role::kConsumer, {});
  ASSERT_TRUE(dynamic.ok()) << dynamic.status();
  ASSERT_TRUE(kafka::SetStaticMembership(c, dynamic->get()).ok());
  EXPECT_EQ(Get(dynamic->get(), "group.instance.id"), "<unknown property>");  // unset

  ASSERT_TRUE(c.Set("processor_instance", "worker-3").ok());
  auto fixed = kafka::MakeConf(c, kafka::Role::kConsumer, {});
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  ASSERT_TRUE(kafka::SetStaticMembership(c, fixed->get()).ok());
  EXPECT_EQ(Get(fixed->get(), "group.instance.id"), "worker-3");

  ASSERT_TRUE(c.Set("kafka.consumer.group.instance.id", "own-id").ok());
  auto own = kafka::MakeConf(c, kafka::Role::kConsumer, {});
  ASSERT_TRUE(own.ok()) << own.status();
  ASSERT_TRUE(kafka::SetStaticMembership(c, own->get()).ok());
  EXPECT_EQ(Get(own->get(), "group.instance.id"), "own-id");
}

TEST(KafkaConfTest, ScopedBeatsSharedAndBothBeatLibraryDefaults) {
  Config c = TestConfig();
  ASSERT_TRUE(c.Set("kafka.producer.linger.ms", "9").ok());
  ASSERT_TRUE(c.Set("kafka.linger.ms", "5").ok());
  ASSERT_TRUE(c.Set("kafka.consumer.fetch.wait.max.ms", "3").ok());

  auto producer =
      kafka::MakeConf(c, kafka::Role::kProducer, {{"linger.ms", "0"}});
  ASSERT_TRUE(producer.ok()) << producer.status();
  EXPECT_EQ(Get(producer->get(), "linger.ms"), "9");

  auto consumer = kafka::MakeConf(c, kafka::Role::kConsumer,
                                  {{"fetch.wait.max.ms", "10"}});
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  EXPECT_EQ(Get(consumer->get(), "fetch.wait.max.ms"), "3");

  // Nothing set for the producer: the library's default stands.
  Config plain = TestConfig();
  auto defaulted =
      kafka::MakeConf(plain, kafka::Role::kProducer, {{"linger.ms", "0"}});
  ASSERT_TRUE(defaulted.ok());
  EXPECT_EQ(Get(defaulted->get(), "linger.ms"), "0");
  EXPECT_TRUE(kafka::UserSets(c, kafka::Role::kProducer, "linger.ms"));
  EXPECT_TRUE(kafka::UserSets(c, kafka::Role::kConsumer, "fetch.wait.max.ms"));
  EXPECT_FALSE(kafka::UserSets(c, kafka::Role::kProducer, "fetch.wait.max.ms"));
  EXPECT_FALSE(kafka::UserSets(plain, kafka::Role::kProducer, "linger.ms"));
}

struct NoReports : kafka::DeliveryHandler {
  void OnDelivery(rd_kafka_message_t*) override {}
};

// A producer's settings, read back from its handle.
std::string ProducerProperty(const Config& c, const char* property) {
  NoReports reports;
  auto p = kafka::Producer::Create(c, {}, &reports, -1);
  if (!p.ok()) return p.status().ToString();
  const rd_kafka_conf_t* conf = rd_kafka_conf(p->get());
  char value[512];
  size_t size = sizeof value;
  const std::string out =
      rd_kafka_conf_get(conf, property, value, &size) == RD_KAFKA_CONF_OK
          ? value
          : "<unknown property>";
  p->Close(absl::Now(), absl::ZeroDuration());
  return out;
}

TEST(KafkaConfTest, ProducersWaitForAllReplicasAndAreIdempotentByDefault) {
  const Config plain = TestConfig();
  // librdkafka spells acks=all as -1.
  EXPECT_EQ(ProducerProperty(plain, "acks"), "-1");
  EXPECT_EQ(ProducerProperty(plain, "enable.idempotence"), "true");
  Config c = TestConfig();
  ASSERT_TRUE(c.Set("kafka.producer.acks", "1").ok());
  ASSERT_TRUE(c.Set("kafka.producer.enable.idempotence", "false").ok());
  EXPECT_EQ(ProducerProperty(c, "acks"), "1");
  EXPECT_EQ(ProducerProperty(c, "enable.idempotence"), "false");
}

TEST(KafkaConfTest, UnknownPropertyNamesTheConfigKey) {
  Config c = TestConfig();
  ASSERT_TRUE(c.Set("kafka.consumer.no.such.property", "1").ok());
  auto consumer = kafka::MakeConf(c, kafka::Role::kConsumer, {});
  ASSERT_FALSE(consumer.ok());
  EXPECT_EQ(consumer.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(consumer.status().message().find("kafka.consumer.no.such.property"),
            std::string::npos)
      << consumer.status();
  // The producer never sees a consumer-scoped property.
  EXPECT_TRUE(kafka::MakeConf(c, kafka::Role::kProducer, {}).ok());
}

}  // namespace
}  // namespace batchbus
