// Run identity, validated trainer state and test fault points (see pretrain_state.h).
#include "train/pretrain_state.h"

#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <map>

#include "core/hash.h"
#include "modernbert/config.h"
#include "modernbert/error.h"
#include "modernbert/file_io.h"
#include "modernbert/safetensors.h"
#include "modernbert/optimizer.h"
#include "modernbert/pretrain.h"

namespace fs = std::filesystem;

namespace modernbert::train {

namespace {

std::string hexd(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", x);
  return buf;
}

// Flattens a JSON value into "a.b[2].c" -> leaf, so two identities can be compared leaf by leaf.
void flatten(const nlohmann::json& j, const std::string& prefix, std::map<std::string, nlohmann::json>& out) {
  if (j.is_object() && !j.empty()) {
    for (auto it = j.begin(); it != j.end(); ++it)
      flatten(it.value(), prefix.empty() ? it.key() : prefix + "." + it.key(), out);
  } else if (j.is_array() && !j.empty()) {
    for (size_t i = 0; i < j.size(); ++i) flatten(j[i], prefix + "[" + std::to_string(i) + "]", out);
  } else {
    out[prefix] = j;
  }
}

std::string show(const nlohmann::json& j) { return j.is_null() ? std::string("(absent)") : j.dump(); }

}  // namespace

std::string run_id_of(const nlohmann::json& identity) {
  const std::string s = identity.dump();
  const uint64_t h = fnv1a64(s);
  char out[24];
  std::snprintf(out, sizeof out, "run-%016" PRIx64, h);
  return out;
}

std::string file_content_hash(const std::string& path, uint64_t* size_out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open");
  uint64_t h = kFnv64Offset, n = 0;
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto got = static_cast<size_t>(in.gcount());
    h = fnv1a64(buf.data(), got, h);
    n += got;
  }
  if (in.bad()) throw Error(path + ": read error");
  if (size_out) *size_out = n;
  char out[17];
  std::snprintf(out, sizeof out, "%016" PRIx64, h);
  return out;
}

nlohmann::json run_identity(const PretrainConfig& pc, const ModelConfig& effective_model, int32_t mask_token_id,
                            int64_t packing_buffer, double schedule_total_tokens) {
  auto files = [](const std::vector<std::string>& paths) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& p : paths) {
      uint64_t size = 0;
      const std::string h = file_content_hash(p, &size);
      a.push_back({{"size", size}, {"hash", h}});
    }
    return a;
  };
  nlohmann::json model = effective_model.to_json();
  nlohmann::json id;
  id["model"] = model;
  id["init"] = {{"rule", to_string(pc.init)}, {"init_from", pc.init_from}, {"tile_from", pc.tile_from}};
  id["tokenizer"] =
      pc.tokenizer.empty() ? nlohmann::json(nullptr) : nlohmann::json(file_content_hash(pc.tokenizer, nullptr));
  id["data"] = files(pc.data);
  id["eval_data"] = files(pc.eval_data);
  id["eval_documents"] = pc.eval_documents;
  id["long_documents"] = to_string(pc.long_documents);
  id["lossy_utf8"] = pc.lossy_utf8;
  id["seed"] = pc.seed;
  id["batch"] = {{"seq_len", pc.seq_len},
                 {"micro_batch_size", pc.micro_batch_size},
                 {"global_batch_size", pc.global_batch_size},
                 {"batch_warmup_tokens", hexd(pc.batch_warmup_tokens)},
                 {"packing_buffer", packing_buffer}};
  id["masking"] = {{"mlm_probability", hexd(pc.mlm_probability)},
                   {"eval_mlm_probability", hexd(pc.eval_mlm_probability)},
                   {"mask_token_id", mask_token_id}};
  id["optimizer"] = {{"type", to_string(pc.optimizer.type)}, {"lr", hexd(pc.optimizer.lr)},
                     {"beta1", hexd(pc.optimizer.beta1)},    {"beta2", hexd(pc.optimizer.beta2)},
                     {"eps", hexd(pc.optimizer.eps)},        {"weight_decay", hexd(pc.optimizer.weight_decay)}};
  id["schedule"] = {{"warmup_tokens", hexd(pc.schedule.warmup_tokens)},
                    {"decay_tokens", hexd(pc.schedule.decay_tokens)},
                    {"total_tokens", hexd(schedule_total_tokens)},
                    {"decay_shape", to_string(pc.schedule.decay_shape)},
                    {"alpha_i", hexd(pc.schedule.alpha_i)},
                    {"alpha_f", hexd(pc.schedule.alpha_f)}};
  id["regularisation"] = {{"grad_clip", hexd(pc.grad_clip)},
                          {"attention_output_dropout", hexd(pc.attention_output_dropout)},
                          {"spike_factor", hexd(pc.spike_factor)},
                          {"spike_warmup_steps", pc.spike_warmup_steps}};
  return id;
}

