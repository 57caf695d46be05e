// The `batchbus` command line without a broker: how options parse and what
// they refuse, the config they lead to, the output helpers, the --exec
// runner, and the installed binary's --help and usage errors.
#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/time/clock.h"
#include "cli.h"
#include "exec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "output.h"

namespace batchbus::cli {
namespace {

using ::testing::HasSubstr;

// Parses `args` (without the program name) the way Main does.
absl::StatusOr<Options> Parse(std::vector<std::string> args) {
  CLI::App app{"batchbus", "batchbus"};
  Options options;
  BuildApp(app, options);
  std::vector<const char*> argv = {"batchbus"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(e.what());
  }
  if (absl::Status s = CheckOptions(options); !s.ok()) return s;
  return options;
}

TEST(CliOptions, SubmitTakesProcessorGroupPriorityAndGlobalsAfterIt) {
  auto o = Parse({"submit", "-p", "payments", "-g", "pay", "--priority",
                  "realtime", "--wait", "--json", "--set", "normal.max_jobs=7"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->command, "submit");
  EXPECT_EQ(o->submit.processor, "payments");
  EXPECT_EQ(o->submit.group, "pay");
  EXPECT_EQ(o->submit.priority, "realtime");
  EXPECT_TRUE(o->submit.wait);
  EXPECT_TRUE(o->global.json);
  EXPECT_THAT(o->global.sets, ::testing::ElementsAre("normal.max_jobs=7"));
}

TEST(CliOptions, RefusesWhatCannotWork) {
  // Each case names what is wrong.
  EXPECT_THAT(Parse({"submit", "-g", "x"}).status().message(),
              HasSubstr("--processor"));
  EXPECT_THAT(Parse({"submit", "-p", "x", "-g", "y", "--priority", "urgent"})
                  .status()
                  .message(),
              HasSubstr("urgent"));
  EXPECT_THAT(Parse({"work", "-p", "x"}).status().message(),
              HasSubstr("--echo or --exec"));
  EXPECT_FALSE(Parse({"work", "-p", "x", "--echo", "--exec", "cat"}).ok());
  EXPECT_THAT(
      Parse({"dead-letters", "-p", "x", "replay"}).status().message(),
      HasSubstr("--all"));
  EXPECT_THAT(Parse({"dead-letters", "-p", "x", "--from", "9", "--to", "3",
                     "list"})
                  .status()
                  .message(),
              HasSubstr("before --from"));
  EXPECT_THAT(Parse({"--set", "oops", "lag"}).status().message(),
              HasSubstr("KEY=VALUE"));
  EXPECT_FALSE(Parse({}).ok());  // A subcommand is required.
}

TEST(CliConfig, OptionsOverrideTheLibrarysConfig) {
  GlobalOptions g;
  g.brokers = "kafka://127.0.0.1:1";
  g.ns = "ops";
  g.sets = {"normal.max_jobs=17", "topic_partitions=3"};
  absl::StatusOr<Config> c = LoadConfig(g);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->brokers, "kafka://127.0.0.1:1");
  EXPECT_EQ(c->ns, "ops");
  EXPECT_EQ(c->For(Priority::kNormal).max_jobs, 17);
  EXPECT_EQ(c->topic_partitions, 3);
}

TEST(CliConfig, BadKeysAndTheEmbeddedClusterAreRefusedWithTheReason) {
  GlobalOptions g;
  g.brokers = "kafka://127.0.0.1:1";
  g.sets = {"normal.max_jobz=1"};
  EXPECT_THAT(LoadConfig(g).status().message(), HasSubstr("max_jobz"));
  GlobalOptions mock;
  mock.brokers = "mock://";
  absl::Status s = LoadConfig(mock).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(s.message(), HasSubstr("inside one process"));
}

TEST(CliOutput, TablesAlignNumbersRightAndTextLeft) {
  Table t({"topic", "lag"});
  t.AddRow({"a.normal", "5"});
  t.AddRow({"b", "1234"});
  EXPECT_EQ(t.Render(),
            "topic      lag\n"
            "a.normal     5\n"
            "b         1234\n");
}

TEST(CliOutput, JsonLinesQuoteAndNestRawValues) {
  EXPECT_EQ(JsonLine()
                .Str("s", "a\"b\n\x01")
                .Int("n", -3)
                .Bool("b", true)
                .Null("z")
                .Raw("r", "{\"x\":[1]}")
                .Done(),
            R"({"s":"a\"b\n\u0001","n":-3,"b":true,"z":null,"r":{"x":[1]}})");
}

TEST(CliOutput, ProgressLineShowsShareAndRate) {
  EXPECT_EQ(Progress::Line("sent", 50, 200, absl::Seconds(2), 8),
            "sent [##......] 50/200  25% (25/s)");
  EXPECT_EQ(Progress::Line("sent", 10, 0, absl::Seconds(5), 8),
            "sent 10 (2/s)");
}

TEST(CliExec, CommandGetsInputAndEnvironmentAndReportsItsEnd) {
  std::atomic<bool> never{false};
  ExecResult r = RunCommand("read x; echo \"$x:$JOB\"; echo warn >&2; exit 3",
                            "hello\n", {"JOB=7"}, absl::InfiniteFuture(),
                            never);
  ASSERT_TRUE(r.started);
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "hello:7\n");
  EXPECT_EQ(r.err, "warn\n");
  EXPECT_FALSE(r.timed_out);
}

