// modernbert info: validate a model directory and print its architecture.
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "cli/args.h"
#include "cli/command.h"
#include "core/thread_pool.h"
#include "kernels/backend.h"
#include "kernels/cpu/isa.h"
#include "modernbert/error.h"
#include "modernbert/model_dir.h"

namespace modernbert::cli {
namespace {

std::string cpu_model_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t c = line.find(':');
      return c == std::string::npos ? line : line.substr(line.find_first_not_of(" \t", c + 1));
    }
  return "unknown";
}

// `info --system`: the CPU, the instruction-set extensions the kernels may use, and the path each
// --dtype takes on this machine (chosen at run time: kernels::linear_path).
int print_system(bool json) {
  kernels::IsaRequirement reqs[kernels::kMaxIsaRequirements];
  const int n = kernels::isa_requirements(reqs);
  // The extensions that decide the reduced-precision paths (docs/precision.md).
  const char* relevant[] = {"avx2",     "fma",         "f16c",        "avx512f",  "avx512bw", "avx512vl", "avx512_vnni",
                            "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"};
  nlohmann::json isa = nlohmann::json::object();
  std::string present;
  for (const char* name : relevant)
    for (int i = 0; i < n; ++i)
      if (std::string(reqs[i].name) == name) {
        isa[name] = reqs[i].present;
        if (reqs[i].present) present += std::string(present.empty() ? "" : " ") + name;
      }
  char compiled[512];
  kernels::compiled_isa_names(compiled, sizeof compiled);
  nlohmann::json paths = nlohmann::json::object();
  nlohmann::json attention = nlohmann::json::object();
  for (Precision p : {Precision::kF32, Precision::kBF16, Precision::kF16, Precision::kInt8}) {
    paths[precision_name(p)] = kernels::linear_path(p);
    attention[precision_name(p)] = kernels::attention_path(p);
  }
  if (json) {
    nlohmann::json j = {{"cpu", cpu_model_name()},
                        {"hardware_threads", std::thread::hardware_concurrency()},
                        {"compute_threads", default_pool().size()},
                        {"isa", isa},
                        {"compiled_for", compiled},
                        {"sgemm", kernels::gemm_backend_name()},
                        {"bf16_rounds_activations", kernels::linear_rounds_x_bf16()},
                        {"linear_path", paths},
                        {"attention_path", attention}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("cpu          %s (%u hardware threads, %d compute threads)\n", cpu_model_name().c_str(),
              std::thread::hardware_concurrency(), default_pool().size());
  std::printf("isa          %s\n", present.c_str());
  std::printf("compiled for %s\n", compiled);
  std::printf("sgemm        %s\n", kernels::gemm_backend_name());
  for (Precision p : {Precision::kF32, Precision::kBF16, Precision::kF16, Precision::kInt8})
    std::printf("--dtype %-5slinears: %s; attention: %s\n", precision_name(p), kernels::linear_path(p).c_str(),
                kernels::attention_path(p).c_str());
  return 0;
}

int run_info(int argc, char** argv) {
  ArgParser a(
      "info", "DIR [--json] | --system [--json]",
      "Validate a model directory (config.json, weights, heads, sentence-transformers files)\n"
      "and print its architecture: parameters, layers with type, RoPE theta and window, heads, dtype.\n"
      "With --system: the CPU, its instruction-set extensions and the GEMM and attention paths of each --dtype.");
  a.positional("DIR", "model directory");
  a.flag("json", "print one JSON object instead of text");
  a.flag("system", "describe this machine instead of a model");
  if (!a.parse(argc, argv)) return 0;
  if (a.has("system")) {
    if (!a.positionals().empty()) throw Error("info --system takes no model directory");
    return print_system(a.has("json"));
  }
  if (a.positionals().size() != 1) throw Error("info: expected exactly one model directory");
  LoadedModel m = load_model_dir(a.positionals()[0]);
  const ModelConfig& c = m.config;
  const HeadSet& h = m.weights.heads();
  size_t encoder = 0;
  for (const auto& s : m.weights.specs())
    if (s.name.rfind("model.", 0) == 0) encoder += static_cast<size_t>(s.numel());
  if (a.has("json")) {
    nlohmann::json j = {{"dir", m.dir},
                        {"parameters", m.weights.num_params()},
                        {"encoder_parameters", encoder},
                        {"dtype", m.stored_dtype},
                        {"heads", h.describe()},
                        {"hidden_size", c.hidden_size},
                        {"intermediate_size", c.intermediate_size},
                        {"num_hidden_layers", c.num_hidden_layers},
                        {"num_attention_heads", c.num_attention_heads},
                        {"vocab_size", c.vocab_size},
                        {"max_position_embeddings", c.max_position_embeddings},
                        {"name_prefix", m.has_prefix}};
    nlohmann::json layers = nlohmann::json::array();
    for (int64_t l = 0; l < c.num_hidden_layers; ++l)
      layers.push_back({{"type", to_string(c.layer_types[l])},
                        {"rope_theta", c.rope_theta(l)},
                        {"window", c.is_global(l) ? -1 : c.local_attention}});
    j["layers"] = layers;
    if (m.sentence_transformers.present)
      j["sentence_transformers"] = {{"pooling", m.sentence_transformers.pooling_mode},
                                    {"normalize", m.sentence_transformers.normalize},
                                    {"dense_out", m.sentence_transformers.dense_out}};
    std::printf("%s\n", j.dump().c_str());
    return 0;
  }
  std::printf("model        %s\n", m.dir.c_str());
  std::printf("parameters   %zu (encoder %zu)\n", m.weights.num_params(), encoder);
  std::printf("dtype        %s (names %s)\n", m.stored_dtype.c_str(), m.has_prefix ? "with 'model.' prefix" : "bare");
  std::printf("heads        %s\n", h.describe().c_str());
  std::printf(
      "shape        hidden %lld, intermediate %lld (GeGLU %lld), heads %lld x %lld, vocab %lld, max positions %lld\n",
      (long long)c.hidden_size, (long long)c.intermediate_size, (long long)(2 * c.intermediate_size),
      (long long)c.num_attention_heads, (long long)c.head_dim(), (long long)c.vocab_size,
      (long long)c.max_position_embeddings);
  std::printf(
      "activation   %s; norm eps %g, biases: attention %s, mlp %s, norm %s, head.dense %s, decoder %s; %s decoder\n",
      to_string(c.hidden_activation), c.norm_eps, c.attention_bias ? "on" : "off", c.mlp_bias ? "on" : "off",
      c.norm_bias ? "on" : "off", c.classifier_bias ? "on" : "off", c.decoder_bias ? "on" : "off",
      c.tie_word_embeddings ? "tied" : "untied");
  std::printf("pooling      %s", to_string(c.classifier_pooling));
  if (!c.id2label.empty()) {
    std::printf("; labels");
    for (const auto& [id, l] : c.id2label) std::printf(" %lld=%s", (long long)id, l.c_str());
  }
  std::printf("\nlayers\n");
  for (int64_t l = 0; l < c.num_hidden_layers; ++l)
    std::printf("  %2lld  %-6s  theta %-9g window %s\n", (long long)l, c.is_global(l) ? "global" : "local",
                c.rope_theta(l),
                c.is_global(l)
                    ? "full"
                    : (std::to_string(c.local_attention) + " (|i-j| <= " + std::to_string(c.local_attention / 2) + ")")
                          .c_str());
  if (m.sentence_transformers.present) {
    const auto& st = m.sentence_transformers;
    std::printf("sentence-transformers: pooling %s, normalize %s", st.pooling_mode.c_str(),
                st.normalize ? "yes" : "no");
    if (st.dense_out) std::printf(", dense %lld -> %lld", (long long)st.dense_in, (long long)st.dense_out);
    for (const auto& [k, v] : st.prompts) std::printf(", prompt %s='%s'", k.c_str(), v.c_str());
    std::printf("\n");
  }
  return 0;
}

CommandRegistrar reg({"info", "validate a model directory and print its architecture", run_info});

}  // namespace
}  // namespace modernbert::cli