std::vector<std::string> json_differences(const nlohmann::json& x, const nlohmann::json& y, const std::string& x_name,
                                          const std::string& y_name) {
  std::map<std::string, nlohmann::json> a, b;
  flatten(x, "", a);
  flatten(y, "", b);
  std::vector<std::string> diffs;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    const nlohmann::json& w = it == b.end() ? nlohmann::json() : it->second;
    if (v != w) diffs.push_back(k + ": " + show(v) + " (" + x_name + ") vs " + show(w) + " (" + y_name + ")");
  }
  for (const auto& [k, w] : b)
    if (!a.count(k)) diffs.push_back(k + ": (absent) (" + x_name + ") vs " + show(w) + " (" + y_name + ")");
  return diffs;
}

std::vector<std::string> identity_differences(const nlohmann::json& saved, const nlohmann::json& now) {
  return json_differences(saved, now, "saved", "now");
}

// ---- trainer state ---------------------------------------------------------------------------------

namespace {

struct Field {
  const std::string& file;
  std::string err(const std::string& field, const std::string& what) const {
    return file + ": field " + field + ": " + what;
  }
};

template <class T>
T meta_get(const nlohmann::json& meta, const char* key, const Field& f) {
  if (!meta.contains(key)) throw Error(f.err(key, "missing from the state metadata"));
  try {
    return meta.at(key).get<T>();
  } catch (const std::exception& e) {
    throw Error(f.err(key, std::string("wrong type: ") + e.what()));
  }
}

double meta_hex(const nlohmann::json& meta, const char* key, const Field& f) {
  const std::string s = meta_get<std::string>(meta, key, f);
  char* end = nullptr;
  const double x = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) throw Error(f.err(key, "not a number: '" + s + "'"));
  if (!std::isfinite(x)) throw Error(f.err(key, "not finite: " + s));
  return x;
}

const TensorInfo& tensor_1d(const SafeTensorsFile& sf, const char* name, DType dtype, const char* dtype_name,
                            const Field& f) {
  const TensorInfo* t = sf.find(name);
  if (!t) throw Error(f.err(name, "tensor missing"));
  if (t->dtype != dtype) throw Error(f.err(name, std::string("dtype must be ") + dtype_name));
  if (t->shape.size() != 1) throw Error(f.err(name, "must be one-dimensional"));
  return *t;
}

}  // namespace

