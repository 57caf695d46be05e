// The `batchbus` command line: options of every subcommand, how they are
// parsed (CLI11), and the config they lead to.
//
// The config is the library's own: Config::Load() (defaults, the file of
// --config or $BATCHBUS_CONFIG, BATCHBUS_* variables), then --brokers,
// --namespace and each --set key=value on top, then Validate().
//
// Exit status of every subcommand: 0 when everything asked for succeeded,
// 1 when the command ran but something it reports failed (a job that did
// not end PROCESSED_OK, a missing topic, messages not replayed), 2 for bad
// usage or a bad config, 3 when the cluster could not be reached.
#ifndef BATCHBUS_TOOLS_CLI_H_
#define BATCHBUS_TOOLS_CLI_H_

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "batchbus/config.h"

namespace CLI {
class App;
}

namespace batchbus::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitUnavailable = 3;

struct GlobalOptions {
  std::string config_path;          // --config
  std::string brokers;              // --brokers
  std::string ns;                   // --namespace
  std::vector<std::string> sets;    // --set key=value
  bool json = false;                // --json
};

struct SubmitOptions {
  std::string processor;
  std::string group;
  std::string priority = "normal";
  std::optional<std::string> data;  // --data: one job instead of stdin
  bool wait = false;
  // --timeout: longest wait for results (with --wait) or for the broker's
  // acknowledgements; 0 means the priority's batch timeout plus 5 s.
  double timeout_s = 0;
  bool progress = true;             // --no-progress turns the bar off
};

struct WorkOptions {
  std::string processor;
  bool echo = false;
  std::string exec;                 // --exec CMD, run with /bin/sh -c
  int workers = 1;                  // handlers running at once
  double job_timeout_s = 0;         // --job-timeout: kill CMD after this
  double stop_timeout_s = 10;       // --stop-timeout: bound of the stop
};

struct LagOptions {
  std::string processor;            // empty: every processor found
};

struct TopicsOptions {
  std::string processor;            // empty: every processor found
  bool create = false;
};

struct DeadLettersOptions {
  std::string processor;
  std::string action;               // "list" or "replay"
  int partition = -1;               // -1: every partition
  int64_t from = -1;                // first offset (inclusive)
  int64_t to = -1;                  // last offset (inclusive)
  bool all = false;                 // replay: every job copy
  int64_t limit = 0;                // list: at most this many (0: all)
  bool progress = true;
};

// Everything the command line can say; one subcommand is chosen.
struct Options {
  GlobalOptions global;
  SubmitOptions submit;
  WorkOptions work;
  LagOptions lag;
  TopicsOptions topics;
  DeadLettersOptions dead_letters;
  std::string command;  // "submit", "work", "lag", "topics", "dead-letters"
};

// Declares every option and subcommand on `app`, writing into `options`.
void BuildApp(CLI::App& app, Options& options);

// Checks what CLI11's declarations cannot (e.g. exactly one of --echo and
// --exec); the message says what to change.
absl::Status CheckOptions(const Options& options);

// The config the options lead to (see the banner).
absl::StatusOr<Config> LoadConfig(const GlobalOptions& global);

// Parses `argv` and runs the chosen subcommand; the process's exit status.
int Main(int argc, char** argv);

// The subcommands (tools/*.cc); each returns an exit status.
int RunSubmit(const Config& config, const GlobalOptions& global,
              const SubmitOptions& options, std::istream& in);
int RunWork(const Config& config, const GlobalOptions& global,
            const WorkOptions& options);
int RunLag(const Config& config, const GlobalOptions& global,
           const LagOptions& options);
int RunTopics(const Config& config, const GlobalOptions& global,
              const TopicsOptions& options);
int RunDeadLetters(const Config& config, const GlobalOptions& global,
                   const DeadLettersOptions& options);

}  // namespace batchbus::cli

#endif  // BATCHBUS_TOOLS_CLI_H_
