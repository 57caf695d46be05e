#include "metrics_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "log.h"
#include "mutex.h"
#include "strcat.h"

namespace batchbus {

class MetricsListener {
 public:
  MetricsListener(std::string address, int fd, int port, int wake_read,
                  int wake_write)
      : address_(std::move(address)),
        fd_(fd),
        port_(port),
        wake_read_(wake_read),
        wake_write_(wake_write),
        thread_([this] { Loop(); }) {}

  ~MetricsListener() {
    const char c = 0;
    (void)!::write(wake_write_, &c, 1);
    thread_.join();
    ::close(fd_);
    ::close(wake_read_);
    ::close(wake_write_);
  }

  uint64_t Add(MetricsCollector collect) {
    MutexLock lock(&mu_);
    const uint64_t id = ++next_id_;
    collectors_.emplace(id, std::move(collect));
    return id;
  }
  // True when no collector is left.
  bool Remove(uint64_t id) {
    MutexLock lock(&mu_);
    collectors_.erase(id);
    return collectors_.empty();
  }
  int port() const { return port_; }
  const std::string& address() const { return address_; }

 private:
  void Loop();
  void Serve(int conn);
  std::string Body() {
    MetricsWriter w;
    MutexLock lock(&mu_);
    for (auto& [id, collect] : collectors_) collect(w);
    std::string out;
    w.Render(out);
    return out;
  }

  const std::string address_;
  const int fd_;
  const int port_;
  const int wake_read_;
  const int wake_write_;
  Mutex mu_;
  std::map<uint64_t, MetricsCollector> collectors_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::thread thread_;  // Last: starts once the rest is set.
};

namespace {

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string Response(std::string_view status, std::string_view content_type,
                     std::string_view body) {
  return StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", content_type,
                "\r\nContent-Length: ", body.size(),
                "\r\nConnection: close\r\n\r\n", body);
}

}  // namespace

void MetricsListener::Loop() {
  pollfd fds[2] = {{fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
  while (true) {
    fds[0].revents = fds[1].revents = 0;
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      log::Error("metrics", "metrics listener stopped: poll: ",
                 std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    const int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    Serve(conn);
    ::close(conn);
  }
}

void MetricsListener::Serve(int conn) {
  timeval timeout{2, 0};
  ::setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  ::setsockopt(conn, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  // The request line and headers; the body of a GET is ignored.
  std::string request;
  char buf[2048];
  while (request.find("\r\n\r\n") == std::string::npos &&
         request.find("\n\n") == std::string::npos && request.size() < 16384) {
    const ssize_t n = ::recv(conn, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    request.append(buf, static_cast<size_t>(n));
  }
  const std::string_view line(request.data(), request.find_first_of("\r\n"));
  const size_t sp1 = line.find(' ');
  const size_t sp2 = line.find(' ', sp1 == line.npos ? sp1 : sp1 + 1);
  if (sp1 == line.npos || sp2 == line.npos) {
    WriteAll(conn, Response("400 Bad Request", "text/plain", "bad request\n"));
    return;
  }
  const std::string_view method = line.substr(0, sp1);
  std::string_view path = line.substr(sp1 + 1, sp2 - sp1 - 1);
  path = path.substr(0, path.find('?'));
  if (method != "GET" && method != "HEAD") {
    WriteAll(conn, Response("405 Method Not Allowed", "text/plain",
                            "only GET /metrics is served\n"));
    return;
  }
  if (path != "/metrics") {
    WriteAll(conn, Response("404 Not Found", "text/plain",
                            "only GET /metrics is served\n"));
    return;
  }
  std::string response =
      Response("200 OK", "text/plain; version=0.0.4; charset=utf-8", Body());
  if (method == "HEAD") response.resize(response.find("\r\n\r\n") + 4);
  WriteAll(conn, response);
}

namespace {

struct Registry {
  Mutex mu;
  std::map<std::pair<std::string, int>, std::shared_ptr<MetricsListener>>
      listeners ABSL_GUARDED_BY(mu);
};

Registry& TheRegistry() {
  static Registry* registry = new Registry;
  return *registry;
}

absl::StatusOr<std::shared_ptr<MetricsListener>> Listen(
    const std::string& address, int port) {
  const auto fail = [&](std::string_view what) {
    return absl::UnavailableError(StrCat(
        "metrics listener on ", address, ":", port, ": ", what, ": ",
        std::strerror(errno)));
  };
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, address.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(StrCat(
        "config key 'metrics_address' is '", address,
        "'; it must be an IPv4 address such as 127.0.0.1 or 0.0.0.0"));
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail("socket");
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, 16) != 0) {
    absl::Status s = fail("cannot listen");
    ::close(fd);
    return s;
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int wake[2];
  if (::pipe2(wake, O_CLOEXEC) != 0) {
    absl::Status s = fail("pipe");
    ::close(fd);
    return s;
  }
  return std::make_shared<MetricsListener>(address, fd, ntohs(addr.sin_port),
                                           wake[0], wake[1]);
}

}  // namespace

absl::StatusOr<MetricsRegistration> RegisterMetrics(const std::string& address,
                                                    int port,
                                                    MetricsCollector collect) {
  Registry& r = TheRegistry();
  MutexLock lock(&r.mu);
  std::shared_ptr<MetricsListener>& listener = r.listeners[{address, port}];
  if (listener == nullptr) {
    absl::StatusOr<std::shared_ptr<MetricsListener>> started =
        Listen(address, port);
    if (!started.ok()) {
      r.listeners.erase({address, port});
      return started.status();
    }
    listener = *std::move(started);
  }
  const uint64_t id = listener->Add(std::move(collect));
  return MetricsRegistration(listener, id);
}

MetricsRegistration::MetricsRegistration(MetricsRegistration&& other) noexcept
    : listener_(std::move(other.listener_)), id_(other.id_) {
  other.id_ = 0;
}

MetricsRegistration& MetricsRegistration::operator=(
    MetricsRegistration&& other) noexcept {
  if (this != &other) {
    Reset();
    listener_ = std::move(other.listener_);
    id_ = other.id_;
    other.id_ = 0;
  }
  return *this;
}

int MetricsRegistration::port() const {
  return listener_ ? listener_->port() : 0;
}

void MetricsRegistration::Reset() {
  if (listener_ == nullptr) return;
  std::shared_ptr<MetricsListener> stopped;
  {
    Registry& r = TheRegistry();
    MutexLock lock(&r.mu);
    if (listener_->Remove(id_)) {
      // The last one: the listener stops (its thread is joined below,
      // outside the registry's lock).
      auto it = r.listeners.find({listener_->address(), listener_->port()});
      if (it != r.listeners.end() && it->second == listener_) {
        r.listeners.erase(it);
      }
      // Registered under port 0 (tests): found by the port asked for.
      for (auto i = r.listeners.begin(); i != r.listeners.end(); ++i) {
        if (i->second == listener_) {
          r.listeners.erase(i);
          break;
        }
      }
    }
    stopped = std::move(listener_);
  }
  id_ = 0;
  stopped.reset();  // Joins the thread when this was the last reference.
}

}  // namespace batchbus
