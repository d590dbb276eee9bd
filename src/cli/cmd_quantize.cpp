// modernbert quantize: a float checkpoint -> a bf16 / f16 / int8 checkpoint that loads directly
// (docs/quantized-checkpoints.md), with every other file inference needs copied beside it.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>

#include "cli/args.h"
#include "cli/command.h"
#include "modernbert/error.h"
#include "modernbert/file_io.h"
#include "modernbert/model_dir.h"

namespace modernbert::cli {
namespace {

namespace fs = std::filesystem;

// Top-level files of a model directory that are weights (rewritten or irrelevant to inference from
// safetensors) and so are not copied: the float safetensors and their index, and the other
// frameworks' weight formats.
bool is_weight_file(const std::string& name, const std::set<std::string>& shards) {
  auto ends = [&](const char* suf) {
    const std::string s(suf);
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return name == "model.safetensors" || name == "model.safetensors.index.json" || shards.count(name) ||
         name == "config.json" || name.rfind("pytorch_model", 0) == 0 || ends(".bin") || ends(".h5") ||
         ends(".msgpack") || ends(".onnx") || ends(".ckpt") || ends(".pt") || ends(".pth");
}

// The sub-directories of sentence-transformers modules (modules.json "path" entries: 1_Pooling,
// 1_Dense, 2_Normalize, ...): the only directories inference reads.
std::set<std::string> module_dirs(const std::string& dir) {
  std::set<std::string> out;
  const std::string path = dir + "/modules.json";
  if (!fs::exists(path)) return out;
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(read_file(path));
  } catch (const std::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  }
  if (!m.is_array()) return out;
  for (const auto& e : m)
    if (e.is_object() && e.contains("path") && e["path"].is_string()) {
      const std::string p = e["path"].get<std::string>();
      if (!p.empty() && p.find("..") == std::string::npos && p[0] != '/') out.insert(p);
    }
  return out;
}

std::set<std::string> shard_files(const std::string& dir) {
  std::set<std::string> out;
  const std::string index = dir + "/model.safetensors.index.json";
  if (!fs::exists(index)) return out;
  try {
    auto j = nlohmann::json::parse(read_file(index));
    if (j.contains("weight_map") && j["weight_map"].is_object())
      for (const auto& v : j["weight_map"])
        if (v.is_string()) out.insert(v.get<std::string>());
  } catch (const std::exception&) {
    // load_model_dir has already read the index; nothing more to learn here
  }
  return out;
}

uint64_t weight_bytes(const std::string& dir, const std::set<std::string>& shards) {
  uint64_t n = 0;
  if (fs::exists(dir + "/model.safetensors")) n += fs::file_size(dir + "/model.safetensors");
  for (const auto& s : shards)
    if (fs::exists(dir + "/" + s)) n += fs::file_size(dir + "/" + s);
  return n;
}

std::string mib(uint64_t b) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1024.0 * 1024.0));
  return buf;
}

// The temporary sibling directory the output is written into, then renamed to --out (so that --out
// appears complete or not at all). Until commit() it is removed: by the destructor on an error, and
// on SIGINT / SIGTERM / SIGHUP, after which the process exits 128 + signal (the default action's
// status). A signal handler cannot remove a directory tree, so it only writes the signal number to
// a pipe; a watcher thread does the removal. Creating the directory and the final rename hold the
// watcher's lock, so a signal never removes a directory that has become --out, nor misses one just
// made. A signal the caller ignores (nohup, `cmd &` in a script) stays ignored; signals after the
// object is gone take their default action.
int g_quit_pipe[2] = {-1, -1};
extern "C" void on_quantize_signal(int sig) {
  const unsigned char c = static_cast<unsigned char>(sig);
  ssize_t r = write(g_quit_pipe[1], &c, 1);
  (void)r;
}

