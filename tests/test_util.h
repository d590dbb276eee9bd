// Helpers shared by the test files: temp dirs, running the CLI and the PyTorch reference.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <source_location>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

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

// The JSON objects of a command's output, one per line starting with '{' (other lines skipped).
inline std::vector<nlohmann::json> jsonl(const std::string& text) {
  std::vector<nlohmann::json> out;
  std::stringstream ss(text);
  std::string line;
  while (std::getline(ss, line))
    if (!line.empty() && line[0] == '{') out.push_back(nlohmann::json::parse(line));
  return out;
}
// The last of them (null when there is none): a command's final JSON line.
inline nlohmann::json last_json_line(const std::string& text) {
  auto all = jsonl(text);
  return all.empty() ? nlohmann::json() : all.back();
}

// The PyTorch reference (tests/reference) runs under Debian's python3 with python3-torch.
inline bool have_torch() {
  static int cached = -1;
  if (cached < 0) cached = run_command("/usr/bin/python3 -c 'import torch, numpy'").status == 0;
  return cached == 1;
}
inline std::string python() { return "/usr/bin/python3"; }
inline std::string reference_dir() { return std::string(MB_SOURCE_DIR) + "/tests/reference"; }

// The committed fixtures (provenance in tests/data/README.md, re-made by
// scripts/make_test_fixtures.sh). Tests read only these, so a fresh clone runs every test.
inline std::string test_data() { return std::string(MB_SOURCE_DIR) + "/tests/data"; }
// The real answerdotai/ModernBERT-base tokenizer (Apache-2.0), committed verbatim.
inline std::string tokenizer_json() { return test_data() + "/modernbert-tokenizer/tokenizer.json"; }

// The test command (scripts/run_tests.sh) installs PyTorch and the npm reference; a missing one
// is a broken test environment, so it fails the test instead of skipping it.
#define MB_REQUIRE_TORCH()                                                                         \
  if (!mbtest::have_torch())                                                                       \
  FAIL() << "/usr/bin/python3 cannot import torch and numpy: install python3-torch python3-numpy " \
            "(scripts/install_deps.sh --test)"

inline std::string tokenizer_reference_dir() { return std::string(MB_SOURCE_DIR) + "/scripts/tokenizer_reference"; }
inline bool have_node_reference() {
  return run_command("node --version").status == 0 &&
         std::ifstream(tokenizer_reference_dir() + "/node_modules/tokenizers/package.json").good();
}
#define MB_REQUIRE_NODE()                                   \
  if (!mbtest::have_node_reference())                       \
  FAIL() << "node or " << mbtest::tokenizer_reference_dir() \
         << "/node_modules/tokenizers missing: run `npm ci` there (scripts/run_tests.sh does)"

// Concatenates anything streamable (for test messages).
template <class... A>
std::string str(const A&... a) {
  std::ostringstream os;
  (os << ... << a);
  return os.str();
}

// Element-wise closeness against a reference: |got[i] - ref[i]| <= atol + rtol * |ref[i]| for
// every i (numpy.allclose's rule). A max-normalised error (max|diff| / max|ref|) lets a small
// element be far off when another element is large; this bound does not. On failure it names the
// worst element (largest |diff| / bound), its index and both values, and how many fail.
template <class G, class R>
::testing::AssertionResult allclose(const G* got, const R* ref, size_t n, double atol, double rtol) {
  size_t bad = 0, worst = 0;
  double worst_ratio = -1, max_abs = 0;
  for (size_t i = 0; i < n; ++i) {
    double g = static_cast<double>(got[i]), r = static_cast<double>(ref[i]);
    double d = std::fabs(g - r), bound = atol + rtol * std::fabs(r);
    double ratio = std::isfinite(d) ? d / std::max(bound, 1e-300) : HUGE_VAL;
    if (!(d <= bound)) ++bad;  // also counts NaN
    if (std::isfinite(d)) max_abs = std::max(max_abs, d);
    if (ratio > worst_ratio || std::isnan(ratio)) worst_ratio = ratio, worst = i;
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  std::ostringstream m;
  m.precision(9);
  m << bad << " of " << n << " elements outside |got - ref| <= " << atol << " + " << rtol << " * |ref|; worst ["
    << worst << "]: got " << static_cast<double>(got[worst]) << ", ref " << static_cast<double>(ref[worst])
    << " (|diff| " << std::fabs(static_cast<double>(got[worst]) - static_cast<double>(ref[worst])) << " = "
    << worst_ratio << " x its bound); max |diff| " << max_abs;
  return ::testing::AssertionFailure() << m.str();
}

template <class G, class R>
::testing::AssertionResult allclose(const G& got, const R& ref, double atol, double rtol) {
  if (std::size(got) != std::size(ref))
    return ::testing::AssertionFailure() << "sizes differ: got " << std::size(got) << ", ref " << std::size(ref);
  return allclose(std::data(got), std::data(ref), std::size(got), atol, rtol);
}

// EXPECT form of allclose, reported at the caller's line with `what` naming the tensor.
template <class G, class R>
void expect_allclose(const G& got, const R& ref, double atol, double rtol, const std::string& what,
                     std::source_location loc = std::source_location::current()) {
  ::testing::ScopedTrace trace(loc.file_name(), static_cast<int>(loc.line()), what);
  EXPECT_TRUE(allclose(got, ref, atol, rtol)) << what;
  // MB_ALLCLOSE_STATS=1 prints what a tolerance has to cover (how the stated ones were measured):
  // the largest |diff|, the atol needed at this rtol, and the largest |diff| / |ref| among
  // elements with |ref| >= atol.
  if (std::getenv("MB_ALLCLOSE_STATS") && std::size(got) == std::size(ref)) {
    double max_d = 0, need_atol = 0, max_rel = 0;
    for (size_t i = 0; i < std::size(got); ++i) {
      double g = static_cast<double>(std::data(got)[i]), r = static_cast<double>(std::data(ref)[i]);
      double d = std::fabs(g - r);
      max_d = std::max(max_d, d);
      need_atol = std::max(need_atol, d - rtol * std::fabs(r));
      if (std::fabs(r) >= atol && r != 0) max_rel = std::max(max_rel, d / std::fabs(r));
    }
    std::printf("  [allclose] %s: max|diff| %.3g, atol needed at rtol %.0e: %.3g (stated %.0e), max rel %.3g\n",
                what.c_str(), max_d, rtol, need_atol, atol, max_rel);
  }
}

}  // namespace mbtest