TrainerState read_trainer_state(const std::string& path, const TrainerStateLimits& lim, float* m, float* v,
                                const std::function<void(const nlohmann::json&)>& check_identity, MomentRange range) {
  const Field f{path};
  if (range.count < 0) range = {0, lim.num_params};
  if (range.first < 0 || range.first > lim.num_params || range.count > lim.num_params - range.first)
    throw Error(path + ": moment range [" + std::to_string(range.first) + ", +" + std::to_string(range.count) +
                ") outside the " + std::to_string(lim.num_params) + " parameters");
  auto sf = SafeTensorsFile::open(path);
  TrainerState st;
  const auto& md = sf->metadata();

  // The run identity first: a changed setting (e.g. seq_len) is reported as such, not as a counter
  // that no longer fits. Rows may be as long as the longest seq_len the run has used.
  if (auto r = md.find("run"); r != md.end()) {
    try {
      st.identity = nlohmann::json::parse(r->second);
    } catch (const std::exception& e) {
      throw Error(f.err("run", std::string("invalid JSON: ") + e.what()));
    }
  }
  check_identity(st.identity);
  int64_t max_row_len = lim.seq_len;
  if (st.identity.is_object()) {
    const auto batch = st.identity.find("batch");
    if (batch != st.identity.end() && batch->is_object()) {
      const auto sl = batch->find("seq_len");
      if (sl != batch->end() && sl->is_number_integer()) max_row_len = std::max(max_row_len, sl->get<int64_t>());
    }
  }

  // Metadata: counters.
  auto it = md.find("state");
  if (it == md.end()) throw Error(f.err("state", "metadata entry missing"));
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(it->second);
  } catch (const std::exception& e) {
    throw Error(f.err("state", std::string("invalid JSON: ") + e.what()));
  }
  if (!meta.is_object()) throw Error(f.err("state", "must be a JSON object"));
  TrainerCounters& c = st.counters;
  c.step = meta_get<int64_t>(meta, "step", f);
  c.tokens = meta_hex(meta, "tokens", f);
  c.row_serial = meta_get<uint64_t>(meta, "row_serial", f);
  c.ema = meta_hex(meta, "ema", f);
  c.ema_n = meta_get<int64_t>(meta, "ema_n", f);
  c.skipped = meta_get<int64_t>(meta, "skipped", f);
  c.optimizer_step = meta_get<int64_t>(meta, "optimizer_step", f);
  c.epoch = meta_get<int64_t>(meta, "epoch", f);
  c.cursor = meta_get<int64_t>(meta, "cursor", f);
  auto rng = [&](const char* key, int64_t x, int64_t lo, int64_t hi, const std::string& why) {
    if (x < lo || x > hi)
      throw Error(f.err(
          key, std::to_string(x) + " outside [" + std::to_string(lo) + ", " + std::to_string(hi) + "] (" + why + ")"));
  };
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  rng("step", c.step, 0, kMax, "a step count");
  rng("skipped", c.skipped, 0, c.step, "skipped steps are steps");
  rng("optimizer_step", c.optimizer_step, c.step - c.skipped, c.step - c.skipped,
      "one optimizer update per step not skipped");
  rng("ema_n", c.ema_n, 0, c.step, "one loss per step");
  rng("epoch", c.epoch, 0, kMax, "an epoch count");
  rng("cursor", c.cursor, 0, lim.num_documents,
      "a position in the " + std::to_string(lim.num_documents) + " documents");
  if (c.row_serial < static_cast<uint64_t>(c.step))
    throw Error(f.err("row_serial", std::to_string(c.row_serial) + " rows for " + std::to_string(c.step) +
                                        " steps (each step uses at least one row)"));
  if (c.tokens < static_cast<double>(c.row_serial) ||
      c.tokens > static_cast<double>(c.row_serial) * static_cast<double>(max_row_len))
    throw Error(f.err("tokens", hexd(c.tokens) + " tokens for " + std::to_string(c.row_serial) + " rows of at most " +
                                    std::to_string(max_row_len) + " tokens"));
  if (meta.contains("run_id")) st.run_id = meta_get<std::string>(meta, "run_id", f);
  if (meta.contains("threads")) st.threads = meta_get<int64_t>(meta, "threads", f);
  if (meta.contains("gemm")) st.gemm = meta_get<std::string>(meta, "gemm", f);
  if (meta.contains("world_size")) {
    st.world_size = meta_get<int64_t>(meta, "world_size", f);
    rng("world_size", st.world_size, 0, 1 << 24, "ranks of a job, 0 = not recorded");
  }

  // Optimizer moments: exactly one F32 per parameter.
  const TensorInfo& tm = tensor_1d(*sf, "optimizer.m", DType::kF32, "F32", f);
  const TensorInfo& tv = tensor_1d(*sf, "optimizer.v", DType::kF32, "F32", f);
  for (const TensorInfo* t : {&tm, &tv})
    if (t->numel() != lim.num_params)
      throw Error(f.err(t->name, std::to_string(t->numel()) + " elements, but the model has " +
                                     std::to_string(lim.num_params) + " parameters"));

  // Packer buffer: lengths in [1, seq_len] summing to the stored ids, ids in the vocabulary.
  tensor_1d(*sf, "packer.lengths", DType::kI64, "I64", f);
  const TensorInfo& ti = tensor_1d(*sf, "packer.ids", DType::kI64, "I64", f);
  // Memory is bounded by the file: every length is >= 1 and they sum to the stored ids.
  const auto lens = sf->to_i64("packer.lengths");
  const auto flat = sf->to_i64("packer.ids");
  int64_t sum = 0;
  for (size_t k = 0; k < lens.size(); ++k) {
    if (lens[k] < 1 || lens[k] > lim.seq_len)
      throw Error(f.err("packer.lengths[" + std::to_string(k) + "]",
                        std::to_string(lens[k]) + " outside [1, " + std::to_string(lim.seq_len) + "] (seq_len)"));
    sum += lens[k];
    if (sum > ti.numel()) break;  // reported below; stops before the sum could overflow
  }
  if (sum != ti.numel())
    throw Error(f.err("packer.lengths", "sum to " + std::to_string(sum) + " but packer.ids holds " +
                                            std::to_string(ti.numel()) + " ids"));
  for (size_t k = 0; k < flat.size(); ++k)
    if (flat[k] < 0 || flat[k] >= lim.vocab_size)
      throw Error(f.err(
          "packer.ids[" + std::to_string(k) + "]",
          "id " + std::to_string(flat[k]) + " outside the vocabulary [0, " + std::to_string(lim.vocab_size) + ")"));
  size_t pos = 0;
  for (int64_t n : lens) {
    st.packer_buffer.emplace_back(flat.begin() + static_cast<long>(pos),
                                  flat.begin() + static_cast<long>(pos + static_cast<size_t>(n)));
    pos += static_cast<size_t>(n);
  }

  // Everything checked: now the moments.
  const size_t first = static_cast<size_t>(range.first), count = static_cast<size_t>(range.count);
  std::memcpy(m, sf->data(tm) + first * sizeof(float), count * sizeof(float));
  std::memcpy(v, sf->data(tv) + first * sizeof(float), count * sizeof(float));
  return st;
}