class StagingDir {
 public:
  // Makes the directory from a mkdtemp template ("...XXXXXX").
  explicit StagingDir(std::string tmpl) {
    start_watcher();
    const std::string pattern = tmpl;  // mkdtemp fills in the X's even when it fails
    int err = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (::mkdtemp(tmpl.data()))
        path_ = tmpl;
      else
        err = errno;
    }
    if (err != 0) {
      stop_watcher();  // without the lock: a watcher woken by a signal waits for it
      throw Error("quantize: cannot create the temporary directory " + pattern + ": " + std::strerror(err));
    }
  }
  const std::string& path() const { return path_; }
  // Renames the directory to `to`; from then on nothing removes it.
  void commit(const fs::path& to) {
    std::lock_guard<std::mutex> lock(mu_);
    if (::rename(path_.c_str(), to.c_str()) != 0)
      throw Error("quantize: cannot rename " + path_ + " to " + to.string() + ": " + std::strerror(errno));
    committed_ = true;
  }
  ~StagingDir() {
    stop_watcher();
    if (!committed_) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;

 private:
  void start_watcher() {
    if (pipe(g_quit_pipe) != 0) return;  // no watcher: an interrupt leaves the directory
    watcher_ = std::thread([this] {
      unsigned char c = 0;
      while (read(g_quit_pipe[0], &c, 1) < 0 && errno == EINTR) {
      }
      if (c == 0) return;  // stop_watcher's wake-up
      std::lock_guard<std::mutex> lock(mu_);
      if (!committed_) {
        if (!path_.empty()) remove_while_written(path_);
        std::fprintf(stderr, "quantize: interrupted (signal %d): nothing written\n", c);
      }
      _exit(128 + c);
    });
    struct sigaction sa {};
    sa.sa_handler = on_quantize_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (int i = 0; i < 3; ++i) {
      sigaction(kSignals[i], nullptr, &old_[i]);
      if (old_[i].sa_handler != SIG_IGN) sigaction(kSignals[i], &sa, nullptr);
    }
  }
  void stop_watcher() {
    if (!watcher_.joinable()) return;
    for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &old_[i], nullptr);
    const unsigned char stop = 0;
    ssize_t r = write(g_quit_pipe[1], &stop, 1);
    (void)r;
    watcher_.join();
    close(g_quit_pipe[0]);
    close(g_quit_pipe[1]);
  }
  // The main thread goes on writing into `dir` meanwhile: a file it creates after remove_all has
  // listed the directory would make the final rmdir fail. Renamed away first, `dir` takes no new
  // entries by path (the writer's next open fails); what was already under way is caught by trying
  // again.
  static void remove_while_written(const std::string& dir) {
    const std::string doomed = dir + ".interrupted";
    const std::string& victim = ::rename(dir.c_str(), doomed.c_str()) == 0 ? doomed : dir;
    std::error_code ec;
    for (int attempt = 0; attempt < 200 && fs::exists(victim, ec); ++attempt) {
      fs::remove_all(victim, ec);
      if (fs::exists(victim, ec)) ::usleep(1000);
    }
  }
  static constexpr int kSignals[3] = {SIGINT, SIGTERM, SIGHUP};
  std::string path_;
  std::mutex mu_;
  bool committed_ = false;
  struct sigaction old_[3]{};
  std::thread watcher_;
};

