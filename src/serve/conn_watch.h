// Is the client of the request being handled still there?
//
// cpp-httplib 0.11.4 (Debian's) gives a handler no way to see its connection (newer versions have
// Request::is_connection_closed). We need it: a client that gives up on a long request must not
// keep its sequences in the engine's queue. So we find the socket ourselves: the Request carries
// the connection's four-tuple (local_addr/local_port, remote_addr/remote_port); scanning
// /proc/self/fd for the socket whose getsockname/getpeername match it finds the one fd that is this
// connection (a TCP four-tuple is unique among live connections). The fd stays valid while the
// handler runs: only the worker thread running the handler closes it, after the handler returns.
// The scan costs ~one syscall pair per open fd, so callers do it only for a request that did not
// finish quickly.
//
// Liveness: poll() with POLLRDHUP (Linux) reports the peer's FIN (it closed, or shut its write side
// down: HTTP/1.1 clients do not half-close while waiting for a response) even when unread bytes are
// pending; POLLHUP/POLLERR a reset; then recv(MSG_PEEK | MSG_DONTWAIT) returning 0 is a FIN too.
#pragma once

#include <string>

namespace modernbert::serve {

class ConnectionWatch {
 public:
  ConnectionWatch(std::string local_addr, int local_port, std::string remote_addr, int remote_port)
      : local_addr_(std::move(local_addr)),
        remote_addr_(std::move(remote_addr)),
        local_port_(local_port),
        remote_port_(remote_port) {}
  // False once the client is known to be gone. Finds the socket on the first call; when it cannot
  // be found (not on Linux, /proc not mounted) the client is assumed present.
  bool alive();

  // The fd of the connection with this four-tuple, or -1.
  static int find_socket(const std::string& local_addr, int local_port, const std::string& remote_addr,
                         int remote_port);
  static bool socket_alive(int fd);

 private:
  std::string local_addr_, remote_addr_;
  int local_port_, remote_port_;
  int fd_ = -2;  // -2: not searched yet; -1: not found
};

}  // namespace modernbert::serve
