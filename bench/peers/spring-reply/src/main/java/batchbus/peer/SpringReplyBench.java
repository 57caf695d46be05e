package batchbus.peer;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.springframework.kafka.core.DefaultKafkaConsumerFactory;
import org.springframework.kafka.core.DefaultKafkaProducerFactory;
import org.springframework.kafka.core.KafkaTemplate;
import org.springframework.kafka.listener.ContainerProperties;
import org.springframework.kafka.listener.KafkaMessageListenerContainer;
import org.springframework.kafka.listener.MessageListener;
import org.springframework.kafka.requestreply.ReplyingKafkaTemplate;
import org.springframework.kafka.requestreply.RequestReplyFuture;
import org.springframework.kafka.support.KafkaHeaders;

/**
 * The Spring peer of batchbus-bench: request/reply with Spring Kafka's
 * ReplyingKafkaTemplate, one record per request, and an echo listener in the
 * same JVM that does what {@code @KafkaListener @SendTo} does: it sends the
 * request's value to the request's REPLY_TOPIC with its CORRELATION_ID.
 *
 * <p>Measures requests/s with up to {@code -window} outstanding requests,
 * then the round trip of sequential single requests (p50/p99/max), CPU per
 * request and peak RSS of this JVM. Writes the same JSON keys as
 * batchbus-bench; keys that do not apply are null.
 *
 * <p>Client settings are Spring's and Kafka's defaults (acks=all,
 * linger.ms=5 in kafka-clients 4.x), as a Spring user would have them.
 */
