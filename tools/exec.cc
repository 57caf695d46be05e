#include "strcat.h"
#include "exec.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

extern char** environ;

namespace batchbus::cli {
namespace {

// Output kept per stream; the rest is dropped (a result must fit in a
// Kafka message anyway).
constexpr size_t kMaxOutput = 8 << 20;

struct Pipe {
  int fd[2] = {-1, -1};
  bool Open() { return pipe2(fd, O_CLOEXEC) == 0; }
  void CloseEnd(int i) {
    if (fd[i] >= 0) close(fd[i]);
    fd[i] = -1;
  }
  ~Pipe() {
    CloseEnd(0);
    CloseEnd(1);
  }
};

}  // namespace

ExecResult RunCommand(const std::string& command, std::string_view input,
                      const std::vector<std::string>& env, absl::Time deadline,
                      const std::atomic<bool>& kill_now) {
  ExecResult result;
  Pipe in, out, err;
  if (!in.Open() || !out.Open() || !err.Open()) {
    result.err = StrCat("pipe: ", std::strerror(errno));
    return result;
  }
  std::vector<std::string> envs;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    envs.emplace_back(*e);
  }
  envs.insert(envs.end(), env.begin(), env.end());
  std::vector<char*> cenv;
  for (auto& e : envs) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  std::string sh = "/bin/sh", dash_c = "-c", cmd = command;
  char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in.fd[0], 0);
  posix_spawn_file_actions_adddup2(&actions, out.fd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err.fd[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // Its own process group, so a kill reaches what the shell started, and
  // the default signal mask and dispositions (the worker blocks none).
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, sh.c_str(), &actions, &attr, argv,
                             cenv.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    result.err = StrCat("could not start /bin/sh: ", std::strerror(rc));
    return result;
  }
  result.started = true;
  in.CloseEnd(0);
  out.CloseEnd(1);
  err.CloseEnd(1);
  fcntl(in.fd[1], F_SETFL, O_NONBLOCK);

  size_t written = 0;
  if (input.empty()) in.CloseEnd(1);
  bool killed = false;
  char buf[65536];
  while (out.fd[0] >= 0 || err.fd[0] >= 0) {
    pollfd fds[3];
    int n = 0;
    int idx_in = -1, idx_out = -1, idx_err = -1;
    if (in.fd[1] >= 0) { idx_in = n; fds[n++] = {in.fd[1], POLLOUT, 0}; }
    if (out.fd[0] >= 0) { idx_out = n; fds[n++] = {out.fd[0], POLLIN, 0}; }
    if (err.fd[0] >= 0) { idx_err = n; fds[n++] = {err.fd[0], POLLIN, 0}; }
    const int ready = poll(fds, n, 50);
    if (!killed) {
      const bool stop = kill_now.load();
      if (stop || absl::Now() >= deadline) {
        kill(-pid, SIGKILL);
        killed = true;
        result.stopped = stop;
        result.timed_out = !stop;
      }
    }
    if (ready <= 0) continue;
    if (idx_in >= 0 && (fds[idx_in].revents & (POLLOUT | POLLERR | POLLHUP))) {
      const ssize_t w = write(in.fd[1], input.data() + written,
                              input.size() - written);
      if (w > 0) written += static_cast<size_t>(w);
      if (w < 0 && errno != EAGAIN) written = input.size();  // EPIPE: it quit.
      if (written >= input.size()) in.CloseEnd(1);
    }
    auto drain = [&](int idx, Pipe& p, std::string& into) {
      if (idx < 0 || !(fds[idx].revents & (POLLIN | POLLHUP | POLLERR))) return;
      const ssize_t r = read(p.fd[0], buf, sizeof buf);
      if (r > 0) {
        if (into.size() < kMaxOutput) into.append(buf, static_cast<size_t>(r));
      } else if (r == 0 || errno != EINTR) {
        p.CloseEnd(0);
      }
    };
    drain(idx_out, out, result.out);
    drain(idx_err, err, result.err);
  }
  in.CloseEnd(1);
  // It may still run with its output closed: keep to the same bounds.
  int status = 0;
  while (true) {
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno != EINTR)) break;
    if (!killed && (kill_now.load() || absl::Now() >= deadline)) {
      kill(-pid, SIGKILL);
      killed = true;
      result.stopped = kill_now.load();
      result.timed_out = !result.stopped;
    }
    absl::SleepFor(absl::Milliseconds(2));
  }
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  return result;
}

}  // namespace batchbus::cli
