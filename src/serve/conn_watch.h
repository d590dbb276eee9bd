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

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <utility>

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

// Cuts connections that hold a server thread without a request in progress.
//
// cpp-httplib 0.11 applies its read timeout to each recv(), so a client that sends one header byte
// every second keeps its connection thread forever (slowloris), and keeps the server from exiting.
// The reaper scans the process's sockets once a second (as ConnectionWatch finds one) and shuts
// down (shutdown(2); the owning thread then sees EOF and closes it) every connection to our port
// that has been outside a route handler for longer than `limit`: such a connection is either idle
// in keep-alive (cpp-httplib closes those itself after the keep-alive timeout) or still sending its
// request line and headers. A connection with unread bytes is waiting for a free thread (a thread
// reading headers consumes each byte as it arrives): it holds no thread, and its clock starts
// only when it is next seen without them. The handlers register themselves (enter/leave), and a request body is
// read inside the handler under its own deadline (route_context.cpp). After stop() every connection
// outside a handler for more than a second is cut (a shorter grace than `limit`, not zero: a
// connection that just left its handler may still be writing the response), so that shutdown waits
// only for the requests in progress.
// (The fd is matched by its four-tuple just before shutdown(); a connection that closes and whose
// fd number is reused within that instant could be cut instead: it would see a reset.)
class ConnectionReaper {
 public:
  ConnectionReaper(int port, double limit_seconds);
  ~ConnectionReaper();
  ConnectionReaper(const ConnectionReaper&) = delete;
  ConnectionReaper& operator=(const ConnectionReaper&) = delete;

  // A handler for the client remote_addr:remote_port starts / ends.
  void enter(const std::string& client);
  void leave(const std::string& client);
  // From now on cut every connection outside a handler (shutdown).
  void stopping();
  size_t cut_count() const;

 private:
  using Clock = std::chrono::steady_clock;
  void run();
  void sweep();

  const int port_;
  const Clock::duration limit_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool quit_ = false, stopping_ = false;
  std::map<std::string, int> active_;                 // client -> handlers running
  std::map<std::string, Clock::time_point> outside_;  // client -> outside a handler since
  size_t cut_ = 0;
  std::thread thread_;
};

}  // namespace modernbert::serve