TEST(CliExec, DeadlineKillsACommandThatHangs) {
  std::atomic<bool> never{false};
  const absl::Time start = absl::Now();
  ExecResult r = RunCommand("sleep 30", "", {},
                            absl::Now() + absl::Milliseconds(200), never);
  EXPECT_TRUE(r.timed_out);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

TEST(CliExec, LargeInputAndOutputDoNotDeadlock) {
  // More than a pipe buffer each way: the runner must write and read at once.
  std::atomic<bool> never{false};
  const std::string input(1 << 20, 'x');
  ExecResult r = RunCommand("cat", input, {},
                            absl::Now() + absl::Seconds(30), never);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.size(), input.size());
}

#ifdef BATCHBUS_CLI
// Runs the built binary; its exit status and its stdout and stderr.
std::pair<int, std::string> RunCli(const std::string& args) {
  const std::string command =
      std::string(BATCHBUS_CLI) + " " + args + " 2>&1 </dev/null";
  FILE* pipe = popen(command.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

TEST(CliBinary, EverySubcommandHasHelp) {
  for (const char* sub : {"submit", "work", "lag", "topics", "dead-letters",
                          "dead-letters list", "dead-letters replay"}) {
    auto [rc, out] = RunCli(std::string(sub) + " --help");
    EXPECT_EQ(rc, kExitOk) << sub << ": " << out;
    EXPECT_THAT(out, HasSubstr("Usage:")) << sub;
  }
  auto [rc, out] = RunCli("--help");
  EXPECT_EQ(rc, kExitOk);
  for (const char* sub : {"submit", "work", "lag", "topics", "dead-letters"}) {
    EXPECT_THAT(out, HasSubstr(sub));
  }
}

TEST(CliBinary, UsageErrorsExitTwoWithTheReason) {
  auto [rc, out] = RunCli("work -p payments");
  EXPECT_EQ(rc, kExitUsage);
  EXPECT_THAT(out, HasSubstr("--echo or --exec"));
  std::tie(rc, out) = RunCli("--brokers mock:// lag");
  EXPECT_EQ(rc, kExitUsage);
  EXPECT_THAT(out, HasSubstr("inside one process"));
  std::tie(rc, out) = RunCli("frobnicate");
  EXPECT_EQ(rc, kExitUsage);
}
#endif

}  // namespace
}  // namespace batchbus::cli
