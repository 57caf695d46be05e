#include "wakeup.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>

namespace batchbus {

WakeupPipe::WakeupPipe() {
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == 0) {
    read_fd_ = fds[0];
    write_fd_ = fds[1];
  }
}

WakeupPipe::~WakeupPipe() {
  if (read_fd_ >= 0) close(read_fd_);
  if (write_fd_ >= 0) close(write_fd_);
}

void WakeupPipe::Notify() const {
  const char byte = 1;
  // A full pipe already means "wake up"; EAGAIN is fine.
  ssize_t rc = write(write_fd_, &byte, 1);
  (void)rc;
}

void WakeupPipe::Wait(absl::Duration timeout) const {
  int ms = 0;
  if (timeout > absl::ZeroDuration()) {
    ms = timeout >= absl::Seconds(3600)
             ? 3600 * 1000
             : static_cast<int>(absl::ToInt64Microseconds(timeout) + 999) / 1000;
  }
  struct pollfd pfd = {read_fd_, POLLIN, 0};
  int rc;
  do {
    rc = poll(&pfd, 1, ms);
  } while (rc < 0 && errno == EINTR);
  char buf[256];
  while (read(read_fd_, buf, sizeof buf) > 0) {
  }
}

}  // namespace batchbus
