// Whole files: atomic writes (temp file beside the target, fsync, rename, fsync of the directory:
// a crash at any point leaves either the old file or the complete new one) and whole-file reads.
// Every failure throws a modernbert::Error naming the path.
#pragma once

#include <cstddef>
#include <string>

namespace modernbert {

// A file that appears whole or not at all: bytes go to a temp file beside `path`
// (PATH.tmp.PID.RANDOM, same directory so the rename stays on one file system); commit() fsyncs it,
// renames it over `path` and fsyncs the directory. Destroyed without commit() (an error, an
// exception unwinding), it removes the temp file and leaves any existing `path` untouched.
class AtomicOutputFile {
 public:
  explicit AtomicOutputFile(const std::string& path);  // throws naming the path
  ~AtomicOutputFile();
  AtomicOutputFile(const AtomicOutputFile&) = delete;
  AtomicOutputFile& operator=(const AtomicOutputFile&) = delete;
  void write(const void* data, size_t n);  // throws naming the path (disk full, ...)
  void write(const std::string& s) { write(s.data(), s.size()); }
  void flush() { flush_buffer(); }  // hands gathered bytes to the kernel (no fsync, no rename)
  void commit();
  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return tmp_; }

 private:
  void flush_buffer();
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
  std::string buf_;  // small writes are gathered into ~1 MiB write(2) calls
};

// Writes `content` to `path` atomically (temp file beside it, fsync, rename). Throws on failure and
// leaves no temp file behind.
void write_file_atomic(const std::string& path, const std::string& content);
std::string read_file(const std::string& path);  // throws naming the file

}  // namespace modernbert