void write_trainer_state(const std::string& path, const TrainerState& st, const float* m, const float* v,
                         int64_t num_params) {
  const TrainerCounters& c = st.counters;
  SafeTensorsWriter sw;
  // The moments are written from the optimizer's buffers in place (no copy of 2 x params floats).
  sw.add_f32_view("optimizer.m", {num_params}, m);
  sw.add_f32_view("optimizer.v", {num_params}, v);
  std::vector<int64_t> lens, flat;
  for (const auto& s : st.packer_buffer) {
    lens.push_back(static_cast<int64_t>(s.size()));
    flat.insert(flat.end(), s.begin(), s.end());
  }
  sw.add_i64("packer.lengths", {static_cast<int64_t>(lens.size())}, lens.data());
  sw.add_i64("packer.ids", {static_cast<int64_t>(flat.size())}, flat.data());
  const nlohmann::json meta = {{"step", c.step},
                               {"tokens", hexd(c.tokens)},
                               {"row_serial", c.row_serial},
                               {"ema", hexd(c.ema)},
                               {"ema_n", c.ema_n},
                               {"skipped", c.skipped},
                               {"optimizer_step", c.optimizer_step},
                               {"epoch", c.epoch},
                               {"cursor", c.cursor},
                               {"run_id", st.run_id},
                               {"threads", st.threads},
                               {"world_size", st.world_size},
                               {"gemm", st.gemm}};
  sw.set_metadata("state", meta.dump());
  sw.set_metadata("run", st.identity.dump());
  // Streamed through an atomic file; the test fault point "mid_state_write" fires once the header
  // and both moments are in the file and the packer buffer is not.
  const uint64_t moments_end = sw.file_size() - 8 * static_cast<uint64_t>(lens.size() + flat.size());
  AtomicOutputFile out(path);
  uint64_t written = 0;
  bool fired = false;
  sw.write_to([&](const void* p, size_t n) {
    out.write(p, n);
    written += n;
    if (!fired && written >= moments_end) {
      fired = true;
      out.flush();
      test_kill_point("mid_state_write", c.step);
    }
  });
  out.commit();
}

std::string checkpoint_run_id(const std::string& checkpoint_dir) {
  try {
    auto sf = SafeTensorsFile::open(checkpoint_dir + "/trainer_state.safetensors");
    auto it = sf->metadata().find("state");
    if (it == sf->metadata().end()) return "";
    const auto meta = nlohmann::json::parse(it->second);
    return meta.value("run_id", std::string());
  } catch (const std::exception&) {
    return "";
  }
}

void test_kill_point(const char* point, int64_t step) {
  static const char* env = std::getenv("MODERNBERT_TEST_KILL_AT");
  if (!env || !*env) return;
  const char* at = std::strchr(env, '@');
  if (!at) return;
  if (std::strncmp(env, point, static_cast<size_t>(at - env)) != 0 ||
      std::strlen(point) != static_cast<size_t>(at - env))
    return;
  if (std::strtoll(at + 1, nullptr, 10) != step) return;
  std::fprintf(stderr, "pretrain: test kill point %s at step %lld\n", point, static_cast<long long>(step));
  std::fflush(stderr);
  std::raise(SIGKILL);
}

}  // namespace modernbert::train
