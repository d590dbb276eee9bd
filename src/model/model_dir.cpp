// Hugging Face model directories: config.json + model.safetensors (or sharded via
// model.safetensors.index.json), tensor names with or without the "model." prefix, any mix of heads,
// and the sentence-transformers / PyLate side files.
#include "modernbert/model_dir.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "model/lowp_weights.h"
#include "modernbert/error.h"
#include "modernbert/file_io.h"

namespace modernbert {

using nlohmann::json;

namespace {

// "an int8", "a bf16", "an f16", "an f32": the article a dtype name takes when read aloud.
std::string with_article(const std::string& dtype) {
  return (dtype.empty() || dtype[0] == 'i' || dtype[0] == 'f' ? "an " : "a ") + dtype;
}

bool file_exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

json read_json(const std::string& path) {
  std::string text = read_file(path);
  try {
    return json::parse(text);
  } catch (const std::exception& e) {
    throw Error(path + ": invalid JSON: " + e.what());
  }
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

bool is_encoder_name(const std::string& n) {
  return n.rfind("embeddings.", 0) == 0 || n.rfind("layers.", 0) == 0 || n.rfind("final_norm.", 0) == 0;
}

// PyLate's keys of config_sentence_transformers.json (pylate/models/colbert.py: save() writes them,
// _parse_model_config() reads them; a missing key keeps PyLate's default). A key of the wrong type
// is an error naming it, not silently the default.
void read_colbert_settings(const json& c, const std::string& path, ColbertSettings* s) {
  s->present = c.contains("query_prefix") || c.contains("document_prefix") ||
               (c.contains("model_type") && c["model_type"] == "ColBERT");
  if (!s->present) return;
  auto bad = [&](const char* key, const char* want) { return Error(path + ": '" + key + "' must be " + want); };
  auto str = [&](const char* key, std::string* v) {
    if (!c.contains(key) || c[key].is_null()) return;
    if (!c[key].is_string()) throw bad(key, "a string");
    *v = c[key].get<std::string>();
  };
  auto len = [&](const char* key, int64_t* v) {
    if (!c.contains(key) || c[key].is_null()) return;
    if (!c[key].is_number_integer() || c[key].get<int64_t>() < 3) throw bad(key, "an integer >= 3");
    *v = c[key].get<int64_t>();
  };
  auto flag = [&](const char* key, bool* v) {
    if (!c.contains(key) || c[key].is_null()) return;
    if (!c[key].is_boolean()) throw bad(key, "true or false");
    *v = c[key].get<bool>();
  };
  str("query_prefix", &s->query_prefix);
  str("document_prefix", &s->document_prefix);
  len("query_length", &s->query_length);
  len("document_length", &s->document_length);
  flag("do_query_expansion", &s->do_query_expansion);
  flag("attend_to_expansion_tokens", &s->attend_to_expansion_tokens);
  if (!s->do_query_expansion) s->attend_to_expansion_tokens = false;
  if (c.contains("skiplist_words") && !c["skiplist_words"].is_null()) {
    if (!c["skiplist_words"].is_array()) throw bad("skiplist_words", "a list of strings");
    for (const auto& w : c["skiplist_words"]) {
      if (!w.is_string()) throw bad("skiplist_words", "a list of strings");
      s->skiplist_words.push_back(w.get<std::string>());
    }
  } else {
    for (char ch : std::string("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")) s->skiplist_words.emplace_back(1, ch);
  }
}

void read_sentence_transformers(const std::string& dir, SentenceTransformersInfo* st) {
  std::string modules_path = dir + "/modules.json";
  if (!file_exists(modules_path)) return;
  json modules = read_json(modules_path);
  if (!modules.is_array()) throw Error(modules_path + ": expected a list of modules");
  st->present = true;
  for (const auto& m : modules) {
    if (!m.is_object() || !m.contains("type") || !m["type"].is_string())
      throw Error(modules_path + ": each module needs a string 'type'");
    std::string type = m["type"].get<std::string>();
    std::string path = m.value("path", "");
    std::string sub = path.empty() ? dir : dir + "/" + path;
    if (type.find("Pooling") != std::string::npos) {
      json pc = read_json(sub + "/config.json");
      if (pc.contains("pooling_mode") && pc["pooling_mode"].is_string()) {
        st->pooling_mode = pc["pooling_mode"].get<std::string>();
      } else if (pc.value("pooling_mode_cls_token", false)) {
        st->pooling_mode = "cls";
      } else if (pc.value("pooling_mode_mean_tokens", false)) {
        st->pooling_mode = "mean";
      } else if (pc.value("pooling_mode_max_tokens", false)) {
        st->pooling_mode = "max";
      } else if (pc.value("pooling_mode_lasttoken", false)) {
        st->pooling_mode = "lasttoken";
      } else {
        throw Error(sub + "/config.json: no supported pooling mode set (cls, mean, max, lasttoken)");
      }
    } else if (type.find("Normalize") != std::string::npos) {
      st->normalize = true;
    } else if (type.find("Dense") != std::string::npos) {
      json dc = read_json(sub + "/config.json");
      st->dense_in = dc.value("in_features", int64_t{0});
      st->dense_out = dc.value("out_features", int64_t{0});
      st->dense_activation = dc.value("activation_function", std::string("torch.nn.modules.linear.Identity"));
      std::string wpath = sub + "/model.safetensors";
      if (!file_exists(wpath))
        throw Error(sub + ": Dense module without model.safetensors (pytorch_model.bin is not supported)");
      auto f = SafeTensorsFile::open(wpath);
      const TensorInfo& w = f->at("linear.weight");
      if (w.shape.size() != 2 || w.shape[0] != st->dense_out || w.shape[1] != st->dense_in)
        throw Error(wpath + ": linear.weight has shape " + shape_str(w.shape) + ", config says [" +
                    std::to_string(st->dense_out) + ", " + std::to_string(st->dense_in) + "]");
      st->dense_weight = f->to_f32("linear.weight");
      if (f->find("linear.bias")) st->dense_bias = f->to_f32("linear.bias");
    }
    // Transformer and other module types carry nothing we need.
  }
  std::string stc = dir + "/config_sentence_transformers.json";
  if (file_exists(stc)) {
    json c = read_json(stc);
    if (c.contains("prompts") && c["prompts"].is_object())
      for (auto it = c["prompts"].begin(); it != c["prompts"].end(); ++it)
        if (it->is_string()) st->prompts[it.key()] = it->get<std::string>();
    if (c.contains("default_prompt_name") && c["default_prompt_name"].is_string())
      st->default_prompt_name = c["default_prompt_name"].get<std::string>();
    read_colbert_settings(c, stc, &st->colbert);
  }
}

// The weight file(s) of `dir` (model.safetensors, or the shards of model.safetensors.index.json)
// opened into `files`, and every tensor name mapped to its file and entry in `where`.
using TensorMap = std::map<std::string, std::pair<SafeTensorsFile*, const TensorInfo*>>;
void open_weight_files(const std::string& dir, std::vector<std::shared_ptr<SafeTensorsFile>>& files, TensorMap& where) {
  std::string single = dir + "/model.safetensors", index = dir + "/model.safetensors.index.json";
  if (file_exists(single)) {
    files.push_back(SafeTensorsFile::open(single));
  } else if (file_exists(index)) {
    json idx = read_json(index);
    if (!idx.contains("weight_map") || !idx["weight_map"].is_object())
      throw Error(index + ": missing 'weight_map' object");
    std::set<std::string> shard_names;
    for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it) {
      if (!it->is_string()) throw Error(index + ": weight_map entry for '" + it.key() + "' is not a file name");
      std::string shard = it->get<std::string>();
      if (shard.find('/') != std::string::npos)
        throw Error(index + ": shard name '" + shard + "' must be a plain file name");
      shard_names.insert(shard);
    }
    std::map<std::string, SafeTensorsFile*> by_name;
    for (const auto& s : shard_names) {
      files.push_back(SafeTensorsFile::open(dir + "/" + s));
      by_name[s] = files.back().get();
    }
    for (auto it = idx["weight_map"].begin(); it != idx["weight_map"].end(); ++it) {
      SafeTensorsFile* f = by_name[it->get<std::string>()];
      if (!f->find(it.key()))
        throw Error(index + ": tensor '" + it.key() + "' is listed in shard " + it->get<std::string>() +
                    " but not found there");
    }
  } else {
    throw Error(dir + ": no model.safetensors or model.safetensors.index.json");
  }
  for (const auto& f : files)
    for (const auto& t : f->tensors()) {
      if (where.count(t.name)) throw Error(dir + ": tensor '" + t.name + "' appears in more than one shard");
      where[t.name] = {f.get(), &t};
    }
}

// Whether the checkpoint was written by `modernbert quantize` (docs/quantized-checkpoints.md), and
// in which precision: the "modernbert.precision" metadata of the weight file(s), which config.json's
// "quantization_config" must repeat. Anything half-there (I8 tensors without the metadata, metadata
// without the config entry or the other way round, files that disagree) is an Error.
struct QuantState {
  bool quantized = false;
  Precision precision = Precision::kF32;
  std::string file;  // the file that declared it (for messages)
};

QuantState detect_quantized(const std::string& dir, const std::vector<std::shared_ptr<SafeTensorsFile>>& files,
                            const json& config_raw) {
  QuantState q;
  for (const auto& f : files) {
    auto it = f->metadata().find(lowp::kPrecisionKey);
    if (it == f->metadata().end()) {
      for (const auto& t : f->tensors())
        if (t.dtype == DType::kI8)
          throw Error(f->path() + ": tensor '" + t.name + "' is I8, but the file has no '" + lowp::kPrecisionKey +
                      "' metadata: it was not written by `modernbert quantize`, and int8 tensors are only read "
                      "with that format (docs/quantized-checkpoints.md)");
      if (q.quantized)
        throw Error(f->path() + ": has no '" + std::string(lowp::kPrecisionKey) + "' metadata, but " + q.file +
                    " has: all shards of a quantized checkpoint must carry it");
      continue;
    }
    Precision p;
    if (!parse_precision(it->second, &p) || p == Precision::kF32)
      throw Error(f->path() + ": metadata '" + lowp::kPrecisionKey + "' is '" + it->second +
                  "', expected int8, bf16 or f16");
    if (q.quantized && p != q.precision)
      throw Error(f->path() + ": metadata '" + lowp::kPrecisionKey + "' is '" + it->second + "' but " + q.file +
                  " says '" + precision_name(q.precision) + "'");
    if (&f != &files.front() && !q.quantized)
      throw Error(f->path() + ": carries '" + std::string(lowp::kPrecisionKey) + "' metadata but " +
                  files.front()->path() + " does not: all shards of a quantized checkpoint must carry it");
    auto scheme = f->metadata().find(lowp::kSchemeKey);
    if (scheme == f->metadata().end() || scheme->second.empty())
      throw Error(f->path() + ": metadata '" + lowp::kPrecisionKey + "' is present but '" + lowp::kSchemeKey +
                  "' is missing (a file written by `modernbert quantize` carries both)");
    q.quantized = true;
    q.precision = p;
    q.file = f->path();
  }
  const std::string cfg_path = dir + "/config.json";
  auto qc = config_raw.find("quantization_config");
  if (qc == config_raw.end() || qc->is_null()) {
    if (q.quantized)
      throw Error(cfg_path + ": has no \"quantization_config\", but " + q.file + " is " +
                  with_article(precision_name(q.precision)) +
                  " checkpoint written by `modernbert quantize` (its config.json declares it; was the file "
                  "replaced?)");
    return q;
  }
  if (!qc->is_object()) throw Error(cfg_path + ": \"quantization_config\" must be an object");
  const std::string method = qc->value("quant_method", std::string());
  if (method != lowp::kQuantMethod)
    throw Error(cfg_path + ": quantization_config.quant_method is '" + method +
                "': only checkpoints written by "
                "`modernbert quantize` (quant_method \"modernbert\") are supported; load the float checkpoint instead");
  const std::string prec = qc->contains("precision") && (*qc)["precision"].is_string()
                               ? (*qc)["precision"].get<std::string>()
                               : std::string();
  if (!q.quantized)
    throw Error(cfg_path + ": declares a modernbert quantization_config (precision '" + prec + "'), but " +
                files.front()->path() + " has no '" + lowp::kPrecisionKey + "' metadata");
  if (prec != precision_name(q.precision))
    throw Error(cfg_path + ": quantization_config.precision is '" + prec + "' but " + q.file + " is " +
                precision_name(q.precision));
  return q;
}

// The Error for a quantized checkpoint asked for as something it is not.
[[noreturn]] void quantized_mismatch(const QuantState& q, const LoadOptions& opts) {
  const std::string what =
      q.file + " is " + with_article(precision_name(q.precision)) + " checkpoint written by `modernbert quantize` (" +
      (q.precision == Precision::kInt8 ? "I8 weights with per-channel F32 scales"
                                       : std::string(dtype_name(lowp::storage_dtype(q.precision))) + " weights") +
      ")";
  if (!opts.allow_quantized)
    throw Error(what +
                ". This command needs a float checkpoint (training, fine-tuning, gradients, export and "
                "quantize read float weights): give it the original float checkpoint the quantized one was made from.");
  const std::string other =
      *opts.precision == Precision::kF32
          ? std::string("or, for f32, load the original float checkpoint it was made from.")
          : std::string("or load the original float checkpoint with --dtype ") + precision_name(*opts.precision) +
                " (or write one with `modernbert quantize --dtype " + precision_name(*opts.precision) + "`).";
  throw Error(what + "; it loads only as " + precision_name(q.precision) + ", not as " +
              precision_name(*opts.precision) + ". Use --dtype " + precision_name(q.precision) +
              " (or leave --dtype out), " + other);
}

// Heads present in the files (see load_model_dir).
HeadSet detect_heads(const std::string& dir, const ModelConfig& cfg, const TensorMap& where, const LoadOptions& opts) {
  HeadSet heads;
  bool has_head = where.count("head.dense.weight") > 0;
  bool has_cls = where.count("classifier.weight") > 0;
  bool has_decoder = where.count("decoder.bias") || where.count("decoder.weight");
  if (has_cls) {
    const TensorInfo* t = where.at("classifier.weight").second;
    if (t->shape.size() != 2) throw Error(dir + ": classifier.weight must be 2-D, has shape " + shape_str(t->shape));
    bool token = false;
    for (const auto& a : cfg.architectures) token = token || a.find("TokenClassification") != std::string::npos;
    heads.classifier = token ? HeadSet::Classifier::kToken : HeadSet::Classifier::kSequence;
    heads.num_labels = t->shape[0];
    // A classifier without rows has no label to predict (classify would read past the logits), and
    // one whose bias or width disagrees is not the head the config describes. Fine-tuning
    // (allow_missing_heads) drops the file's heads and builds a new classifier, so it skips this.
    if (!opts.allow_missing_heads) {
      if (heads.num_labels <= 0)
        throw Error(dir + ": tensor 'classifier.weight' has shape " + shape_str(t->shape) +
                    ": a classifier needs at least one label (row)");
      auto bias = where.find("classifier.bias");
      if (bias == where.end())
        throw Error(dir + ": tensor 'classifier.bias' is missing (classifier.weight has " +
                    std::to_string(heads.num_labels) + " rows)");
      if (bias->second.second->shape != std::vector<int64_t>{heads.num_labels})
        throw Error(dir + ": tensor 'classifier.bias' has shape " + shape_str(bias->second.second->shape) +
                    ", expected [" + std::to_string(heads.num_labels) + "] (one per row of classifier.weight)");
      if (t->shape[1] != cfg.hidden_size)
        throw Error(dir + ": tensor 'classifier.weight' has shape " + shape_str(t->shape) + ", expected [" +
                    std::to_string(heads.num_labels) + ", " + std::to_string(cfg.hidden_size) +
                    "] (hidden_size columns)");
    }
    if (!cfg.id2label.empty() && static_cast<int64_t>(cfg.id2label.size()) != heads.num_labels)
      throw Error(dir + ": classifier.weight has " + std::to_string(heads.num_labels) +
                  " rows but config id2label has " + std::to_string(cfg.id2label.size()) + " labels");
  }
  heads.mlm = has_decoder || (has_head && !has_cls);
  if (opts.allow_missing_heads) heads = HeadSet{};
  return heads;
}

// Every spec's tensor present with its shape and a dtype the load can take (float; in a quantized
// checkpoint exactly the stored type, plus an int8 tensor's scale), and nothing else in the files.
// Throws one Error listing every problem. Returns the stored dtype of the encoder weights.
std::string check_tensors(const std::string& dir, const ModelConfig& cfg, const Weights& w, const TensorMap& where,
                          const QuantState& q, const LoadOptions& opts,
                          const std::function<std::string(const std::string&)>& file_name) {
  std::vector<std::string> problems;
  std::set<std::string> used;
  std::string stored_dtype;
  auto float_dtype = [](DType d) {
    return d == DType::kF32 || d == DType::kF16 || d == DType::kBF16 || d == DType::kF64;
  };
  for (const auto& spec : w.specs()) {
    std::string fname = file_name(spec.name);
    auto it = where.find(fname);
    if (it == where.end()) {
      problems.push_back("missing tensor '" + fname + "' (expected shape " + shape_str(spec.shape) + ")");
      continue;
    }
    used.insert(fname);
    const TensorInfo& t = *it->second.second;
    if (t.shape != spec.shape) {
      problems.push_back("tensor '" + fname + "' has shape " + shape_str(t.shape) + ", expected " +
                         shape_str(spec.shape));
      continue;
    }
    const Precision sp = q.quantized ? lowp::storage_precision(spec.name, q.precision) : Precision::kF32;
    if (sp != Precision::kF32) {
      const DType want = lowp::storage_dtype(sp);
      if (t.dtype != want) {
        problems.push_back("tensor '" + fname + "' has dtype " + dtype_name(t.dtype) + ", expected " +
                           dtype_name(want) + " (" + with_article(precision_name(q.precision)) +
                           " checkpoint stores it so)");
        continue;
      }
      if (sp == Precision::kInt8) {
        const std::string sname = fname + lowp::kScaleSuffix;
        auto s = where.find(sname);
        if (s == where.end()) {
          problems.push_back("missing tensor '" + sname + "' (F32 [" + std::to_string(spec.shape[0]) +
                             "], the per-output-channel scale of the I8 tensor '" + fname + "')");
          continue;
        }
        used.insert(sname);
        const TensorInfo& st = *s->second.second;
        if (st.dtype != DType::kF32)
          problems.push_back("tensor '" + sname + "' has dtype " + dtype_name(st.dtype) + ", expected F32");
        else if (st.shape != std::vector<int64_t>{spec.shape[0]})
          problems.push_back("tensor '" + sname + "' has shape " + shape_str(st.shape) + ", expected [" +
                             std::to_string(spec.shape[0]) + "] (one scale per row of '" + fname + "')");
      }
    } else if (q.quantized && t.dtype != DType::kF32) {  // norms, biases, classifier: F32 in every precision
      problems.push_back("tensor '" + fname + "' has dtype " + dtype_name(t.dtype) + ", expected F32 (" +
                         with_article(precision_name(q.precision)) + " checkpoint stores it so)");
      continue;
    } else if (!float_dtype(t.dtype)) {
      problems.push_back("tensor '" + fname + "' has dtype " + dtype_name(t.dtype) + ", expected a float type");
      continue;
    }
    if (spec.name == "model.embeddings.tok_embeddings.weight" && stored_dtype.empty())
      stored_dtype = dtype_name(t.dtype);
    if (spec.name == "model.layers.0.attn.Wqkv.weight" && sp == Precision::kInt8) stored_dtype = "I8";
  }
  for (const auto& [name, _] : where) {
    if (used.count(name)) continue;
    // A tied decoder saved explicitly is redundant but harmless.
    if (name == "decoder.weight" && cfg.tie_word_embeddings) continue;
    if (opts.allow_missing_heads &&
        (name.rfind("head.", 0) == 0 || name.rfind("decoder.", 0) == 0 || name.rfind("classifier.", 0) == 0))
      continue;
    const bool scale = name.size() > 6 && name.compare(name.size() - 6, 6, lowp::kScaleSuffix) == 0;
    problems.push_back("unexpected tensor '" + name + "'" +
                       (scale ? " (a scale tensor belongs to an I8 weight of an int8 checkpoint)" : ""));
  }
  if (!problems.empty()) {
    std::string msg = dir + ": checkpoint does not match config.json (" + std::to_string(problems.size()) + " problem" +
                      (problems.size() > 1 ? "s" : "") + "):";
    for (const auto& p : problems) msg += "\n  - " + p;
    throw Error(msg);
  }
  return stored_dtype;
}

}  // namespace

LoadedModel load_model_dir(const std::string& dir, const LoadOptions& opts) {
  std::string cfg_path = dir + "/config.json";
  if (!file_exists(cfg_path)) throw Error(dir + ": not a model directory (no config.json)");
  ModelConfig cfg = ModelConfig::from_file(cfg_path);

  // Open the weight file(s) and map every tensor name to its file.
  std::vector<std::shared_ptr<SafeTensorsFile>> files;
  TensorMap where;
  open_weight_files(dir, files, where);

  // A checkpoint written by `modernbert quantize` loads only as its own precision, and only where
  // reduced precision is allowed; a float checkpoint is converted to the precision asked for.
  const QuantState quant = detect_quantized(dir, files, cfg.raw);
  if (quant.quantized && (!opts.allow_quantized || (opts.precision && *opts.precision != quant.precision)))
    quantized_mismatch(quant, opts);
  const Precision prec = quant.quantized ? quant.precision : opts.precision.value_or(Precision::kF32);
  // int8's exactness bound (precision.h) on K: hidden_size (Wqkv, Wo, Wi, head.dense) or
  // intermediate_size (Wo_mlp).
  if (prec == Precision::kInt8 && std::max(cfg.hidden_size, cfg.intermediate_size) >= kInt8KLimit)
    throw Error(dir + ": hidden_size " + std::to_string(cfg.hidden_size) + " / intermediate_size " +
                std::to_string(cfg.intermediate_size) + " exceed what int8 computes exactly (a linear's inputs <= " +
                std::to_string(kInt8KLimit - 1) + ": its int32 sums could overflow); load it as bf16, f16 or f32");

  // "model." prefix (ModernBertFor* saves) or bare names (ModernBertModel saves); not both.
  bool any_prefixed = false, any_bare = false;
  for (const auto& [name, _] : where) {
    if (name.rfind("model.", 0) == 0) any_prefixed = true;
    if (is_encoder_name(name)) any_bare = true;
  }
  if (any_prefixed && any_bare) throw Error(dir + ": tensor names mix the 'model.' prefix and bare encoder names");
  bool prefixed = !any_bare;
  auto file_name = [&](const std::string& hf) {
    if (!prefixed && hf.rfind("model.", 0) == 0) return hf.substr(6);
    return hf;
  };

  HeadSet heads = detect_heads(dir, cfg, where, opts);
  // A reduced-precision model never uses the contiguous float buffer (each parameter has its own
  // storage or lives in the mapping), so it is not allocated.
  Weights w(cfg, heads, /*allocate=*/!opts.zero_copy && prec == Precision::kF32);
  std::string stored_dtype = check_tensors(dir, cfg, w, where, quant, opts, file_name);

  std::map<const SafeTensorsFile*, std::shared_ptr<SafeTensorsFile>> owners;
  for (const auto& f : files) owners[f.get()] = f;
  for (const auto& spec : w.specs()) {
    const std::string fname = file_name(spec.name);
    auto [file, info] = where[fname];
    const std::shared_ptr<SafeTensorsFile>& owner = owners[file];
    if (prec == Precision::kF32) {
      const float* in_place = opts.zero_copy ? file->f32_in_place(*info) : nullptr;
      if (in_place) {
        w.bind_external(spec.name, in_place, owner);
      } else {
        file->to_f32(*info, w.mutable_param(spec.name));
        file->release(*info);  // the converted source pages need not stay resident
      }
      continue;
    }
    const Precision t = lowp::storage_precision(spec.name, prec);
    const std::string label = file->path() + ": tensor '" + fname + "'";
    if (quant.quantized && t != Precision::kF32) {
      auto s = where.find(fname + lowp::kScaleSuffix);
      const TensorInfo* scale = t == Precision::kInt8 && s != where.end() ? s->second.second : nullptr;
      lowp::load_stored(w, spec.name, t, owner, *info, scale, opts.zero_copy, label);
    } else {
      lowp::load_from_float(w, spec.name, t, owner, *info, opts.zero_copy, label);
    }
  }
  for (const auto& spec : w.specs()) {
    if (w.param_type(spec.name) != Precision::kF32) continue;  // checked as they were filled
    const float* p = w.param(spec.name);
    for (int64_t i = 0, n = spec.numel(); i < n; ++i)
      if (!std::isfinite(p[i]))
        throw Error(dir + ": tensor '" + file_name(spec.name) + "' contains NaN or Inf at element " +
                    std::to_string(i));
  }

  LoadedModel m{cfg, std::move(w), {}, dir, stored_dtype, prefixed};
  m.precision = prec;
  m.quantized_checkpoint = quant.quantized;
  read_sentence_transformers(dir, &m.sentence_transformers);
  return m;
}

namespace {

// The config as a checkpoint of w's heads is saved with: architectures and labels filled in when
// the config has none. The output directory is created.
ModelConfig prepare_save(const std::string& dir, const ModelConfig& cfg_in, const Weights& w) {
  ::mkdir(dir.c_str(), 0755);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) throw Error(dir + ": cannot create directory");
  ModelConfig cfg = cfg_in;
  const HeadSet& h = w.heads();
  if (cfg.architectures.empty()) {
    if (h.mlm) cfg.architectures.push_back("ModernBertForMaskedLM");
    if (h.classifier == HeadSet::Classifier::kSequence)
      cfg.architectures.push_back("ModernBertForSequenceClassification");
    if (h.classifier == HeadSet::Classifier::kToken) cfg.architectures.push_back("ModernBertForTokenClassification");
    if (!h.any()) cfg.architectures.push_back("ModernBertModel");
  }
  if (h.classifier != HeadSet::Classifier::kNone && cfg.id2label.empty())
    for (int64_t i = 0; i < h.num_labels; ++i) {
      cfg.id2label[i] = "LABEL_" + std::to_string(i);
      cfg.label2id["LABEL_" + std::to_string(i)] = i;
    }
  return cfg;
}

}  // namespace

