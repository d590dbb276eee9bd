// Tiny stand-ins for the five Hugging Face repositories of the README quick start.
//
// What the real repositories hold. Nothing could be downloaded here; the layouts come from stored
// copies of the Hub's file listings ("Files and versions" pages with byte sizes), model cards,
// configs of derived repositories and PyLate's source (lightonai/pylate, pylate/models/colbert.py),
// looked up with the project's search tool in December 2026. V = seen in such a copy; I = inferred
// (from a file size, a library's code or a related repository), not seen; U = not established.
//
// All five: model.safetensors of ~596-598 MB for 149 M parameters, so F32 weights (V sizes);
// tokenizer.json 3.58 MB (the ModernBERT tokenizer, V size), tokenizer_config.json,
// special_tokens_map.json 694 B (V size; 581 B for the PyLate repository). config.json keys as
// transformers 4.48 writes a ModernBERT config (V: the config of a nomic fine-tune, listing
// architectures, *_rope_theta, global_attn_every_n_layers, local_attention, classifier_pooling
// "mean", cls/sep/pad/bos/eos ids, deterministic_flash_attn, reference_compile, vocab_size 50368 ...).
//
// answerdotai/ModernBERT-base — architectures ["ModernBertForMaskedLM"] (V), tensors under
//   "model." plus head.* and decoder.bias (I: transformers' ModernBertForMaskedLM state dict).
//   No sentence-transformers files (V: the repository is used through fill-mask).
// nomic-ai/modernbert-embed-base — files (V listing): 1_Pooling/config.json (296 B), onnx/,
//   config.json (ModernBertModel, V via the fine-tune's config), config_sentence_transformers.json
//   (210 B), model.safetensors, modules.json (349 B), sentence_bert_config.json (54 B), tokenizer
//   files. modules.json is 349 B, byte for byte the size of the standard Transformer / 1_Pooling /
//   2_Normalize list (V for bge-base-en-v1.5), so: Transformer, Pooling, Normalize (I); there is no
//   2_Normalize folder (V: not in the listing; Normalize has no files). 1_Pooling: mean (I: the
//   model card's mean pooling; 296 B fits the sentence-transformers 3 pooling config).
//   config_sentence_transformers.json: 210 B is the size of {"__version__": {...}, "prompts": {},
//   "default_prompt_name": null, "similarity_fn_name": "cosine"}; two prompts would add ~70 B, so
//   the file defines NO prompts (I) and the model card prepends "search_query: " /
//   "search_document: " to the texts itself (V). The README therefore uses --prefix, which works on
//   the real files; --prompt NAME would need a prompt the real file lacks. Matryoshka: 768 and 256
//   are the trained dimensions (V: model card / Tom Aarsen's post). Tensors without "model."
//   (I: a saved ModernBertModel).
// Alibaba-NLP/gte-modernbert-base — ModernBertModel (V: card's AutoModel usage), CLS pooling then
//   optional L2 normalisation (V: card, `last_hidden_state[:, 0]`, "(Optionally) normalize"). Its
//   sentence-transformers files were not seen (U); the fixture has modules.json Transformer +
//   Pooling (cls) and no Normalize (I), and the README passes --pooling cls --normalize so the
//   command does what the card does whatever those files say.
// Alibaba-NLP/gte-reranker-modernbert-base — files (V listing): onnx/, config.json (1.33 kB),
//   model.safetensors (598 MB), special_tokens_map.json, tokenizer.json, tokenizer_config.json:
//   NO modules.json (V). ModernBertForSequenceClassification with one label (V: card,
//   text-classification tag; CrossEncoder scores are sigmoid(logit): the card's 2.1387 -> 0.8945,
//   I from memory of the card). id2label {"0": "LABEL_0"} (I); classifier_pooling "mean" (U).
// lightonai/GTE-ModernColBERT-v1 — files (V listing): 1_Dense/, config.json, config_sentence_
//   transformers.json (694 B, edited 18 days before the copy: "remove trailing coma"),
//   model.safetensors, modules.json (216 B), sentence_bert_config.json (53 B),
//   special_tokens_map.json (581 B), tokenizer.json, tokenizer_config.json (21.4 kB).
//   Architecture (V: card): Transformer(max_seq_length 299, ModernBertModel) + Dense(768 -> 128,
//   bias false, Identity); query length 32, document length 300 (V: card). modules.json 216 B is
//   exactly Transformer + {"path": "1_Dense", "type": "pylate.models.Dense.Dense"} (I: byte count;
//   "sentence_transformers.models.Dense" would make it 225 B). 1_Dense holds config.json and
//   model.safetensors with linear.weight [128, 768] (V for ModernBERT-base-ColBERT, a PyLate model
//   of the same shape). config_sentence_transformers.json: PyLate's save() writes query_prefix,
//   document_prefix, query_length, document_length, attend_to_expansion_tokens, skiplist_words,
//   do_query_expansion (V: colbert.py); values "[Q] ", "[D] ", 32, 300, false,
//   string.punctuation (I: card + PyLate defaults; the same keys and values are V in
//   mixedbread's PyLate config). do_query_expansion false (I: pylate#125 says GTE-ModernColBERT was
//   trained with flash attention, where expansion tokens are zero vectors, so expansion on CPU
//   "destroys the performance" and the fix is a flag to turn expansion off; the manual edit of
//   the file fits). Tokenizer: PyLate adds "[Q] " and "[D] " (trailing space) with
//   tokenizer.add_tokens and resizes the embeddings to len(tokenizer) (V: colbert.py), so ids 50368
//   and 50369 (V: mixedbread's export lists query_prefix_id 50368, document_prefix_id 50369) and
//   vocab_size 50370 in config.json (I). PyLate sets the pad token to [MASK] (V: colbert.py).
#include "hf_layout_fixtures.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "modernbert/file_io.h"
#include "modernbert/safetensors.h"
#include "test_util.h"

