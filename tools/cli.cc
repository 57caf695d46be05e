#include "strcat.h"
#include "cli.h"

#include <iostream>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "batchbus/job.h"

namespace batchbus::cli {

void BuildApp(CLI::App& app, Options& o) {
  app.description(
      "batchbus: submit jobs, run a processor, and inspect what a batchbus "
      "deployment has in Kafka (lag, topics, dead letters).\n"
      "The config is the library's: --config FILE or $BATCHBUS_CONFIG, then "
      "BATCHBUS_* variables, then the options below.");
  app.require_subcommand(1);
  app.fallthrough();  // Global options may follow the subcommand.
  app.add_option("--config", o.global.config_path,
                 "batchbus config file (key = value lines); default "
                 "$BATCHBUS_CONFIG");
  app.add_option("--brokers", o.global.brokers,
                 "kafka://host:port[,host:port...] (config key brokers)");
  app.add_option("--namespace", o.global.ns,
                 "topic and group prefix (config key namespace)");
  app.add_option("--set", o.global.sets,
                 "any config key, e.g. --set normal.max_jobs=100 (repeatable)")
      ->type_name("KEY=VALUE");
  app.add_flag("--json", o.global.json,
               "JSON lines on stdout instead of tables");

  const auto priorities = CLI::IsMember({"realtime", "normal", "slow"});

  CLI::App* submit = app.add_subcommand(
      "submit",
      "Submit one job per line of stdin (each line one JSON value), or the "
      "one of --data. Without --wait, prints each job's id once the broker "
      "has its batch; with --wait, prints each job's result as a JSON line "
      "and exits 1 unless every job ended PROCESSED_OK.");
  submit->add_option("-p,--processor", o.submit.processor,
                     "processor application, e.g. payments")
      ->required();
  submit->add_option("-g,--group", o.submit.group,
                     "job group, e.g. payment-submit")
      ->required();
  submit->add_option("--priority", o.submit.priority,
                     "realtime, normal or slow")
      ->check(priorities)
      ->capture_default_str();
  submit->add_option("-d,--data", o.submit.data,
                     "the data of one job (JSON) instead of stdin");
  submit->add_flag("-w,--wait", o.submit.wait,
                   "wait for every job's result and print it");
  submit->add_option("--timeout", o.submit.timeout_s,
                     "seconds to wait at most (default: the priority's "
                     "batch_timeout_ms + 5 s)")
      ->check(CLI::NonNegativeNumber);
  submit->add_flag("--no-progress{false}", o.submit.progress,
                   "no progress bar on stderr");
  submit->callback([&o] { o.command = "submit"; });

  CLI::App* work = app.add_subcommand(
      "work",
      "Run a processor until SIGTERM or SIGINT: --echo completes each job "
      "with its own data; --exec CMD runs CMD (with /bin/sh -c) once per "
      "job, the job's data on its stdin, its stdout the result (JSON, or "
      "else taken as a string), a non-zero exit a failure with its stderr "
      "as the reason. CMD sees BATCHBUS_JOB_ID, BATCHBUS_JOB_GROUP, "
      "BATCHBUS_JOB_PRIORITY and BATCHBUS_JOB_ATTEMPT.");
  work->add_option("-p,--processor", o.work.processor,
                   "processor application to serve")
      ->required();
  CLI::Option* echo =
      work->add_flag("--echo", o.work.echo, "complete each job with its data");
  CLI::Option* exec =
      work->add_option("--exec", o.work.exec, "command to run per job");
  echo->excludes(exec);
  work->add_option("--workers", o.work.workers, "jobs handled at once")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  work->add_option("--job-timeout", o.work.job_timeout_s,
                   "seconds a CMD may run before it is killed and its job "
                   "failed (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  work->add_option("--stop-timeout", o.work.stop_timeout_s,
                   "seconds a stop waits for running jobs before killing "
                   "them; their batches are then processed again by the "
                   "next processor")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  work->callback([&o] { o.command = "work"; });

  CLI::App* lag = app.add_subcommand(
      "lag",
      "Per processor, priority and partition: committed offset, end offset "
      "and lag of its consumer groups, and the groups' members.");
  lag->add_option("-p,--processor", o.lag.processor,
                  "one processor (default: every one with job topics)");
  lag->callback([&o] { o.command = "lag"; });

  CLI::App* topics = app.add_subcommand(
      "topics",
      "The topics batchbus uses for a processor (job topics, delay tiers, "
      "dead letters, replies) and whether they exist with the configured "
      "partitions; exits 1 when one is missing.");
  topics->add_option("-p,--processor", o.topics.processor,
                     "one processor (default: every one with job topics)");
  topics->add_flag("--create", o.topics.create,
                   "create the missing ones (topic_partitions, "
                   "replication_factor)");
  topics->callback([&o] { o.command = "topics"; });

  CLI::App* dead = app.add_subcommand(
      "dead-letters",
      "List a processor's dead letter topic, or replay job copies from it "
      "to their job topic (docs/dead-letters.md).");
  dead->require_subcommand(1);
  dead->fallthrough();
  dead->add_option("-p,--processor", o.dead_letters.processor,
                   "processor whose dead letter topic to read")
      ->required();
  dead->add_option("--partition", o.dead_letters.partition,
                   "one partition only")
      ->check(CLI::NonNegativeNumber);
  dead->add_option("--from", o.dead_letters.from, "first offset (inclusive)")
      ->check(CLI::NonNegativeNumber);
  dead->add_option("--to", o.dead_letters.to, "last offset (inclusive)")
      ->check(CLI::NonNegativeNumber);
  CLI::App* list = dead->add_subcommand(
      "list", "Each message: partition, offset, time, kind, attempts, origin "
              "and error.");
  list->add_option("--limit", o.dead_letters.limit,
                   "at most this many messages (0: all)")
      ->check(CLI::NonNegativeNumber);
  list->callback([&o] {
    o.command = "dead-letters";
    o.dead_letters.action = "list";
  });
  CLI::App* replay = dead->add_subcommand(
      "replay",
      "Send the job copies in --from..--to (or --all) back to their job "
      "topic; copies that are not jobs (malformed messages, results) are "
      "counted and skipped.");
  replay->add_flag("--all", o.dead_letters.all, "every job copy in range");
  replay->add_flag("--no-progress{false}", o.dead_letters.progress,
                   "no progress bar on stderr");
  replay->callback([&o] {
    o.command = "dead-letters";
    o.dead_letters.action = "replay";
  });
}

absl::Status CheckOptions(const Options& o) {
  if (o.command == "work" && !o.work.echo && o.work.exec.empty()) {
    return absl::InvalidArgumentError(
        "work: say what to do with each job: --echo or --exec CMD");
  }
  if (o.command == "dead-letters") {
    const DeadLettersOptions& d = o.dead_letters;
    if (d.from >= 0 && d.to >= 0 && d.to < d.from) {
      return absl::InvalidArgumentError(StrCat(
          "dead-letters: --to ", d.to, " is before --from ", d.from));
    }
    if (d.action == "replay" && !d.all && d.from < 0 && d.to < 0) {
      return absl::InvalidArgumentError(
          "dead-letters replay: say which: --from/--to OFFSET (with "
          "--partition), or --all");
    }
  }
  for (const std::string& set : o.global.sets) {
    if (set.find('=') == std::string::npos) {
      return absl::InvalidArgumentError(
          StrCat("--set '", set, "': expected KEY=VALUE"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Config> LoadConfig(const GlobalOptions& global) {
  absl::StatusOr<Config> config = Config::Load(global.config_path);
  if (!config.ok()) return config.status();
  auto apply = [&](std::string_view key, std::string_view value) {
    return config->Set(key, value);
  };
  if (!global.brokers.empty()) {
    if (auto s = apply("brokers", global.brokers); !s.ok()) return s;
  }
  if (!global.ns.empty()) {
    if (auto s = apply("namespace", global.ns); !s.ok()) return s;
  }
  for (const std::string& set : global.sets) {
    const size_t eq = set.find('=');
    if (eq == std::string::npos) {
      return absl::InvalidArgumentError(
          StrCat("--set '", set, "': expected KEY=VALUE"));
    }
    if (auto s = apply(set.substr(0, eq), set.substr(eq + 1)); !s.ok()) {
      return s;
    }
  }
  if (auto s = config->Validate(); !s.ok()) return s;
  if (absl::StartsWith(config->brokers, "mock://")) {
    return absl::InvalidArgumentError(StrCat(
        "brokers is '", config->brokers,
        "': the embedded mock cluster lives inside one process, so the "
        "command line cannot meet your programs there. Name a cluster: "
        "--brokers kafka://host:port, BATCHBUS_BROKERS, or brokers in the "
        "config file"));
  }
  return config;
}

int Main(int argc, char** argv) {
  CLI::App app{"batchbus", "batchbus"};
  Options options;
  BuildApp(app, options);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (auto s = CheckOptions(options); !s.ok()) {
    std::cerr << "batchbus: " << s.message() << "\n";
    return kExitUsage;
  }
  absl::StatusOr<Config> config = LoadConfig(options.global);
  if (!config.ok()) {
    std::cerr << "batchbus: " << config.status().message() << "\n";
    return kExitUsage;
  }
  if (options.command == "submit") {
    return RunSubmit(*config, options.global, options.submit, std::cin);
  }
  if (options.command == "work") {
    return RunWork(*config, options.global, options.work);
  }
  if (options.command == "lag") {
    return RunLag(*config, options.global, options.lag);
  }
  if (options.command == "topics") {
    return RunTopics(*config, options.global, options.topics);
  }
  if (options.command == "dead-letters") {
    return RunDeadLetters(*config, options.global, options.dead_letters);
  }
  std::cerr << "batchbus: no subcommand\n";
  return kExitUsage;
}

}  // namespace batchbus::cli