int run_quantize(int argc, char** argv) {
  ArgParser a("quantize", "--model DIR --out DIR --dtype int8|bf16|f16",
              "Write a reduced-precision copy of a float checkpoint (F32 / BF16 / F16 safetensors) that the\n"
              "inference commands load directly (docs/quantized-checkpoints.md):\n"
              "  int8  linear weights int8, symmetric per output channel (I8 + F32 '<name>_scale'); embeddings\n"
              "        bf16; activations are quantized per token at run time\n"
              "  bf16  linear weights and embeddings bfloat16      f16  the same in IEEE half\n"
              "Norms, biases and the classifier stay float32. tokenizer.json, sentence-transformers files\n"
              "and module directories are copied. The output directory must not exist (or be empty); it\n"
              "appears complete or not at all.");
  a.option("model", "DIR", "float model directory (config.json + model.safetensors)");
  a.option("out", "DIR", "output directory (must not exist, or be empty)");
  a.option("dtype", "TYPE", "int8 | bf16 | f16");
  if (!a.parse(argc, argv)) return 0;
  const std::string model = a.require("model"), out_arg = a.require("out"), dt = a.require("dtype");
  Precision p;
  if (!parse_precision(dt, &p) || p == Precision::kF32)
    throw Error("quantize: --dtype must be int8, bf16 or f16, got '" + dt + "'");
  if (out_arg.empty()) throw Error("quantize: --out is empty: give the directory to write");
  fs::path out = fs::path(out_arg).lexically_normal();
  if (!out.has_filename()) out = out.parent_path();  // "dir/" -> "dir"
  // The result is renamed into place: --out must name a directory entry that rename(2) can replace.
  if (out.filename() == "." || out.filename() == ".." || out == out.root_path())
    throw Error("quantize: --out " + out_arg + " names the current, parent or root directory: give a new directory");
  std::error_code ec;
  if (fs::is_symlink(fs::symlink_status(out, ec)))
    throw Error("quantize: --out " + out.string() +
                " is a symbolic link: give a new directory (or the link's target itself), not a link");
  if (fs::exists(out, ec)) {
    if (!fs::is_directory(out, ec)) throw Error("quantize: --out " + out.string() + " exists and is not a directory");
    if (!fs::is_empty(out, ec))
      throw Error("quantize: --out " + out.string() + " exists and is not empty: give a new directory");
  }
  const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec))
    throw Error("quantize: the parent of --out (" + parent.string() + ") is not a directory");

  // Write everything into a temporary sibling of --out, check that it loads, then rename it into place.
  std::string base = ".";  // built step by step: GCC 12 warns (-Wrestrict, falsely) on "." + string&&
  base += out.filename().string();
  base += ".tmp-XXXXXX";
  StagingDir staging((parent / base).string());
  const std::string& tmp = staging.path();
  std::string stored_dtype;
  {  // converted while loading (no fp32 copy), written, then released before the check below
    LoadOptions lo;
    lo.precision = p;
    lo.allow_quantized = false;  // the input must be the float checkpoint
    LoadedModel m = load_model_dir(model, lo);
    stored_dtype = m.stored_dtype;
    save_quantized_model_dir(tmp, m.config, m.weights, p);
  }
  const std::set<std::string> shards = shard_files(model);

  const std::set<std::string> modules = module_dirs(model);
  std::string copied, skipped;
  for (const auto& e : fs::directory_iterator(model)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name[0] == '.') continue;
    if (e.is_regular_file()) {
      if (is_weight_file(name, shards)) continue;
      fs::copy_file(e.path(), fs::path(tmp) / name);
      copied += " " + name;
    } else if (e.is_directory() && modules.count(name)) {
      fs::copy(e.path(), fs::path(tmp) / name, fs::copy_options::recursive);
      copied += " " + name + "/";
    } else if (e.is_directory()) {
      skipped += " " + name + "/";
    }
  }
  {  // the result must load as what it says it is
    LoadedModel check = load_model_dir(tmp);
    if (check.precision != p || !check.quantized_checkpoint)
      throw Error("quantize: internal error: the written checkpoint does not load as " +
                  std::string(precision_name(p)));
  }
  const mode_t mask = ::umask(0);  // mkdtemp made it 0700: give it a normal directory's mode
  ::umask(mask);
  ::chmod(tmp.c_str(), 0777 & ~mask);
  // rename(2) replaces an empty directory atomically, so a reader sees no directory or a whole one.
  staging.commit(out);

  const uint64_t before = weight_bytes(model, shards), after = fs::file_size(out / "model.safetensors");
  std::fprintf(stderr, "quantize: %s (%s weights, %s) -> %s (%s, %s, %.2fx)\n", model.c_str(), stored_dtype.c_str(),
               mib(before).c_str(), out.c_str(), precision_name(p), mib(after).c_str(),
               before ? static_cast<double>(after) / static_cast<double>(before) : 0.0);
  std::fprintf(stderr, "quantize: copied%s\n", copied.empty() ? " nothing else" : copied.c_str());
  if (!skipped.empty())
    std::fprintf(stderr, "quantize: skipped directories (not sentence-transformers modules):%s\n", skipped.c_str());
  return 0;
}

CommandRegistrar reg({"quantize", "write a bf16 / f16 / int8 copy of a float checkpoint", run_quantize});

}  // namespace
}  // namespace modernbert::cli
