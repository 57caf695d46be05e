// Support for the kafka-tier tests in tests/kafka/: child processes
// (echo_processor, scripts/kafka) with bounded waits, the broker control
// script, and small statistics helpers.
#ifndef BATCHBUS_TESTS_KAFKA_KAFKA_TIER_H_
#define BATCHBUS_TESTS_KAFKA_KAFKA_TIER_H_

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "support/test_cluster.h"

extern char** environ;

namespace batchbus::testing {

inline std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

// The port of the broker that scripts/kafka controls (and RealBrokers()
// names, unless $BATCHBUS_TEST_BROKERS says otherwise).
inline int KafkaPort() {
  return std::atoi(EnvOr("BATCHBUS_KAFKA_PORT", "9092").c_str());
}

// Path of scripts/kafka: $BATCHBUS_KAFKA_SCRIPT, else the path compiled in by
// tests/CMakeLists.txt; empty when neither is set.
inline std::string KafkaScript() {
#ifdef BATCHBUS_KAFKA_SCRIPT
  return EnvOr("BATCHBUS_KAFKA_SCRIPT", BATCHBUS_KAFKA_SCRIPT);
#else
  return EnvOr("BATCHBUS_KAFKA_SCRIPT", "");
#endif
}

inline std::string EchoProcessorPath() {
#ifdef BATCHBUS_ECHO_PROCESSOR
  return EnvOr("BATCHBUS_ECHO_PROCESSOR", BATCHBUS_ECHO_PROCESSOR);
#else
  return EnvOr("BATCHBUS_ECHO_PROCESSOR", "");
#endif
}

// The current environment with `overrides` ("NAME=VALUE") replacing or
// adding variables.
inline std::vector<std::string> EnvironmentWith(
    const std::vector<std::string>& overrides) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('='));
    bool replaced = false;
    for (const auto& o : overrides) {
      replaced |= o.substr(0, o.find('=')) == name;
    }
    if (!replaced) env.push_back(entry);
  }
  env.insert(env.end(), overrides.begin(), overrides.end());
  return env;
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string Tail(const std::string& text, size_t lines) {
  size_t pos = text.size();
  for (size_t n = 0; n <= lines && pos > 0; ++n) {
    pos = text.rfind('\n', pos - 1);
    if (pos == std::string::npos) return text;
  }
  return text.substr(pos + 1);
}

// A child process started with posix_spawn; stdout and stderr go to
// `log_path`. The destructor kills (SIGKILL) and reaps a child still alive.
class ChildProcess {
 public:
  static std::unique_ptr<ChildProcess> Spawn(
      const std::vector<std::string>& argv,
      const std::vector<std::string>& env_overrides,
      const std::string& log_path) {
    std::vector<std::string> env = EnvironmentWith(env_overrides);
    std::vector<char*> cargv, cenv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    for (const auto& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(),
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, cargv[0], &actions, nullptr,
                               cargv.data(), cenv.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      ADD_FAILURE() << "posix_spawn " << argv[0] << ": " << std::strerror(rc);
      return nullptr;
    }
    auto child = std::unique_ptr<ChildProcess>(new ChildProcess);
    child->pid_ = pid;
    child->log_path_ = log_path;
    return child;
  }

  ~ChildProcess() {
    if (running()) {
      kill(pid_, SIGKILL);
      (void)Wait(absl::Seconds(10));
    }
  }

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0 && !status_.has_value(); }
  const std::string& log_path() const { return log_path_; }
  bool Signal(int sig) { return running() && kill(pid_, sig) == 0; }

  // The raw wait status once the child ended within `timeout`.
  std::optional<int> Wait(absl::Duration timeout) {
    if (status_) return status_;
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      int status = 0;
      const pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        status_ = status;
        return status_;
      }
      if (r < 0) {  // Not our child any more (should not happen).
        status_ = -1;
        return status_;
      }
      if (absl::Now() >= deadline) return std::nullopt;
      absl::SleepFor(absl::Milliseconds(5));
    }
  }

 private:
  ChildProcess() = default;
  pid_t pid_ = -1;
  std::string log_path_;
  std::optional<int> status_;
};

// Sets `stop` and joins `thread` when it goes out of scope, also when a
// failed assertion leaves the test early.
class StopAndJoin {
 public:
  StopAndJoin(std::atomic<bool>& stop, std::thread& thread)
      : stop_(stop), thread_(thread) {}
  ~StopAndJoin() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool>& stop_;
  std::thread& thread_;
};

inline std::string DescribeWaitStatus(int status) {
  if (status == -1) return "unknown";
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return std::string("signal ") + strsignal(WTERMSIG(status));
  }
  return "status " + std::to_string(status);
}

struct CommandResult {
  bool finished = false;  // False: killed after the timeout.
  int exit_code = -1;
  absl::Duration took;
  std::string output;
  bool ok() const { return finished && exit_code == 0; }
};

// Runs `argv` to completion (bounded by `timeout`; the command itself is
// then killed, only it) and returns its combined output.
inline CommandResult RunCommand(const std::vector<std::string>& argv,
                                const std::vector<std::string>& env_overrides,
                                absl::Duration timeout) {
  CommandResult result;
  char path[] = "/tmp/batchbus-kafka-tier-cmd-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) {
    result.output = "mkstemp failed";
    return result;
  }
  close(fd);
  const absl::Time start = absl::Now();
  auto child = ChildProcess::Spawn(argv, env_overrides, path);
  if (child) {
    std::optional<int> status = child->Wait(timeout);
    if (!status) {
      child->Signal(SIGKILL);
      status = child->Wait(absl::Seconds(10));
    } else {
      result.finished = true;
      result.exit_code = WIFEXITED(*status) ? WEXITSTATUS(*status) : 128;
    }
  }
  result.took = absl::Now() - start;
  result.output = ReadFile(path);
  unlink(path);
  return result;
}

// Runs `scripts/kafka <command>` for the broker on `port`, with extra
// environment. Start can take a while on a busy 2-core machine.
inline CommandResult KafkaScriptCommand(const std::string& command, int port,
                                        std::vector<std::string> env = {},
                                        absl::Duration timeout =
                                            absl::Seconds(150)) {
  env.push_back("BATCHBUS_KAFKA_PORT=" + std::to_string(port));
  // A BATCHBUS_KAFKA_FRESH=1 left in the caller's environment would make a
  // restart wipe the broker's state; only a test that asks for it gets it.
  const bool fresh_set = std::any_of(env.begin(), env.end(), [](const std::string& e) {
    return e.rfind("BATCHBUS_KAFKA_FRESH=", 0) == 0;
  });
  if (!fresh_set) env.push_back("BATCHBUS_KAFKA_FRESH=0");
  return RunCommand({"/bin/bash", KafkaScript(), command}, env, timeout);
}

// Percentile (0..100) of `values` (copied and sorted), nearest rank.
inline double Percentile(std::vector<double> values, double pct) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t rank = static_cast<size_t>(pct / 100.0 * values.size() + 0.5);
  rank = std::clamp<size_t>(rank, 1, values.size());
  return values[rank - 1];
}

// A unique processor/namespace-safe name for per-test files.
inline std::string TempLogPath(const std::string& what) {
  return "/tmp/batchbus-" + what + "-" + std::to_string(getpid()) + ".log";
}

}  // namespace batchbus::testing

#endif  // BATCHBUS_TESTS_KAFKA_KAFKA_TIER_H_
