// The `batchbus` command line against the real broker, run as an operator
// runs it: as separate processes that meet only through Kafka.
//  (a) topics --create, then work --exec with a shell script as the
//      handler, submit --wait of 300 lines (two of which the script
//      refuses), submit without --wait, lag, and dead-letters list and
//      replay; SIGTERM stops the worker with its summary.
//  (b) A worker stopped while its command hangs kills the command within
//      --stop-timeout and leaves the job unanswered, so the next worker
//      runs it and the waiting submit gets its result.
//  (c) An unreachable cluster ends each command within its bound with the
//      exit status for it.
#include <sys/stat.h>

#include <fstream>
#include <map>
#include <set>

#include "cli.h"
#include "gmock/gmock.h"
#include "kafka/kafka_tier.h"
#include "simdjson.h"

namespace batchbus::testing {
namespace {

using ::testing::HasSubstr;

std::string Cli() { return EnvOr("BATCHBUS_CLI", BATCHBUS_CLI); }

// One parsed JSON line of the tool's output.
struct Line {
  std::map<std::string, std::string> strings;
  std::map<std::string, int64_t> ints;
  std::map<std::string, std::string> raw;  // Objects, arrays, null.
};

std::vector<Line> ParseLines(const std::string& text) {
  std::vector<Line> out;
  simdjson::dom::parser parser;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) {
    if (l.empty() || l[0] != '{') continue;  // Log lines on stderr.
    simdjson::dom::object obj;
    if (parser.parse(l).get_object().get(obj) != simdjson::SUCCESS) {
      ADD_FAILURE() << "not a JSON line: " << l;
      continue;
    }
    Line line;
    for (auto [key, value] : obj) {
      const std::string k(key);
      std::string_view s;
      int64_t i;
      if (value.get_string().get(s) == simdjson::SUCCESS) {
        line.strings[k] = std::string(s);
      } else if (value.get_int64().get(i) == simdjson::SUCCESS) {
        line.ints[k] = i;
      } else {
        line.raw[k] = simdjson::minify(value);
      }
    }
    out.push_back(std::move(line));
  }
  return out;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    struct stat st;
    ASSERT_EQ(stat(Cli().c_str(), &st), 0) << "no batchbus binary at " << Cli();
    ns_ = UniqueNamespace();
  }

  // The global options every command gets.
  std::vector<std::string> Args(std::vector<std::string> args) const {
    std::vector<std::string> all = {Cli(), "--brokers", RealBrokers(),
                                    "--namespace", ns_};
    all.insert(all.end(), args.begin(), args.end());
    return all;
  }

  // Runs the tool with `input` on stdin; stdout alone in `output`, stderr
  // in `errors`.
  struct Run {
    CommandResult result;
    std::string output;
    std::string errors;
  };
  Run Tool(std::vector<std::string> args, const std::string& input = "",
           absl::Duration timeout = absl::Seconds(120)) {
    const std::string base = TempLogPath("cli-" + ns_ + "-" +
                                         std::to_string(runs_++));
    { std::ofstream(base + ".in") << input; }
    std::string command = "exec";
    for (const std::string& a : Args(std::move(args))) {
      command += " '" + a + "'";  // No argument here holds a quote.
    }
    command += " <" + base + ".in >" + base + ".out 2>" + base + ".err";
    Run run;
    run.result = RunCommand({"/bin/sh", "-c", command}, {}, timeout);
    run.output = ReadFile(base + ".out");
    run.errors = ReadFile(base + ".err");
    for (const char* ext : {".in", ".out", ".err"}) unlink((base + ext).c_str());
    return run;
  }

  // A long-running `batchbus work`; its stdout and stderr go to one log.
  std::unique_ptr<ChildProcess> StartWorker(std::vector<std::string> args,
                                            const std::string& name) {
    const std::string log = TempLogPath("cli-" + ns_ + "-" + name);
    unlink(log.c_str());
    std::vector<std::string> argv = Args({"work", "-p", "shop"});
    argv.insert(argv.end(), args.begin(), args.end());
    auto child = ChildProcess::Spawn(argv, {}, log);
    // Running once it said so and its groups have their partitions.
    EXPECT_TRUE(Eventually(
        [&] { return ReadFile(log).find("running") != std::string::npos; },
        absl::Seconds(30)))
        << ReadFile(log);
    return child;
  }

  std::string ns_;
  int runs_ = 0;
};

// The --exec handler: refuses data that says "fail", else wraps it.
constexpr char kScript[] =
    "d=$(cat); case \"$d\" in *fail*) echo \"refused by "
    "$BATCHBUS_JOB_GROUP\" >&2; exit 4;; esac; "
    "printf '{\"seen\":%s,\"attempt\":%s}' \"$d\" \"$BATCHBUS_JOB_ATTEMPT\"";

