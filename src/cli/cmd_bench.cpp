// `modernbert bench`: encoder throughput on a JSONL workload, one JSON line of results per dtype.
//
// Input lines: {"input_ids": [...]} (ids used exactly as given), or {"text": ...} when the model
// directory has a tokenizer.json (encoded with the tokenizer's special tokens). Sequences are
// packed, in input order, into unpadded batches greedily by a token budget (a sequence longer than
// the budget goes alone). The whole input is run `--warmup` times untimed, then `--repeat` times
// timed; every pass is the sum of Encoder::forward over all batches.
//
// FLOPs counted (useful work only: no padding, embedding lookup free, no MLM head), per token and
// per layer: 2·(3H·H + H·H + 2I·H + I·H) for the four linears, plus attention 4·d·keys per head,
// where keys = the sequence length for global layers and |{j : |i−j| <= w/2, 0 <= j < n}| for
// local layers (QK^T and PV, 2 FLOPs per multiply-add each).
//
// --dtype (#15) picks what the linear weights and the embedding table are held in
// (modernbert/precision.h); the JSON line names it ("dtype"), the GEMM path this CPU runs it on
// ("linear_path", kernels::linear_path) and the bytes the weights occupy as held ("weights_mib").
// A list (--dtype f32,bf16) loads the model once per entry and times them interleaved: round i runs
// one pass of each, starting at entry i mod n, so every dtype sees the same host load. Each entry
// prints its own line; the ones after the first add "paired" (speedup over the first entry, from
// the passes of the same round: median, min and max over rounds), a ratio that drifting load on a
// shared machine moves far less than ratios of separate runs. peak_rss_mib is then the process's,
// with every model loaded ("models_loaded").
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/command.h"
#include "core/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/cpu/profile.h"
#include "modernbert/batching.h"
#include "modernbert/error.h"
#include "modernbert/model.h"
#include "modernbert/model_dir.h"
#include "modernbert/precision.h"
#include "modernbert/safetensors.h"
#include "modernbert/token_ids.h"
#include "modernbert/tokenizer.h"
#include "tokenizer/unicode.h"

namespace modernbert::cli {
namespace {

std::vector<std::vector<int32_t>> read_workload(const std::string& path, const std::string& model_dir,
                                                int64_t vocab_size, bool lossy_utf8) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open input file " + path);
  std::optional<Tokenizer> tok;
  std::vector<SequenceInput> inputs;
  std::vector<std::string> where;  // "FILE:LINE: " of each input
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const std::string w = path + ":" + std::to_string(line_no) + ": ";
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    // JSON cannot carry invalid UTF-8; with --lossy-utf8 it is replaced before parsing.
    if (lossy_utf8 && tok::utf8_first_invalid(line) != std::string::npos) line = tok::utf8_lossy(line, nullptr);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(w + "invalid JSON: " + e.what());
    }
    if (!j.is_object()) throw Error(w + "expected a JSON object");
    SequenceInput s;
    if (auto it = j.find("input_ids"); it != j.end()) {
      s.ids = parse_token_ids(*it, vocab_size, w + "field input_ids");
      s.has_ids = true;
    } else if (auto t = j.find("text"); t != j.end() && t->is_string()) {
      if (!tok) {
        const std::string tp = model_dir + "/tokenizer.json";
        if (!std::ifstream(tp)) throw Error(w + "a \"text\" line needs " + tp + " (or give \"input_ids\")");
        tok = Tokenizer::from_file(tp);
      }
      s.text = t->get<std::string>();
    } else {
      throw Error(w + "expected \"input_ids\" (array of ints) or \"text\" (string)");
    }
    inputs.push_back(std::move(s));
    where.push_back(w);
  }
  if (inputs.empty()) throw Error(path + ": no sequences");
  // Texts are encoded as given (batching.h): no length limit, no truncation; the workload decides.
  SequenceOptions o;
  o.lossy_utf8 = lossy_utf8;
  try {
    return inputs_to_ids(tok ? &*tok : nullptr, inputs, o);
  } catch (const BatchItemError& e) {
    // This command has always called a sequence without tokens "empty sequence".
    throw Error(where.at(e.index()) + (e.detail() == "no tokens" ? "empty sequence" : e.detail()));
  }
}