using nlohmann::json;

namespace mbtest::hf {
namespace {

void write_json(const std::string& path, const json& j) { std::ofstream(path) << j.dump(2); }

bool run(const std::string& cmd) {
  auto r = run_command(cmd);
  if (r.status != 0) ADD_FAILURE() << cmd << "\n" << r.output;
  return r.status == 0;
}

// config.json as transformers 4.48 writes it: init's config without the transformers-5 keys
// (layer_types, rope_parameters) and with the keys the real files carry.
void hf_config(const std::string& dir, const std::string& arch, const json& extra = json::object()) {
  json c = json::parse(modernbert::read_file(dir + "/config.json"));
  c.erase("layer_types");
  c.erase("rope_parameters");
  c.erase("tie_word_embeddings");
  c["architectures"] = json::array({arch});
  c["deterministic_flash_attn"] = false;
  c["gradient_checkpointing"] = false;
  c["position_embedding_type"] = "absolute";
  c["reference_compile"] = false;
  c["transformers_version"] = "4.48.0";
  for (auto it = extra.begin(); it != extra.end(); ++it) c[it.key()] = it.value();
  write_json(dir + "/config.json", c);
}

// A saved ModernBertModel names its tensors without the "model." prefix.
void strip_model_prefix(const std::string& dir) {
  const std::string path = dir + "/model.safetensors";
  auto f = modernbert::SafeTensorsFile::open(path);
  modernbert::SafeTensorsWriter w;
  for (const auto& t : f->tensors()) {
    std::string name = t.name.rfind("model.", 0) == 0 ? t.name.substr(6) : t.name;
    w.add(name, t.dtype, t.shape, f->data(t));
  }
  w.write(path);
}

json special_token(const std::string& content, bool lstrip = false) {
  return {{"content", content}, {"lstrip", lstrip}, {"normalized", false}, {"rstrip", false}, {"single_word", false}};
}

// tokenizer.json (with `added` appended to its added_tokens), tokenizer_config.json and
// special_tokens_map.json.
void tokenizer_files(const std::string& dir, const std::vector<std::string>& added = {}, int64_t max_len = 8192) {
  json tok = json::parse(modernbert::read_file(tokenizer_json()));
  int64_t next = 0;
  for (const auto& t : tok["added_tokens"]) next = std::max<int64_t>(next, t["id"].get<int64_t>() + 1);
  json decoder = json::object();
  for (const auto& s : added) {
    json t = {{"id", next},      {"content", s},       {"single_word", false}, {"lstrip", false},
              {"rstrip", false}, {"normalized", true}, {"special", false}};
    tok["added_tokens"].push_back(t);
    decoder[std::to_string(next++)] = {{"content", s},    {"lstrip", false},      {"normalized", true},
                                       {"rstrip", false}, {"single_word", false}, {"special", false}};
  }
  std::ofstream(dir + "/tokenizer.json") << tok.dump();
  const std::string pad = added.empty() ? "[PAD]" : "[MASK]";  // PyLate pads with [MASK]
  write_json(dir + "/special_tokens_map.json", {{"cls_token", special_token("[CLS]")},
                                                {"mask_token", special_token("[MASK]", true)},
                                                {"pad_token", special_token(pad, pad == "[MASK]")},
                                                {"sep_token", special_token("[SEP]")},
                                                {"unk_token", special_token("[UNK]")}});
  write_json(dir + "/tokenizer_config.json", {{"added_tokens_decoder", decoder},
                                              {"clean_up_tokenization_spaces", true},
                                              {"cls_token", "[CLS]"},
                                              {"mask_token", "[MASK]"},
                                              {"model_input_names", {"input_ids", "attention_mask"}},
                                              {"model_max_length", max_len},
                                              {"pad_token", pad},
                                              {"sep_token", "[SEP]"},
                                              {"tokenizer_class", "PreTrainedTokenizerFast"},
                                              {"unk_token", "[UNK]"}});
}

json st_module(int idx, const std::string& path, const std::string& type) {
  return {{"idx", idx}, {"name", std::to_string(idx)}, {"path", path}, {"type", type}};
}
const char* kTransformer = "sentence_transformers.models.Transformer";

json st_version() { return {{"sentence_transformers", "3.3.1"}, {"transformers", "4.48.0"}, {"pytorch", "2.5.1"}}; }

void pooling(const std::string& dir, int64_t dim, const std::string& mode) {
  run_command("mkdir -p " + dir + "/1_Pooling");
  write_json(dir + "/1_Pooling/config.json", {{"word_embedding_dimension", dim},
                                              {"pooling_mode_cls_token", mode == "cls"},
                                              {"pooling_mode_mean_tokens", mode == "mean"},
                                              {"pooling_mode_max_tokens", false},
                                              {"pooling_mode_mean_sqrt_len_tokens", false},
                                              {"pooling_mode_weightedmean_tokens", false},
                                              {"pooling_mode_lasttoken", false},
                                              {"include_prompt", true}});
}

// `modernbert init` into dir from the tiny preset, with `changes` applied to its architecture.
bool init(const std::string& dir, const std::string& heads, int seed, const json& changes = json::object()) {
  const std::string base = "--seed " + std::to_string(seed) + " --heads '" + heads + "' --out " + dir;
  if (changes.empty()) return run(cli() + " init --preset tiny " + base);
  if (!run(cli() + " init --preset tiny --heads '' --out " + dir + ".cfg")) return false;
  json c = json::parse(modernbert::read_file(dir + ".cfg/config.json"));
  for (auto it = changes.begin(); it != changes.end(); ++it) c[it.key()] = it.value();
  write_json(dir + ".cfg/config.json", c);
  const bool ok = run(cli() + " init --config " + dir + ".cfg/config.json " + base);
  run_command("rm -rf " + dir + ".cfg");
  return ok;
}

// config_sentence_transformers.json without prompts and sentence_bert_config.json, as the two
// sentence-transformers embedding repositories have them.
void sentence_transformers_configs(const std::string& dir) {
  write_json(dir + "/config_sentence_transformers.json", {{"__version__", st_version()},
                                                          {"prompts", json::object()},
                                                          {"default_prompt_name", nullptr},
                                                          {"similarity_fn_name", "cosine"}});
  write_json(dir + "/sentence_bert_config.json", {{"max_seq_length", 8192}, {"do_lower_case", false}});
}

bool modernbert_base(const std::string& dir) {
  if (!init(dir, "mlm", 31)) return false;
  hf_config(dir, "ModernBertForMaskedLM", {{"reference_compile", true}});
  tokenizer_files(dir);
  return true;
}

bool nomic_embed(const std::string& dir) {
  // Hidden 288 so that the README's Matryoshka --dim 256 is a real truncation.
  if (!init(dir, "", 32,
            {{"hidden_size", 288},
             {"num_attention_heads", 4},
             {"intermediate_size", 384},
             {"num_hidden_layers", 2},
             {"layer_types", {"full_attention", "sliding_attention"}}}))
    return false;
  strip_model_prefix(dir);
  hf_config(dir, "ModernBertModel");
  tokenizer_files(dir);
  write_json(dir + "/modules.json",
             {st_module(0, "", kTransformer), st_module(1, "1_Pooling", "sentence_transformers.models.Pooling"),
              st_module(2, "2_Normalize", "sentence_transformers.models.Normalize")});
  pooling(dir, 288, "mean");
  sentence_transformers_configs(dir);
  return true;
}

bool gte_embed(const std::string& dir) {
  if (!init(dir, "", 33)) return false;
  strip_model_prefix(dir);
  hf_config(dir, "ModernBertModel");
  tokenizer_files(dir);
  write_json(dir + "/modules.json",
             {st_module(0, "", kTransformer), st_module(1, "1_Pooling", "sentence_transformers.models.Pooling")});
  pooling(dir, 64, "cls");
  sentence_transformers_configs(dir);
  return true;
}

bool gte_reranker(const std::string& dir) {
  if (!init(dir, "cls:1", 34)) return false;
  hf_config(dir, "ModernBertForSequenceClassification",
            {{"id2label", {{"0", "LABEL_0"}}}, {"label2id", {{"LABEL_0", 0}}}});
  tokenizer_files(dir);
  return true;
}

bool gte_colbert(const std::string& dir) {
  // PyLate resized the embeddings for its two added tokens: 50368 + 2.
  if (!init(dir, "", 35, {{"vocab_size", 50370}})) return false;
  strip_model_prefix(dir);
  hf_config(dir, "ModernBertModel");
  tokenizer_files(dir, {"[Q] ", "[D] "}, 299);
  write_json(dir + "/modules.json",
             {st_module(0, "", kTransformer), st_module(1, "1_Dense", "pylate.models.Dense.Dense")});
  run_command("mkdir -p " + dir + "/1_Dense");
  const int64_t out = 32, in = 64;  // the real one is 128 x 768
  write_json(dir + "/1_Dense/config.json", {{"in_features", in},
                                            {"out_features", out},
                                            {"bias", false},
                                            {"activation_function", "torch.nn.modules.linear.Identity"}});
  std::vector<float> w(static_cast<size_t>(out * in));
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.2f * std::sin(0.37f * static_cast<float>(i) + 1.0f);
  modernbert::SafeTensorsWriter d;
  d.add_f32("linear.weight", {out, in}, w.data());
  d.write(dir + "/1_Dense/model.safetensors");
  json skiplist = json::array();
  for (char ch : std::string("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")) skiplist.push_back(std::string(1, ch));
  write_json(dir + "/config_sentence_transformers.json", {{"__version__", st_version()},
                                                          {"prompts", json::object()},
                                                          {"default_prompt_name", nullptr},
                                                          {"similarity_fn_name", "MaxSim"},
                                                          {"query_prefix", "[Q] "},
                                                          {"document_prefix", "[D] "},
                                                          {"query_length", 32},
                                                          {"document_length", 300},
                                                          {"attend_to_expansion_tokens", false},
                                                          {"skiplist_words", skiplist},
                                                          {"do_query_expansion", false}});
  write_json(dir + "/sentence_bert_config.json", {{"max_seq_length", 299}, {"do_lower_case", false}});
  return true;
}

}  // namespace

const std::vector<std::string>& repos() {
  static const std::vector<std::string> r = {
      "answerdotai/ModernBERT-base", "nomic-ai/modernbert-embed-base", "Alibaba-NLP/gte-modernbert-base",
      "Alibaba-NLP/gte-reranker-modernbert-base", "lightonai/GTE-ModernColBERT-v1"};
  return r;
}

bool write_fixture(const std::string& repo, const std::string& dir) {
  if (repo == "answerdotai/ModernBERT-base") return modernbert_base(dir);
  if (repo == "nomic-ai/modernbert-embed-base") return nomic_embed(dir);
  if (repo == "Alibaba-NLP/gte-modernbert-base") return gte_embed(dir);
  if (repo == "Alibaba-NLP/gte-reranker-modernbert-base") return gte_reranker(dir);
  if (repo == "lightonai/GTE-ModernColBERT-v1") return gte_colbert(dir);
  ADD_FAILURE() << "no fixture for " << repo;
  return false;
}

}  // namespace mbtest::hf