TEST_F(CliTest, OperatorRoundTrip) {
  Run topics = Tool({"topics", "-p", "shop", "--create"});
  ASSERT_EQ(topics.result.exit_code, cli::kExitOk) << topics.errors;
  Run check = Tool({"--json", "topics", "-p", "shop"});
  ASSERT_EQ(check.result.exit_code, cli::kExitOk) << check.errors;
  std::vector<Line> topic_lines = ParseLines(check.output);
  ASSERT_GE(topic_lines.size(), 5u);  // Three job topics, dead, replies...
  for (const Line& t : topic_lines) {
    EXPECT_EQ(t.raw.at("exists"), "true") << t.strings.at("topic");
  }

  auto worker = StartWorker({"--json", "--workers", "4", "--set",
                             "dead_letter_failed_jobs=true", "--exec",
                             kScript},
                            "worker");
  ASSERT_TRUE(worker);

  std::string input;
  for (int i = 1; i <= 300; ++i) {
    input += (i == 100 || i == 200)
                 ? "{\"n\":" + std::to_string(i) + ",\"fail\":true}\n"
                 : "{\"n\":" + std::to_string(i) + "}\n";
  }
  Run submit = Tool({"submit", "-p", "shop", "-g", "cli", "--wait",
                     "--no-progress"},
                    input);
  ASSERT_TRUE(submit.result.finished) << submit.errors;
  EXPECT_EQ(submit.result.exit_code, cli::kExitFailed)
      << "two jobs failed, so the exit status says so\n" << submit.errors;
  std::vector<Line> results = ParseLines(submit.output);
  ASSERT_EQ(results.size(), 300u) << submit.errors;
  std::set<int64_t> lines_seen;
  int ok = 0, failed = 0;
  for (const Line& r : results) {
    const int64_t n = r.ints.at("line");
    lines_seen.insert(n);
    if (n == 100 || n == 200) {
      EXPECT_EQ(r.strings.at("status"), "PROCESSED_ERROR");
      EXPECT_EQ(r.strings.at("error"), "refused by cli");
      ++failed;
    } else {
      EXPECT_EQ(r.strings.at("status"), "PROCESSED_OK") << n;
      EXPECT_EQ(r.raw.at("data"), "{\"seen\":{\"n\":" + std::to_string(n) +
                                      "},\"attempt\":1}");
      ++ok;
    }
    EXPECT_EQ(r.strings.at("id").size(), 32u);
  }
  EXPECT_EQ(lines_seen.size(), 300u) << "one result per input line";
  EXPECT_EQ(ok, 298);
  EXPECT_EQ(failed, 2);
  EXPECT_THAT(submit.errors, HasSubstr("298 PROCESSED_OK"));

  Run one = Tool({"submit", "-p", "shop", "-g", "cli", "--priority",
                  "realtime", "--wait", "--data", "{\"n\":0}"});
  EXPECT_EQ(one.result.exit_code, cli::kExitOk) << one.errors;
  EXPECT_THAT(one.output, HasSubstr("\"priority\":\"realtime\""));

  // Without --wait: each job's id once the broker has it.
  std::string slow;
  for (int i = 0; i < 50; ++i) slow += "\"s" + std::to_string(i) + "\"\n";
  Run sent = Tool({"submit", "-p", "shop", "-g", "bulk", "--priority", "slow",
                   "--no-progress"},
                  slow);
  EXPECT_EQ(sent.result.exit_code, cli::kExitOk) << sent.errors;
  std::vector<Line> ids = ParseLines(sent.output);
  ASSERT_EQ(ids.size(), 50u);
  for (const Line& l : ids) EXPECT_EQ(l.strings.at("status"), "SUBMITTED");

  // Every job topic drains to lag 0 once the worker committed.
  std::string last_lag;
  EXPECT_TRUE(Eventually(
      [&] {
        Run lag = Tool({"--json", "lag", "-p", "shop"});
        last_lag = lag.output + lag.errors;
        if (lag.result.exit_code != cli::kExitOk) return false;
        int64_t total = 0, committed_partitions = 0, job_lines = 0;
        bool members = false;
        for (const Line& l : ParseLines(lag.output)) {
          if (l.ints.count("lag") && l.strings.count("priority") &&
              l.strings.at("topic").find("delay") == std::string::npos) {
            ++job_lines;
            total += l.ints.at("lag");
            committed_partitions += l.raw.count("committed") == 0;
          }
          if (l.raw.count("members") && l.raw.at("members") != "[]") {
            members = true;
          }
        }
        return job_lines > 0 && total == 0 && committed_partitions > 0 &&
               members;
      },
      absl::Seconds(60)))
      << last_lag;

  // The two refused jobs are in the dead letter topic with their reason.
  Run list = Tool({"--json", "dead-letters", "-p", "shop", "list"});
  ASSERT_EQ(list.result.exit_code, cli::kExitOk) << list.errors;
  std::vector<Line> dead = ParseLines(list.output);
  ASSERT_EQ(dead.size(), 2u) << list.output;
  for (const Line& d : dead) {
    EXPECT_EQ(d.strings.at("kind"), "failed job");
    EXPECT_THAT(d.raw.at("headers"), HasSubstr("refused by cli"));
  }

  // Replayed, they run again (and are refused again: two more copies).
  Run replay = Tool({"--json", "dead-letters", "-p", "shop", "replay", "--all",
                     "--no-progress"});
  EXPECT_EQ(replay.result.exit_code, cli::kExitOk) << replay.errors;
  std::vector<Line> summary = ParseLines(replay.output);
  ASSERT_FALSE(summary.empty());
  EXPECT_EQ(summary.back().ints.at("replayed"), 2) << replay.output;
  EXPECT_TRUE(Eventually(
      [&] {
        Run again = Tool({"--json", "dead-letters", "-p", "shop", "list"});
        return ParseLines(again.output).size() == 4;
      },
      absl::Seconds(60)));

  ASSERT_TRUE(worker->Signal(SIGTERM));
  std::optional<int> status = worker->Wait(absl::Seconds(30));
  ASSERT_TRUE(status.has_value()) << "work did not stop within 30 s of SIGTERM";
  EXPECT_EQ(DescribeWaitStatus(*status), "exit 0");
  std::vector<Line> stats = ParseLines(ReadFile(worker->log_path()));
  ASSERT_FALSE(stats.empty()) << ReadFile(worker->log_path());
  // 298 + 1 + 50 completed, 2 + 2 failed.
  EXPECT_EQ(stats.back().ints.at("processed_ok"), 349);
  EXPECT_EQ(stats.back().ints.at("processed_error"), 4);
  unlink(worker->log_path().c_str());
}