// Useful FLOPs of one forward of a sequence of n tokens (see the file comment).
double sequence_flops(const ModelConfig& c, int64_t n) {
  const double H = static_cast<double>(c.hidden_size), I = static_cast<double>(c.intermediate_size);
  const double d = static_cast<double>(c.head_dim()), nh = static_cast<double>(c.num_attention_heads);
  const double linear_per_token = 2.0 * (3 * H * H + H * H + 2 * I * H + I * H);
  double global_keys = static_cast<double>(n) * static_cast<double>(n);
  auto local_keys = [n](int64_t hw) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i)
      s += static_cast<double>(std::min(n - 1, i + hw) - std::max<int64_t>(0, i - hw) + 1);
    return s;
  };
  double total = 0;
  std::optional<std::pair<int64_t, double>> cache;  // half window -> keys
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    total += linear_per_token * static_cast<double>(n);
    double keys;
    const int64_t hw = c.half_window(l);
    if (hw < 0) {
      keys = global_keys;
    } else {
      if (!cache || cache->first != hw) cache = std::make_pair(hw, local_keys(hw));
      keys = cache->second;
    }
    total += 4.0 * d * nh * keys;
  }
  return total;
}

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double peak_rss_mib() {
  struct rusage ru {};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

int run_bench(int argc, char** argv) {
  ArgParser a("bench", "--model DIR --input FILE [flags]",
              "Encoder throughput: runs Encoder::forward over every sequence of a JSONL file\n"
              "({\"input_ids\": [...]} per line, ids used as given; {\"text\": ...} if the model dir has\n"
              "a tokenizer.json), packed into unpadded batches greedily by --max-batch-tokens (input\n"
              "order; a longer sequence goes alone). The whole input runs --warmup times, then --repeat\n"
              "times timed. Prints one JSON line: tokens, sequences, batches, threads, seconds_median,\n"
              "seconds_min, tokens_per_s (from the median), gflops (useful FLOPs: linears + attention\n"
              "over the keys each query really attends, no padding, no head), dtype, linear_path (the\n"
              "GEMM path the dtype runs on this CPU), weights_mib (weights as held) and peak_rss_mib. With\n"
              "--dtype A,B,... each runs in turn within every round and prints its own line; the later\n"
              "lines add \"paired\": the speedup over A from the passes of the same round.");
  a.option("model", "DIR", "model directory (config.json + model.safetensors)");
  a.option("input", "FILE", "JSONL workload");
  a.option("threads", "N", "compute threads (kernel thread pool; OpenBLAS runs single-threaded inside it)", "2");
  a.option("repeat", "N", "timed passes over the whole input", "5");
  a.option("warmup", "N", "untimed passes before timing", "1");
  a.option("max-batch-tokens", "N", "token budget of one unpadded batch", "16384");
  a.option("dtype", "T[,T...]",
           "f32|bf16|f16|int8: what the linear weights and embeddings are held in (a float checkpoint is "
           "converted at load); default: the checkpoint's own type (f32 for a float checkpoint). A list "
           "(f32,bf16) times each interleaved, one line each, the later ones with their speedup over the "
           "first measured pass by pass (\"paired\")");
  a.flag("lossy-utf8", "replace invalid UTF-8 in the input with U+FFFD instead of failing");
  a.option("dump-hidden", "FILE",
           "debug: write the first pass's last_hidden_state F32 [T,H], cu_seqlens and input_ids I64 "
           "(all batches concatenated) to this safetensors file");
  if (!a.parse(argc, argv)) return 0;
  const std::string model_dir = a.require("model"), input = a.require("input");
  const long long threads = a.get_int("threads"), repeat = a.get_int("repeat"), warmup = a.get_int("warmup");
  const long long budget = a.get_int("max-batch-tokens");
  if (threads < 1) throw Error("bench: --threads must be >= 1");
  if (repeat < 1) throw Error("bench: --repeat must be >= 1");
  if (warmup < 0) throw Error("bench: --warmup must be >= 0");
  if (budget < 1) throw Error("bench: --max-batch-tokens must be >= 1");
  // One entry per --dtype (or one with the checkpoint's own type).
  std::vector<LoadOptions> loads;
  if (a.has("dtype")) {
    const std::string list = a.get("dtype");
    for (const std::string& t : split_commas(list, /*keep_empty=*/true)) {  // an empty entry is an error
      Precision p{};
      if (!parse_precision(t, &p))
        throw Error("bench: --dtype must be f32, bf16, f16 or int8, or a comma-separated list of them (got \"" + list +
                    "\")");
      LoadOptions lo;
      lo.precision = p;
      loads.push_back(lo);
    }
    if (loads.size() > 8) throw Error("bench: --dtype lists at most 8 entries");
  } else {
    loads.emplace_back();
  }
  if (loads.size() > 1 && a.has("dump-hidden")) throw Error("bench: --dump-hidden takes a single --dtype");

  // The kernels' pool gets exactly --threads threads; OpenBLAS is pinned to one thread per pool
  // worker (gemm.cpp, kPool).
  kernels::set_num_threads(static_cast<int>(threads));
  const int pool_threads = kernels::default_pool().size();
  if (pool_threads != threads)
    throw Error("bench: the kernel thread pool already has " + std::to_string(pool_threads) + " threads");

  // Each model stays where it was loaded: its Encoder keeps a reference to its weights.
  struct Run {
    std::unique_ptr<LoadedModel> m;
    std::unique_ptr<Encoder> enc;
    std::vector<double> times;
    std::vector<kernels::prof::Entry> prof;  // per-op totals of its timed passes
  };
  std::vector<Run> runs;
  for (const LoadOptions& lo : loads) {
    Run r;
    r.m = std::make_unique<LoadedModel>(load_model_dir(model_dir, lo));
    r.enc = std::make_unique<Encoder>(r.m->weights);
    runs.push_back(std::move(r));
  }
  Encoder& enc = *runs.front().enc;
  const ModelConfig& cfg = enc.config();
  const std::vector<std::vector<int32_t>> seqs = read_workload(input, model_dir, cfg.vocab_size, a.has("lossy-utf8"));
  // Greedy packing in input order (batching.h); a sequence longer than the budget goes alone.
  const std::vector<InputBatch> batches = make_batches(seqs, budget);
  int64_t tokens = 0;
  double flops = 0;
  for (const auto& s : seqs) {
    tokens += static_cast<int64_t>(s.size());
    flops += sequence_flops(cfg, static_cast<int64_t>(s.size()));
  }
  for (const auto& b : batches) b.batch.validate(cfg.vocab_size);

  std::vector<float> out;
  if (a.has("dump-hidden")) {
    const int64_t H = cfg.hidden_size;
    std::vector<float> hidden;
    std::vector<int64_t> cu{0}, ids;
    hidden.reserve(static_cast<size_t>(tokens * H));
    for (const auto& ib : batches) {
      const Batch& b = ib.batch;
      enc.forward(b, out);
      hidden.insert(hidden.end(), out.begin(), out.end());
      for (int64_t s = 0; s < b.num_seqs(); ++s) cu.push_back(cu.back() + b.seq_len(s));
      ids.insert(ids.end(), b.ids.begin(), b.ids.end());
    }
    SafeTensorsWriter w;
    w.add_i64_view("input_ids", {tokens}, ids.data());
    w.add_i64_view("cu_seqlens", {static_cast<int64_t>(cu.size())}, cu.data());
    w.add_f32_view("last_hidden_state", {tokens, H}, hidden.data());
    w.write(a.get("dump-hidden"));
  }

  auto pass = [&](Encoder& e) {
    for (const auto& b : batches) e.forward(b.batch, out);
  };
  for (Run& r : runs)
    for (long long i = 0; i < warmup; ++i) pass(*r.enc);
  // MODERNBERT_PROFILE: per-op totals of each entry's timed passes only.
  auto add_profile = [](std::vector<kernels::prof::Entry>& into) {
    for (const auto& e : kernels::prof::totals()) {
      auto it = std::find_if(into.begin(), into.end(), [&](const auto& x) { return std::string(x.name) == e.name; });
      if (it == into.end()) {
        into.push_back(e);
      } else {
        it->wall += e.wall;
        it->cpu += e.cpu;
        it->calls += e.calls;
      }
    }
    kernels::prof::reset();
  };
  kernels::prof::reset();
  const size_t n_runs = runs.size();
  for (long long i = 0; i < repeat; ++i)
    for (size_t k = 0; k < n_runs; ++k) {
      Run& r = runs[(static_cast<size_t>(i) + k) % n_runs];
      const double t0 = now_s();
      pass(*r.enc);
      r.times.push_back(now_s() - t0);
      add_profile(r.prof);
    }
  auto median_of = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  };
  const double rss = peak_rss_mib();

  for (const Run& run : runs) {
    const LoadedModel& m = *run.m;
    const std::vector<double>& times = run.times;
    const double median = median_of(times);

    nlohmann::json r;
    r["system"] = "modernbert.cpp";
    r["tokens"] = tokens;
    r["sequences"] = static_cast<int64_t>(seqs.size());
    r["batches"] = static_cast<int64_t>(batches.size());
    r["threads"] = pool_threads;
    r["repeat"] = repeat;
    r["warmup"] = warmup;
    r["seconds_median"] = median;
    r["seconds_min"] = *std::min_element(times.begin(), times.end());
    r["seconds_all"] = times;
    r["tokens_per_s"] = static_cast<double>(tokens) / median;
    r["gflop_per_pass"] = flops * 1e-9;
    r["gflops"] = flops / median * 1e-9;
    r["dtype"] = precision_name(m.precision);
    r["quantized_checkpoint"] = m.quantized_checkpoint;
    r["linear_path"] = kernels::linear_path(m.precision);
    r["attention_path"] = kernels::attention_path(m.precision);
    // The weights as held (bf16 / f16: 2 bytes, int8: 1 byte + a float scale per row), not as stored.
    r["weights_mib"] = static_cast<double>(m.weights.storage_bytes()) / (1024.0 * 1024.0);
    r["arena_mib"] = static_cast<double>(run.enc->arena_floats()) * sizeof(float) / (1024.0 * 1024.0);
    r["peak_rss_mib"] = rss;
    if (n_runs > 1) {
      r["models_loaded"] = static_cast<int64_t>(n_runs);
      if (&run != &runs.front()) {
        // Speedup over the first entry, pass against pass of the same round.
        std::vector<double> ratio;
        for (size_t i = 0; i < times.size(); ++i) ratio.push_back(runs.front().times[i] / times[i]);
        r["paired"] = {{"over", precision_name(runs.front().m->precision)},
                       {"speedup_median", median_of(ratio)},
                       {"speedup_min", *std::min_element(ratio.begin(), ratio.end())},
                       {"speedup_max", *std::max_element(ratio.begin(), ratio.end())},
                       {"rounds", static_cast<int64_t>(ratio.size())}};
      }
    }
    if (kernels::prof::enabled()) {  // seconds per timed pass, per op (encoder.cpp's scope names)
      nlohmann::json prof = nlohmann::json::object();
      for (const auto& e : run.prof)
        prof[e.name] = {{"wall_s", e.wall / static_cast<double>(repeat)},
                        {"cpu_s", e.cpu / static_cast<double>(repeat)}};
      r["profile"] = prof;
    }
    std::printf("%s\n", r.dump().c_str());
  }
  std::fflush(stdout);
  return 0;
}

CommandRegistrar reg({"bench", "encoder throughput on a JSONL workload (a JSON line of results per dtype)", run_bench});

}  // namespace
}  // namespace modernbert::cli
