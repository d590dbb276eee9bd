#include "serve/conn_watch.h"

#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>

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

}  // namespace modernbert::serve