public final class SpringReplyBench {
  private SpringReplyBench() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> a = new HashMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      a.put(args[i].replaceFirst("^-+", ""), args[i + 1]);
    }
    final String bootstrap = a.getOrDefault("bootstrap", "127.0.0.1:9092");
    final int jobs = Integer.parseInt(a.getOrDefault("jobs", "20000"));
    final int jobBytes = Integer.parseInt(a.getOrDefault("job-bytes", "200"));
    final int window = Integer.parseInt(a.getOrDefault("window", "1000"));
    final int samples = Integer.parseInt(a.getOrDefault("samples", "1000"));
    final int partitions = Integer.parseInt(a.getOrDefault("partitions", "4"));
    final String json = a.get("json");

    final String suffix = UUID.randomUUID().toString().substring(0, 8);
    final String requests = "spring.requests." + suffix;
    final String replies = "spring.replies." + suffix;
    try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap))) {
      admin.createTopics(List.of(new NewTopic(requests, partitions, (short) 1),
                                 new NewTopic(replies, partitions, (short) 1)))
          .all().get(30, TimeUnit.SECONDS);
    }

    Map<String, Object> pp = new HashMap<>();
    pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
    pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class);
    DefaultKafkaProducerFactory<String, String> pf = new DefaultKafkaProducerFactory<>(pp);

    Map<String, Object> cp = new HashMap<>();
    cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
    cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class);
    cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");

    // The echo service (what @KafkaListener + @SendTo does).
    KafkaTemplate<String, String> echoTemplate = new KafkaTemplate<>(pf);
    ContainerProperties echoProps = new ContainerProperties(requests);
    echoProps.setGroupId("spring-echo-" + suffix);
    echoProps.setMessageListener((MessageListener<String, String>) rec -> {
      Header replyTopic = rec.headers().lastHeader(KafkaHeaders.REPLY_TOPIC);
      Header correlation = rec.headers().lastHeader(KafkaHeaders.CORRELATION_ID);
      ProducerRecord<String, String> out = new ProducerRecord<>(
          new String(replyTopic.value(), StandardCharsets.UTF_8), null, rec.key(), rec.value());
      out.headers().add(KafkaHeaders.CORRELATION_ID, correlation.value());
      echoTemplate.send(out);
    });
    KafkaMessageListenerContainer<String, String> echo =
        new KafkaMessageListenerContainer<>(new DefaultKafkaConsumerFactory<>(cp), echoProps);
    echo.start();

    // The requesting side.
    ContainerProperties replyProps = new ContainerProperties(replies);
    replyProps.setGroupId("spring-replies-" + suffix);
    KafkaMessageListenerContainer<String, String> replyContainer =
        new KafkaMessageListenerContainer<>(new DefaultKafkaConsumerFactory<>(cp), replyProps);
    ReplyingKafkaTemplate<String, String, String> template =
        new ReplyingKafkaTemplate<>(pf, replyContainer);
    template.setDefaultReplyTimeout(Duration.ofSeconds(60));
    template.setDefaultTopic(requests);
    template.start();
    if (!template.waitForAssignment(Duration.ofSeconds(60))) {
      throw new IllegalStateException("reply container got no partitions");
    }

    final String data = makeData(jobBytes);
    // Warm-up: the echo group joins, connections and JIT settle.
    for (int i = 0; i < 200; i++) {
      template.sendAndReceive(new ProducerRecord<>(requests, data)).get(60, TimeUnit.SECONDS);
    }

    // Throughput: up to `window` outstanding requests.
    final Semaphore room = new Semaphore(window);
    final CountDownLatch done = new CountDownLatch(jobs);
    final AtomicLong ok = new AtomicLong();
    final AtomicLong failed = new AtomicLong();
    final long cpu0 = processCpuNanos();
    final long t0 = System.nanoTime();
    for (int i = 0; i < jobs; i++) {
      room.acquire();
      RequestReplyFuture<String, String, String> f =
          template.sendAndReceive(new ProducerRecord<>(requests, data));
      f.whenComplete((ConsumerRecord<String, String> r, Throwable e) -> {
        if (e == null && data.equals(r.value())) {
          ok.incrementAndGet();
        } else {
          failed.incrementAndGet();
        }
        room.release();
        done.countDown();
      });
    }
    if (!done.await(300, TimeUnit.SECONDS)) {
      System.err.println("spring-reply: not all replies arrived");
    }
    final long t1 = System.nanoTime();
    final long cpu1 = processCpuNanos();
    final double seconds = (t1 - t0) / 1e9;
    final double perSecond = jobs / seconds;
    final double cpuUsPerJob = (cpu1 - cpu0) / 1e3 / jobs;

    // Latency: sequential single requests.
    List<Double> lat = new ArrayList<>(samples);
    for (int i = 0; i < samples; i++) {
      long s = System.nanoTime();
      ConsumerRecord<String, String> r =
          template.sendAndReceive(new ProducerRecord<>(requests, data)).get(60, TimeUnit.SECONDS);
      lat.add((System.nanoTime() - s) / 1e3);
      if (!data.equals(r.value())) failed.incrementAndGet();
    }
    List<Double> sorted = new ArrayList<>(lat);
    Collections.sort(sorted);
    final long lost = jobs - ok.get() + failed.get();
    final double rssMb = peakRssMb();

    System.out.printf(Locale.ROOT,
        "spring-reply  bootstrap=%s  jobs=%d  job_bytes=%d  window=%d%n"
            + "  ReplyingKafkaTemplate %10.0f req/s   (%.3f s)%n"
            + "  CPU per request       %10.2f us (whole JVM)%n"
            + "  sequential round trip p50 %8.0f us  p99 %8.0f  max %8.0f  (n=%d)%n"
            + "  peak RSS              %10.1f MiB%n  lost %d%n",
        bootstrap, jobs, jobBytes, window, perSecond, seconds, cpuUsPerJob,
        pct(sorted, 0.5), pct(sorted, 0.99), sorted.get(sorted.size() - 1), sorted.size(),
        rssMb, lost);

    if (json != null) {
      StringBuilder sb = new StringBuilder("{\n");
      kv(sb, "scenario", "\"spring-reply\"");
      kv(sb, "broker", "\"kafka://" + bootstrap + "\"");
      kv(sb, "jobs", Integer.toString(jobs));
      kv(sb, "job_bytes", Integer.toString(jobBytes));
      kv(sb, "batch_max", "null");
      kv(sb, "window", Integer.toString(window));
      kv(sb, "jobs_per_s", fmt(perSecond, 0));
      kv(sb, "raw_msgs_per_s", "null");
      kv(sb, "ratio", "null");
      kv(sb, "rt_p50_us", fmt(pct(sorted, 0.5), 0));
      kv(sb, "rt_p99_us", fmt(pct(sorted, 0.99), 0));
      kv(sb, "rt_max_us", fmt(sorted.get(sorted.size() - 1), 0));
      kv(sb, "rt_backlog_p99_us", "null");
      kv(sb, "cpu_us_per_job", fmt(cpuUsPerJob, 3));
      kv(sb, "rss_mb", fmt(rssMb, 1));
      kv(sb, "bytes_per_inflight_job", "null");
      kv(sb, "lost", Long.toString(lost));
      kv(sb, "duplicates", "0");
      StringBuilder arr = new StringBuilder("[");
      for (int i = 0; i < lat.size(); i++) {
        if (i > 0) arr.append(',');
        arr.append(Math.round(lat.get(i)));
      }
      sb.append("  \"samples_realtime_idle_us\": ").append(arr).append("]\n}\n");
      Files.writeString(Path.of(json), sb.toString());
    }

    template.stop();
    echo.stop();
    pf.destroy();
    System.out.println(lost == 0 ? "OK" : "FAILED");
    System.exit(lost == 0 ? 0 : 1);
  }

  static String makeData(int bytes) {
    if (bytes < 8) return "1";
    return "{\"d\":\"" + "x".repeat(bytes - 8) + "\"}";
  }

  static double pct(List<Double> sorted, double q) {
    if (sorted.isEmpty()) return 0;
    int i = (int) Math.round(q * (sorted.size() - 1));
    return sorted.get(Math.min(i, sorted.size() - 1));
  }

  static void kv(StringBuilder sb, String k, String v) {
    sb.append("  \"").append(k).append("\": ").append(v).append(",\n");
  }

  static String fmt(double v, int digits) {
    return String.format(Locale.ROOT, "%." + digits + "f", v);
  }

  static long processCpuNanos() {
    java.lang.management.OperatingSystemMXBean os = ManagementFactory.getOperatingSystemMXBean();
    if (os instanceof com.sun.management.OperatingSystemMXBean sun) {
      return sun.getProcessCpuTime();
    }
    return 0;
  }

  static double peakRssMb() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
        if (line.startsWith("VmHWM:")) {
          return Long.parseLong(line.replaceAll("[^0-9]", "")) / 1024.0;
        }
      }
    } catch (IOException | NumberFormatException e) {
      // Not Linux: no RSS.
    }
    return 0;
  }
}
