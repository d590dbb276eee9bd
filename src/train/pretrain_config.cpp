// PretrainConfig from / to JSON (the training config file, train_config.json). Option strings
// become enums here, once; the JSON written back keeps the strings.
#include <algorithm>
#include <set>

#include "modernbert/error.h"
#include "modernbert/pretrain.h"

namespace modernbert {

const char* to_string(LongDocuments d) { return d == LongDocuments::kSplit ? "split" : "truncate"; }
const char* to_string(InitScheme) { return "megatron"; }

namespace {

template <class T>
void get_to(const nlohmann::json& j, const char* key, T& out, const std::string& source) {
  if (!j.contains(key)) return;
  try {
    out = j.at(key).get<T>();
  } catch (const std::exception& e) {
    throw Error(source + ": field " + key + ": " + e.what());
  }
}

std::vector<std::string> str_list(const nlohmann::json& j, const char* key, const std::string& source) {
  std::vector<std::string> v;
  if (!j.contains(key)) return v;
  if (j[key].is_string()) return {j[key].get<std::string>()};
  if (!j[key].is_array()) throw Error(source + ": field " + key + " must be a string or a list of strings");
  for (const auto& x : j[key]) {
    if (!x.is_string()) throw Error(source + ": field " + key + " must hold strings");
    v.push_back(x.get<std::string>());
  }
  return v;
}

// An enum field given as a string: `parse` maps it, or throws with the field's message.
template <class E, class Parse>
void get_enum(const nlohmann::json& j, const char* key, E& out, const std::string& source, Parse parse) {
  std::string s;
  get_to(j, key, s, source);
  if (j.contains(key)) out = parse(s);
}

}  // namespace

PretrainConfig PretrainConfig::from_json(const nlohmann::json& j, const std::string& src) {
  static const std::vector<std::string> known = {"model_config",
                                                 "init",
                                                 "init_from",
                                                 "tile_from",
                                                 "global_rope_theta",
                                                 "local_rope_theta",
                                                 "data",
                                                 "eval_data",
                                                 "eval_documents",
                                                 "tokenizer",
                                                 "long_documents",
                                                 "seq_len",
                                                 "micro_batch_size",
                                                 "global_batch_size",
                                                 "batch_warmup_tokens",
                                                 "packing_buffer",
                                                 "mlm_probability",
                                                 "eval_mlm_probability",
                                                 "mask_token_id",
                                                 "optimizer",
                                                 "schedule",
                                                 "max_tokens",
                                                 "max_steps",
                                                 "grad_clip",
                                                 "attention_output_dropout",
                                                 "spike_factor",
                                                 "spike_warmup_steps",
                                                 "seed",
                                                 "output_dir",
                                                 "save_every",
                                                 "keep_last",
                                                 "eval_every",
                                                 "eval_rows",
                                                 "log_every",
                                                 "resume",
                                                 "kill_at_step",
                                                 "kill_rank",
                                                 "zero_stage",
                                                 "sync_check_every",
                                                 "lossy_utf8"};
  if (!j.is_object()) throw Error(src + ": the training config must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (std::find(known.begin(), known.end(), it.key()) == known.end())
      throw Error(src + ": unknown field '" + it.key() + "'");
  PretrainConfig c;
  get_to(j, "model_config", c.model_config, src);
  get_enum(j, "init", c.init, src, [&](const std::string& v) {
    if (v != "megatron") throw Error(src + ": field init must be megatron");
    return InitScheme::kMegatron;
  });
  get_to(j, "init_from", c.init_from, src);
  get_to(j, "tile_from", c.tile_from, src);
  get_to(j, "global_rope_theta", c.global_rope_theta, src);
  get_to(j, "local_rope_theta", c.local_rope_theta, src);
  c.data = str_list(j, "data", src);
  c.eval_data = str_list(j, "eval_data", src);
  get_to(j, "eval_documents", c.eval_documents, src);
  get_to(j, "tokenizer", c.tokenizer, src);
  std::string long_documents = to_string(c.long_documents);
  get_to(j, "long_documents", long_documents, src);
  get_to(j, "seq_len", c.seq_len, src);
  get_to(j, "micro_batch_size", c.micro_batch_size, src);
  get_to(j, "global_batch_size", c.global_batch_size, src);
  get_to(j, "batch_warmup_tokens", c.batch_warmup_tokens, src);
  get_to(j, "packing_buffer", c.packing_buffer, src);
  get_to(j, "mlm_probability", c.mlm_probability, src);
  get_to(j, "eval_mlm_probability", c.eval_mlm_probability, src);
  get_to(j, "mask_token_id", c.mask_token_id, src);
  if (j.contains("optimizer")) {
    const auto& o = j["optimizer"];
    const std::string s = src + ": optimizer";
    for (auto it = o.begin(); it != o.end(); ++it)
      if (!std::set<std::string>{"type", "lr", "beta1", "beta2", "eps", "weight_decay"}.count(it.key()))
        throw Error(s + ": unknown field '" + it.key() + "'");
    get_enum(o, "type", c.optimizer.type, s, parse_optimizer_type);
    get_to(o, "lr", c.optimizer.lr, s);
    get_to(o, "beta1", c.optimizer.beta1, s);
    get_to(o, "beta2", c.optimizer.beta2, s);
    get_to(o, "eps", c.optimizer.eps, s);
    get_to(o, "weight_decay", c.optimizer.weight_decay, s);
  }
  if (j.contains("schedule")) {
    const auto& o = j["schedule"];
    const std::string s = src + ": schedule";
    for (auto it = o.begin(); it != o.end(); ++it)
      if (!std::set<std::string>{"warmup_tokens", "decay_tokens", "total_tokens", "decay_shape", "alpha_i", "alpha_f"}
               .count(it.key()))
        throw Error(s + ": unknown field '" + it.key() + "'");
    get_to(o, "warmup_tokens", c.schedule.warmup_tokens, s);
    get_to(o, "decay_tokens", c.schedule.decay_tokens, s);
    get_to(o, "total_tokens", c.schedule.total_tokens, s);
    get_enum(o, "decay_shape", c.schedule.decay_shape, s, parse_decay_shape);
    get_to(o, "alpha_i", c.schedule.alpha_i, s);
    get_to(o, "alpha_f", c.schedule.alpha_f, s);
  }
  get_to(j, "max_tokens", c.max_tokens, src);
  get_to(j, "max_steps", c.max_steps, src);
  get_to(j, "grad_clip", c.grad_clip, src);
  get_to(j, "attention_output_dropout", c.attention_output_dropout, src);
  get_to(j, "spike_factor", c.spike_factor, src);
  get_to(j, "spike_warmup_steps", c.spike_warmup_steps, src);
  get_to(j, "seed", c.seed, src);
  get_to(j, "output_dir", c.output_dir, src);
  get_to(j, "save_every", c.save_every, src);
  get_to(j, "keep_last", c.keep_last, src);
  get_to(j, "eval_every", c.eval_every, src);
  get_to(j, "eval_rows", c.eval_rows, src);
  get_to(j, "log_every", c.log_every, src);
  get_to(j, "resume", c.resume, src);
  get_to(j, "kill_at_step", c.kill_at_step, src);
  get_to(j, "kill_rank", c.kill_rank, src);
  get_to(j, "zero_stage", c.zero_stage, src);
  get_to(j, "sync_check_every", c.sync_check_every, src);
  get_to(j, "lossy_utf8", c.lossy_utf8, src);
  auto positive = [&](int64_t v, const char* f) {
    if (v <= 0) throw Error(src + ": field " + std::string(f) + " must be positive");
  };
  positive(c.seq_len, "seq_len");
  positive(c.micro_batch_size, "micro_batch_size");
  positive(c.global_batch_size, "global_batch_size");
  if (c.global_batch_size % c.micro_batch_size != 0)
    throw Error(src + ": field global_batch_size (" + std::to_string(c.global_batch_size) +
                ") must be a multiple of micro_batch_size (" + std::to_string(c.micro_batch_size) + ")");
  if (!(c.mlm_probability > 0 && c.mlm_probability < 1)) throw Error(src + ": field mlm_probability must be in (0, 1)");
  if (!(c.attention_output_dropout >= 0 && c.attention_output_dropout < 1))
    throw Error(src + ": field attention_output_dropout must be in [0, 1)");
  if (long_documents != "truncate" && long_documents != "split")
    throw Error(src + ": field long_documents must be truncate or split");
  c.long_documents = long_documents == "split" ? LongDocuments::kSplit : LongDocuments::kTruncate;
  if (c.zero_stage != 0 && c.zero_stage != 1)
    throw Error(src + ": field zero_stage must be 0 or 1, got " + std::to_string(c.zero_stage) +
                " (ZeRO stage 1 shards the optimizer state across ranks; stages 2 and 3 are not implemented)");
  if (c.sync_check_every < 0) throw Error(src + ": field sync_check_every must be >= 0 (0: check at the start only)");
  if (c.kill_rank < -1) throw Error(src + ": field kill_rank must be a rank (>= 0) or -1 (every rank)");
  if (!c.tile_from.empty() && !c.init_from.empty()) throw Error(src + ": give at most one of tile_from / init_from");
  return c;
}

nlohmann::json PretrainConfig::to_json() const {
  nlohmann::json j;
  j["model_config"] = model_config;
  j["init"] = to_string(init);
  j["init_from"] = init_from;
  j["tile_from"] = tile_from;
  j["global_rope_theta"] = global_rope_theta;
  j["local_rope_theta"] = local_rope_theta;
  j["data"] = data;
  j["eval_data"] = eval_data;
  j["eval_documents"] = eval_documents;
  j["tokenizer"] = tokenizer;
  j["long_documents"] = to_string(long_documents);
  j["seq_len"] = seq_len;
  j["micro_batch_size"] = micro_batch_size;
  j["global_batch_size"] = global_batch_size;
  j["batch_warmup_tokens"] = batch_warmup_tokens;
  j["packing_buffer"] = packing_buffer;
  j["mlm_probability"] = mlm_probability;
  j["eval_mlm_probability"] = eval_mlm_probability;
  j["mask_token_id"] = mask_token_id;
  j["optimizer"] = {
      {"type", to_string(optimizer.type)}, {"lr", optimizer.lr},   {"beta1", optimizer.beta1},
      {"beta2", optimizer.beta2},          {"eps", optimizer.eps}, {"weight_decay", optimizer.weight_decay}};
  j["schedule"] = {{"warmup_tokens", schedule.warmup_tokens},
                   {"decay_tokens", schedule.decay_tokens},
                   {"total_tokens", schedule.total_tokens},
                   {"decay_shape", to_string(schedule.decay_shape)},
                   {"alpha_i", schedule.alpha_i},
                   {"alpha_f", schedule.alpha_f}};
  j["max_tokens"] = max_tokens;
  j["max_steps"] = max_steps;
  j["grad_clip"] = grad_clip;
  j["attention_output_dropout"] = attention_output_dropout;
  j["spike_factor"] = spike_factor;
  j["spike_warmup_steps"] = spike_warmup_steps;
  j["seed"] = seed;
  j["output_dir"] = output_dir;
  j["save_every"] = save_every;
  j["keep_last"] = keep_last;
  j["eval_every"] = eval_every;
  j["eval_rows"] = eval_rows;
  j["log_every"] = log_every;
  j["lossy_utf8"] = lossy_utf8;
  j["zero_stage"] = zero_stage;
  j["sync_check_every"] = sync_check_every;
  return j;
}

}  // namespace modernbert
