#include "serve/conn_watch.h"

#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>

namespace modernbert::serve {

namespace {

// The numeric host and port of a socket address, as cpp-httplib computes req.remote_addr
// (getnameinfo NI_NUMERICHOST).
bool host_port(const sockaddr_storage& a, socklen_t len, std::string* host, int* port) {
  char buf[NI_MAXHOST];
  if (getnameinfo(reinterpret_cast<const sockaddr*>(&a), len, buf, sizeof buf, nullptr, 0, NI_NUMERICHOST) != 0)
    return false;
  *host = buf;
  if (a.ss_family == AF_INET)
    *port = ntohs(reinterpret_cast<const sockaddr_in*>(&a)->sin_port);
  else if (a.ss_family == AF_INET6)
    *port = ntohs(reinterpret_cast<const sockaddr_in6*>(&a)->sin6_port);
  else
    return false;
  return true;
}

int port_of(const sockaddr_storage& a) {
  if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&a)->sin_port);
  if (a.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&a)->sin6_port);
  return -1;
}

}  // namespace

int ConnectionWatch::find_socket(const std::string& local_addr, int local_port, const std::string& remote_addr,
                                 int remote_port) {
  DIR* d = opendir("/proc/self/fd");
  if (!d) return -1;
  int found = -1;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    const long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end || fd < 0 || fd == dirfd(d)) continue;
    struct stat st;
    if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage peer{}, self{};
    socklen_t pl = sizeof peer, sl = sizeof self;
    // Ports first: cheap, and they nearly always decide.
    if (getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &pl) != 0) continue;
    if (port_of(peer) != remote_port) continue;
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&self), &sl) != 0) continue;
    if (port_of(self) != local_port) continue;
    std::string ph, sh;
    int pp = 0, sp = 0;
    if (!host_port(peer, pl, &ph, &pp) || !host_port(self, sl, &sh, &sp)) continue;
    if (ph == remote_addr && sh == local_addr) {
      found = static_cast<int>(fd);
      break;
    }
  }
  closedir(d);
  return found;
}

bool ConnectionWatch::socket_alive(int fd) {
  // POLLRDHUP: the peer closed or shut its write side down, seen even when unread bytes are
  // pending (which a recv(MSG_PEEK) of one byte would report as "data" instead).
  pollfd p{fd, static_cast<short>(POLLIN | POLLRDHUP), 0};
  if (poll(&p, 1, 0) < 0) return errno == EINTR;
  if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return false;
  if (!(p.revents & POLLIN)) return true;
  char c;
  const ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return true;    // bytes waiting (a pipelined request): still there
  if (n == 0) return false;  // FIN
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

bool ConnectionWatch::alive() {
  if (fd_ == -2) fd_ = find_socket(local_addr_, local_port_, remote_addr_, remote_port_);
  return fd_ < 0 || socket_alive(fd_);
}

ConnectionReaper::ConnectionReaper(int port, double limit_seconds)
    : port_(port),
      limit_(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(limit_seconds))),
      thread_([this] { run(); }) {}

ConnectionReaper::~ConnectionReaper() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ConnectionReaper::enter(const std::string& client) {
  std::lock_guard<std::mutex> lk(mu_);
  ++active_[client];
}

void ConnectionReaper::leave(const std::string& client) {
  std::lock_guard<std::mutex> lk(mu_);
  if (--active_[client] <= 0) active_.erase(client);
  outside_[client] = Clock::now();  // the connection's clock restarts after each request
}

void ConnectionReaper::stopping() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

size_t ConnectionReaper::cut_count() const {
  std::lock_guard<std::mutex> lk(mu_);
  return cut_;
}

void ConnectionReaper::run() {
  std::unique_lock<std::mutex> lk(mu_);
  while (!quit_) {
    // Stopping: sweep often, so that shutdown is not held up by idle or dribbling connections.
    cv_.wait_for(lk, stopping_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(1000));
    if (quit_) break;
    lk.unlock();
    sweep();
    lk.lock();
  }
}

// outside_ value of a connection seen waiting for a thread (unread bytes): its clock starts when it
// is next seen without them, i.e. once a thread took it.
static constexpr auto kWaiting = std::chrono::steady_clock::time_point::max();

void ConnectionReaper::sweep() {
  DIR* d = opendir("/proc/self/fd");
  if (!d) return;
  const auto now = Clock::now();
  std::map<std::string, Clock::time_point> seen;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    const long lfd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end || lfd < 0 || lfd == dirfd(d)) continue;
    const int fd = static_cast<int>(lfd);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage self{}, peer{};
    socklen_t sl = sizeof self, pl = sizeof peer;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&self), &sl) != 0 || port_of(self) != port_) continue;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0) continue;  // the listening socket
    std::string host;
    int port = 0;
    if (!host_port(peer, pl, &host, &port)) continue;
    const std::string client = host + ":" + std::to_string(port);
    std::lock_guard<std::mutex> lk(mu_);
    if (active_.count(client)) {
      seen[client] = now;
      continue;
    }
    // Unread bytes: the connection waits for a free thread (its request not read yet), so it holds
    // none; its clock starts when a thread takes it (and reads what is there at once).
    int pending = 0;
    if (ioctl(fd, FIONREAD, &pending) == 0 && pending > 0) {
      seen[client] = kWaiting;
      continue;
    }
    auto it = outside_.find(client);
    const auto since = it == outside_.end() || it->second == kWaiting ? now : it->second;
    seen[client] = since;
    // Stopping: cut sooner, but not at once. A connection that left its handler a moment ago may
    // still be writing that handler's response (cpp-httplib writes it after the handler returns),
    // and one just taken by a thread may be about to enter its handler: cutting either would reset
    // an answer the shutdown promises to deliver. Idle and dribbling ones go within a second.
    const bool past_grace = now - since > std::min<Clock::duration>(limit_, std::chrono::seconds(1));
    if ((stopping_ && past_grace) || now - since > limit_) {
      shutdown(fd, SHUT_RDWR);
      ++cut_;
    }
  }
  closedir(d);
  std::lock_guard<std::mutex> lk(mu_);
  outside_ = std::move(seen);  // forget connections that are gone
}

}  // namespace modernbert::serve