TEST_F(CliTest, StoppedWorkerLeavesItsJobToTheNextOne) {
  ASSERT_EQ(Tool({"topics", "-p", "shop", "--create"}).result.exit_code,
            cli::kExitOk);
  const std::string marker = TempLogPath("cli-" + ns_ + "-started");
  unlink(marker.c_str());
  auto hung = StartWorker(
      {"--stop-timeout", "1", "--exec", "touch " + marker + "; sleep 120"},
      "hung");
  ASSERT_TRUE(hung);

  // The submit waits in the background while workers come and go.
  const std::string submit_log = TempLogPath("cli-" + ns_ + "-submit");
  unlink(submit_log.c_str());
  auto submit = ChildProcess::Spawn(
      Args({"submit", "-p", "shop", "-g", "cli", "--wait", "--timeout", "120",
            "--data", "{\"keep\":1}"}),
      {}, submit_log);
  ASSERT_TRUE(submit);
  struct stat st;
  ASSERT_TRUE(Eventually([&] { return stat(marker.c_str(), &st) == 0; },
                         absl::Seconds(60)))
      << ReadFile(hung->log_path());

  const absl::Time stop = absl::Now();
  ASSERT_TRUE(hung->Signal(SIGTERM));
  std::optional<int> status = hung->Wait(absl::Seconds(30));
  ASSERT_TRUE(status.has_value()) << "a hung command held the stop";
  EXPECT_LT(absl::Now() - stop, absl::Seconds(20));
  EXPECT_THAT(ReadFile(hung->log_path()), HasSubstr("killing 1 command"));

  auto next = StartWorker({"--echo"}, "next");
  ASSERT_TRUE(next);
  status = submit->Wait(absl::Seconds(120));
  ASSERT_TRUE(status.has_value()) << ReadFile(submit_log);
  EXPECT_EQ(DescribeWaitStatus(*status), "exit 0") << ReadFile(submit_log);
  std::vector<Line> results = ParseLines(ReadFile(submit_log));
  ASSERT_EQ(results.size(), 1u) << ReadFile(submit_log);
  EXPECT_EQ(results[0].strings.at("status"), "PROCESSED_OK");
  EXPECT_EQ(results[0].raw.at("data"), "{\"keep\":1}");

  next->Signal(SIGTERM);
  EXPECT_TRUE(next->Wait(absl::Seconds(30)).has_value());
  for (const std::string& f :
       {marker, submit_log, hung->log_path(), next->log_path()}) {
    unlink(f.c_str());
  }
}

TEST_F(CliTest, UnreachableClusterEndsEachCommandWithinItsBound) {
  for (std::vector<std::string> args :
       {std::vector<std::string>{"topics", "-p", "shop"},
        {"lag", "-p", "shop"},
        {"dead-letters", "-p", "shop", "list"}}) {
    std::vector<std::string> argv = {Cli(), "--brokers",
                                     "kafka://127.0.0.1:1"};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandResult r = RunCommand(argv, {}, absl::Seconds(60));
    ASSERT_TRUE(r.finished) << args[0] << " did not end within 60 s";
    EXPECT_EQ(r.exit_code, cli::kExitUnavailable) << args[0] << ": "
                                                  << Tail(r.output, 5);
  }
  CommandResult r = RunCommand(
      {Cli(), "--brokers", "kafka://127.0.0.1:1", "submit", "-p", "shop", "-g",
       "cli", "--wait", "--timeout", "3", "--data", "1"},
      {}, absl::Seconds(60));
  ASSERT_TRUE(r.finished) << "submit did not end within 60 s";
  EXPECT_NE(r.exit_code, cli::kExitOk) << r.output;
  EXPECT_LT(r.took, absl::Seconds(40)) << r.output;
}

}  // namespace
}  // namespace batchbus::testing