void save_model_dir(const std::string& dir, const ModelConfig& cfg_in, const Weights& w, DType dtype) {
  ModelConfig cfg = prepare_save(dir, cfg_in, w);
  cfg.torch_dtype = dtype == DType::kF32 ? "float32" : dtype == DType::kBF16 ? "bfloat16" : "float16";
  SafeTensorsWriter wr;
  wr.set_metadata("format", "pt");
  // F32 is streamed from the weights in place (no second copy of the model in memory); F16/BF16
  // need a converted copy.
  for (const auto& spec : w.specs()) {
    if (dtype == DType::kF32)
      wr.add_f32_view(spec.name, spec.shape, w.param(spec.name));
    else
      wr.add_f32(spec.name, spec.shape, w.param(spec.name), dtype);
  }
  wr.write(dir + "/model.safetensors");
  cfg.save(dir + "/config.json");
}

void save_quantized_model_dir(const std::string& dir, const ModelConfig& cfg_in, const Weights& w, Precision p) {
  if (p == Precision::kF32) throw Error("save_quantized_model_dir: f32 is not a quantized format (use save_model_dir)");
  for (const auto& spec : w.specs())
    if (w.param_type(spec.name) != lowp::storage_precision(spec.name, p))
      throw Error("save_quantized_model_dir: parameter '" + spec.name + "' is held as " +
                  precision_name(w.param_type(spec.name)) + ", " + with_article(precision_name(p)) +
                  " checkpoint stores it as " + precision_name(lowp::storage_precision(spec.name, p)) +
                  " (load the model with that precision)");
  ModelConfig cfg = prepare_save(dir, cfg_in, w);
  cfg.torch_dtype = lowp::torch_dtype_for(p);
  if (cfg.raw.contains("dtype")) cfg.raw["dtype"] = cfg.torch_dtype;  // newer configs name it so; keep both equal
  cfg.raw["quantization_config"] = lowp::quantization_config(p);
  SafeTensorsWriter wr;
  wr.set_metadata("format", "pt");
  wr.set_metadata(lowp::kPrecisionKey, precision_name(p));
  wr.set_metadata(lowp::kSchemeKey, lowp::scheme_line(p));
  // Streamed from the weights in place. Order by element size (F32 tensors and scales, then the
  // 16-bit ones, then I8): the data area starts 8-byte aligned, so every F32 / 16-bit tensor is
  // aligned for a zero-copy load.
  for (int pass = 0; pass < 3; ++pass)
    for (const auto& spec : w.specs()) {
      const WeightMatrix m = w.matrix(spec.name);
      const int group = m.type == Precision::kF32 ? 0 : m.type == Precision::kInt8 ? 2 : 1;
      if (pass == 0 && m.type == Precision::kInt8)
        wr.add_f32_view(spec.name + lowp::kScaleSuffix, {spec.shape[0]}, m.scale);
      if (group != pass) continue;
      wr.add_view(spec.name, lowp::storage_dtype(m.type), spec.shape, m.data);
    }
  wr.write(dir + "/model.safetensors");
  cfg.save(dir + "/config.json");
}

}  // namespace modernbert
