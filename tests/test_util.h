// Helpers shared by the test files: temp dirs, running the CLI and the PyTorch reference.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace mbtest {

// A fresh directory under the build tree, removed at destruction.
class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    std::string tmpl = std::string(MB_BINARY_DIR) + "/test_tmp_" + tag + "_XXXXXX";
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", tmpl.c_str());
    path_ = mkdtemp(buf) ? buf : "";
  }
  ~TempDir() {
    if (!path_.empty() && !std::getenv("MB_KEEP_TMP")) std::system(("rm -rf '" + path_ + "'").c_str());
  }
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct RunResult {
  int status;
  std::string output;  // stdout + stderr
};

inline RunResult run_command(const std::string& cmd) {
  RunResult r{-1, ""};
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

inline std::string cli() { return MB_CLI_PATH; }

// The PyTorch reference (tests/reference) runs under Debian's python3 with python3-torch.
inline bool have_torch() {
  static int cached = -1;
  if (cached < 0) cached = run_command("/usr/bin/python3 -c 'import torch, numpy'").status == 0;
  return cached == 1;
}
inline std::string python() { return "/usr/bin/python3"; }
inline std::string reference_dir() { return std::string(MB_SOURCE_DIR) + "/tests/reference"; }

inline std::string shared_data() {
  const char* e = std::getenv("MB_SHARED_DATA");
  return e ? e : std::string(MB_SOURCE_DIR) + "/../shared/data";
}

}  // namespace mbtest
