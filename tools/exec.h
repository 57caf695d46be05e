// Runs a shell command once, with `input` on its stdin, collecting its
// stdout and stderr: the --exec handler of `batchbus work`.
//
// Thread-safe: each call spawns and reaps its own child.
#ifndef BATCHBUS_TOOLS_EXEC_H_
#define BATCHBUS_TOOLS_EXEC_H_

#include <atomic>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"

namespace batchbus::cli {

struct ExecResult {
  bool started = false;     // False when the command could not be spawned.
  int exit_code = -1;       // When it exited.
  int signal = 0;           // When a signal ended it.
  bool timed_out = false;   // Killed at its deadline.
  bool stopped = false;     // Killed because `kill_now` became true.
  std::string out;
  std::string err;
};

// Runs `/bin/sh -c command` with `env` added to the environment
// ("NAME=VALUE"). The child is killed (SIGKILL) at `deadline`, or once
// `kill_now` reads true.
ExecResult RunCommand(const std::string& command, std::string_view input,
                      const std::vector<std::string>& env, absl::Time deadline,
                      const std::atomic<bool>& kill_now);

}  // namespace batchbus::cli

#endif  // BATCHBUS_TOOLS_EXEC_H_
