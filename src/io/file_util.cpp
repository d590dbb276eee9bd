// Atomic file writes: temp file in the same directory, fsync, rename, fsync of the directory. A
// crash at any point leaves either the old file or the complete new one, never half a file.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "modernbert/error.h"
#include "modernbert/file_io.h"

namespace modernbert {

namespace {
std::string dir_of(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}
}  // namespace

namespace {
constexpr size_t kBufferBytes = size_t{1} << 20;

void write_all(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(path + ": write failed: " + std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}
}  // namespace

AtomicOutputFile::AtomicOutputFile(const std::string& path) : path_(path) {
  std::random_device rd;
  tmp_ = path + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(rd());
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(path + ": cannot create temporary file " + tmp_ + ": " + std::strerror(errno));
}

AtomicOutputFile::~AtomicOutputFile() {
  if (committed_) return;
  if (fd_ >= 0) ::close(fd_);
  ::unlink(tmp_.c_str());
}

void AtomicOutputFile::flush_buffer() {
  if (buf_.empty()) return;
  write_all(fd_, buf_.data(), buf_.size(), path_);
  buf_.clear();
}

void AtomicOutputFile::write(const void* data, size_t n) {
  if (committed_ || fd_ < 0) throw Error(path_ + ": write after commit");
  if (buf_.size() + n <= kBufferBytes) {
    if (buf_.capacity() < kBufferBytes) buf_.reserve(kBufferBytes);
    buf_.append(static_cast<const char*>(data), n);
    return;
  }
  flush_buffer();
  write_all(fd_, static_cast<const char*>(data), n, path_);  // large blocks go straight from the caller
}

void AtomicOutputFile::commit() {
  if (committed_) return;
  flush_buffer();
  const int fd = fd_;
  fd_ = -1;
  if (::fsync(fd) != 0) {
    int e = errno;
    ::close(fd);
    throw Error(path_ + ": fsync failed: " + std::strerror(e));
  }
  if (::close(fd) != 0) throw Error(path_ + ": close failed: " + std::strerror(errno));
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) throw Error(path_ + ": rename failed: " + std::strerror(errno));
  committed_ = true;
  int dfd = ::open(dir_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomic(const std::string& path, const std::string& content) {
  AtomicOutputFile f(path);
  f.write(content.data(), content.size());
  f.commit();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open: " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error(path + ": read failed");
  return ss.str();
}

}  // namespace modernbert
