// Hugging Face model directories: config.json + model.safetensors (or sharded via
// model.safetensors.index.json), tensor names with or without the "model." prefix, any mix of heads,
// and the sentence-transformers / PyLate side files.
#include "modernbert/model_dir.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "modernbert/error.h"
#include "modernbert/file_io.h"

namespace modernbert {

using nlohmann::json;

namespace {

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

}  // namespace

LoadedModel load_model_dir(const std::string& dir, const LoadOptions& opts) {
  std::string cfg_path = dir + "/config.json";
  if (!file_exists(cfg_path)) throw Error(dir + ": not a model directory (no config.json)");
  ModelConfig cfg = ModelConfig::from_file(cfg_path);

  // Open the weight file(s) and map every tensor name to its file.
  std::vector<std::shared_ptr<SafeTensorsFile>> files;
  TensorMap where;
  open_weight_files(dir, files, where);

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

  // Heads present in the files.
  HeadSet heads;
  bool has_head = where.count("head.dense.weight") > 0;
  bool has_cls = where.count("classifier.weight") > 0;
  bool has_decoder = where.count("decoder.bias") || where.count("decoder.weight");
  if (has_cls) {
    const TensorInfo* t = where["classifier.weight"].second;
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

  Weights w(cfg, heads, /*allocate=*/!opts.zero_copy);
  std::vector<std::string> problems;
  std::set<std::string> used;
  std::string stored_dtype;
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
    if (t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16 && t.dtype != DType::kF64) {
      problems.push_back("tensor '" + fname + "' has dtype " + dtype_name(t.dtype) + ", expected a float type");
      continue;
    }
    if (spec.name == "model.embeddings.tok_embeddings.weight") stored_dtype = dtype_name(t.dtype);
  }
  for (const auto& [name, _] : where) {
    if (used.count(name)) continue;
    // A tied decoder saved explicitly is redundant but harmless.
    if (name == "decoder.weight" && cfg.tie_word_embeddings) continue;
    if (opts.allow_missing_heads &&
        (name.rfind("head.", 0) == 0 || name.rfind("decoder.", 0) == 0 || name.rfind("classifier.", 0) == 0))
      continue;
    problems.push_back("unexpected tensor '" + name + "'");
  }
  if (!problems.empty()) {
    std::string msg = dir + ": checkpoint does not match config.json (" + std::to_string(problems.size()) + " problem" +
                      (problems.size() > 1 ? "s" : "") + "):";
    for (const auto& p : problems) msg += "\n  - " + p;
    throw Error(msg);
  }

  for (const auto& spec : w.specs()) {
    auto [file, info] = where[file_name(spec.name)];
    const float* in_place = opts.zero_copy ? file->f32_in_place(*info) : nullptr;
    std::shared_ptr<SafeTensorsFile> owner;
    for (const auto& f : files)
      if (f.get() == file) owner = f;
    if (in_place) {
      w.bind_external(spec.name, in_place, owner);
    } else {
      file->to_f32(*info, w.mutable_param(spec.name));
    }
  }
  for (const auto& spec : w.specs()) {
    const float* p = w.param(spec.name);
    for (int64_t i = 0, n = spec.numel(); i < n; ++i)
      if (!std::isfinite(p[i]))
        throw Error(dir + ": tensor '" + file_name(spec.name) + "' contains NaN or Inf at element " +
                    std::to_string(i));
  }

  LoadedModel m{cfg, std::move(w), {}, dir, stored_dtype, prefixed};
  read_sentence_transformers(dir, &m.sentence_transformers);
  return m;
}

void save_model_dir(const std::string& dir, const ModelConfig& cfg_in, const Weights& w, DType dtype) {
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

}  // namespace modernbert
