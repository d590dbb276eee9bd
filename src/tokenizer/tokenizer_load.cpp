// Loading a HF tokenizer.json into Tokenizer::Impl. Every unsupported component is rejected by
// name; nothing is silently ignored.
#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "modernbert/error.h"
#include "tokenizer/tokenizer_impl.h"

namespace modernbert {

using nlohmann::json;
using tok::AddedToken;

namespace {

constexpr std::int64_t kMaxId = 1 << 26;  // ids above this are rejected (sane vocab sizes only)

struct Ctx {
  const std::string& origin;
  [[noreturn]] void fail(const std::string& where, const std::string& msg) const {
    throw Error(origin + ": " + where + ": " + msg);
  }
  const json& field(const json& obj, const char* key, const std::string& where) const {
    if (!obj.is_object()) fail(where, "expected an object");
    auto it = obj.find(key);
    if (it == obj.end()) fail(where, std::string("missing field '") + key + "'");
    return *it;
  }
  bool get_bool(const json& obj, const char* key, const std::string& where, bool dflt) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return dflt;
    if (!it->is_boolean()) fail(where + "." + key, "expected a boolean");
    return it->get<bool>();
  }
  std::string get_string(const json& v, const std::string& where) const {
    if (!v.is_string()) fail(where, "expected a string");
    const std::string& s = v.get_ref<const std::string&>();
    if (tok::utf8_first_invalid(s) != std::string::npos) fail(where, "invalid UTF-8");
    return s;
  }
  std::int32_t get_id(const json& v, const std::string& where) const {
    if (!v.is_number_integer()) fail(where, "expected an integer id");
    std::int64_t id = v.get<std::int64_t>();
    if (id < 0 || id >= kMaxId) fail(where, "id " + std::to_string(id) + " out of range");
    return static_cast<std::int32_t>(id);
  }
  std::string type_of(const json& v, const std::string& where) const {
    if (!v.is_object()) fail(where, "expected an object");
    auto it = v.find("type");
    if (it == v.end() || !it->is_string()) fail(where, "missing 'type'");
    return it->get<std::string>();
  }
};

void load_normalizer(const Ctx& c, const json& n, Tokenizer::Impl& t, const std::string& where) {
  if (n.is_null()) return;
  std::string type = c.type_of(n, where);
  if (type == "NFC") {
    t.nfc = true;
  } else if (type == "Sequence") {
    const json& list = c.field(n, "normalizers", where);
    if (!list.is_array()) c.fail(where + ".normalizers", "expected an array");
    for (std::size_t i = 0; i < list.size(); ++i)
      load_normalizer(c, list[i], t, where + ".normalizers[" + std::to_string(i) + "]");
  } else {
    c.fail(where, "unsupported normalizer '" + type + "' (supported: NFC, Sequence of NFC)");
  }
}

void load_pre_tokenizer(const Ctx& c, const json& p, Tokenizer::Impl& t, const std::string& where) {
  if (p.is_null())
    c.fail(where, "a null pre_tokenizer is not supported (only ByteLevel)");
  std::string type = c.type_of(p, where);
  if (type == "ByteLevel") {
    if (t.byte_level) c.fail(where, "more than one ByteLevel pre-tokenizer");
    t.byte_level = true;
    t.add_prefix_space = c.get_bool(p, "add_prefix_space", where, true);
    t.use_regex = c.get_bool(p, "use_regex", where, true);
    // trim_offsets only acts in the ByteLevel post-processor; accepted and unused here.
    c.get_bool(p, "trim_offsets", where, true);
  } else if (type == "Sequence") {
    const json& list = c.field(p, "pretokenizers", where);
    if (!list.is_array() || list.size() != 1)
      c.fail(where, "only a Sequence holding exactly one ByteLevel pre-tokenizer is supported");
    load_pre_tokenizer(c, list[0], t, where + ".pretokenizers[0]");
  } else {
    c.fail(where, "unsupported pre_tokenizer '" + type + "' (supported: ByteLevel)");
  }
}

// `id_bound`: the number of entries the file defines (vocabulary + added tokens). A vocabulary id
// at or above it cannot be dense; rejecting it also bounds the id tables allocated below by the
// size of the file (a 120-byte file with one id of 2^26-1 once allocated 2.1 GB).
void load_model(const Ctx& c, const json& m, Tokenizer::Impl& t, std::size_t id_bound) {
  const std::string where = "model";
  if (!m.is_object()) c.fail(where, "expected an object");
  auto ti = m.find("type");
  if (ti != m.end()) {
    if (!ti->is_string()) c.fail(where + ".type", "expected a string");
    if (ti->get<std::string>() != "BPE")
      c.fail(where, "unsupported model '" + ti->get<std::string>() + "' (supported: BPE)");
  }
  auto dropout = m.find("dropout");
  if (dropout != m.end() && !dropout->is_null()) {
    if (!dropout->is_number()) c.fail(where + ".dropout", "expected a number or null");
    if (dropout->get<double>() != 0.0) c.fail(where + ".dropout", "BPE dropout is not supported");
  }
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto it = m.find(k);
    if (it != m.end() && !it->is_null() && !(it->is_string() && it->get<std::string>().empty()))
      c.fail(where + "." + k, "not supported");
  }
  if (c.get_bool(m, "byte_fallback", where, false))
    c.fail(where + ".byte_fallback", "byte_fallback is not supported");
  t.fuse_unk = c.get_bool(m, "fuse_unk", where, false);
  t.ignore_merges = c.get_bool(m, "ignore_merges", where, false);

  const json& vocab = c.field(m, "vocab", where);
  if (!vocab.is_object()) c.fail(where + ".vocab", "expected an object");
  t.vocab.reserve(vocab.size() * 2);
  std::int32_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    std::string tokstr = it.key();
    if (tok::utf8_first_invalid(tokstr) != std::string::npos)
      c.fail(where + ".vocab", "token with invalid UTF-8");
    std::int32_t id = c.get_id(it.value(), where + ".vocab[\"" + tokstr + "\"]");
    if (static_cast<std::size_t>(id) >= id_bound)
      c.fail(where + ".vocab[\"" + tokstr + "\"]", "id " + std::to_string(id) +
                                                       " is not below the number of entries the file defines (" +
                                                       std::to_string(vocab.size()) + " vocabulary + " +
                                                       std::to_string(id_bound - vocab.size()) + " added tokens)");
    t.vocab[tokstr] = id;
    max_id = std::max(max_id, id);
  }
  t.id_to_vocab.assign(static_cast<std::size_t>(max_id + 1), std::string());
  t.has_vocab.assign(static_cast<std::size_t>(max_id + 1), 0);
  for (const auto& [s, id] : t.vocab) {
    t.id_to_vocab[id] = s;
    t.has_vocab[id] = 1;
  }

  auto unk = m.find("unk_token");
  if (unk != m.end() && !unk->is_null()) {
    std::string u = c.get_string(*unk, where + ".unk_token");
    auto vi = t.vocab.find(u);
    if (vi == t.vocab.end()) c.fail(where + ".unk_token", "'" + u + "' is not in the vocabulary");
    t.unk_id = vi->second;
  }

  for (int b = 0; b < 256; ++b) {
    std::string ch;
    tok::utf8_append(ch, tok::byte_to_char(static_cast<std::uint8_t>(b)));
    auto vi = t.vocab.find(ch);
    t.byte_id[b] = vi == t.vocab.end() ? -1 : vi->second;
  }

  const json& merges = c.field(m, "merges", where);
  if (!merges.is_array()) c.fail(where + ".merges", "expected an array");
  t.merges.reserve(merges.size());
  for (std::size_t r = 0; r < merges.size(); ++r) {
    const json& e = merges[r];
    // Location string built only on the error path: 50k merges per file.
    auto mw = [&] { return where + ".merges[" + std::to_string(r) + "]"; };
    auto str = [&](const json& v, const char* sub) -> const std::string& {
      if (!v.is_string()) c.fail(mw() + sub, "expected a string");
      return v.get_ref<const std::string&>();
    };
    std::string a, b;
    if (e.is_string()) {
      const std::string& s = str(e, "");
      auto sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        c.fail(mw(), "expected \"left right\" with exactly one space");
      a.assign(s, 0, sp);
      b.assign(s, sp + 1);
    } else if (e.is_array() && e.size() == 2) {
      a = str(e[0], "[0]");
      b = str(e[1], "[1]");
    } else {
      c.fail(mw(), "expected a \"left right\" string or a [left, right] pair");
    }
    // (Strings not in the vocabulary cannot match; vocabulary keys were UTF-8 checked.)
    auto ia = t.vocab.find(a), ib = t.vocab.find(b), in = t.vocab.find(a + b);
    if (ia == t.vocab.end()) c.fail(mw(), "token '" + a + "' is not in the vocabulary");
    if (ib == t.vocab.end()) c.fail(mw(), "token '" + b + "' is not in the vocabulary");
    if (in == t.vocab.end()) c.fail(mw(), "merged token '" + a + b + "' is not in the vocabulary");
    t.merges.insert_or_assign(tok::MergeMap::make_key(ia->second, ib->second),
                              {static_cast<std::uint32_t>(r), in->second});
  }

  if (t.ignore_merges) {
    for (const auto& [s, id] : t.vocab) {
      std::string raw;
      bool ok = true;
      const auto* p = reinterpret_cast<const unsigned char*>(s.data());
      for (std::size_t i = 0; i < s.size() && ok;) {
        char32_t cp;
        int bad;
        int len = tok::utf8_decode(p, s.size(), i, cp, bad);
        int byte = len ? tok::char_to_byte(cp) : -1;
        if (byte < 0) ok = false;
        else raw += static_cast<char>(byte);
        i += len ? len : 1;
      }
      if (ok) t.raw_vocab[raw] = id;
    }
  }
}

void load_added_tokens(const Ctx& c, const json& list, Tokenizer::Impl& t) {
  if (list.is_null()) return;
  if (!list.is_array()) c.fail("added_tokens", "expected an array");
  // HF assigns ids the way AddedVocabulary::add_tokens does: a token already in the model
  // vocabulary keeps that id, otherwise it gets the next id after max(vocab size, max added).
  std::int64_t max_added = -1;
  for (std::size_t i = 0; i < list.size(); ++i) {
    std::string w = "added_tokens[" + std::to_string(i) + "]";
    const json& e = list[i];
    AddedToken a;
    a.content = c.get_string(c.field(e, "content", w), w + ".content");
    a.special = c.get_bool(e, "special", w, false);
    a.lstrip = c.get_bool(e, "lstrip", w, false);
    a.rstrip = c.get_bool(e, "rstrip", w, false);
    a.single_word = c.get_bool(e, "single_word", w, false);
    a.normalized = c.get_bool(e, "normalized", w, !a.special);
    std::int32_t file_id = c.get_id(c.field(e, "id", w), w + ".id");
    if (a.content.empty()) continue;
    std::int64_t id;
    auto prev = t.added_by_content.find(a.content);
    auto vi = t.vocab.find(a.content);
    if (prev != t.added_by_content.end()) {
      id = prev->second;
    } else if (vi != t.vocab.end()) {
      id = vi->second;
    } else {
      std::int64_t vs = static_cast<std::int64_t>(t.vocab.size());
      id = max_added < 0 ? vs : ((max_added >= vs || vs == 0) ? max_added + 1 : vs);
    }
    if (id != file_id)
      c.fail(w, "token '" + a.content + "' has id " + std::to_string(file_id) +
                    " but Hugging Face tokenizers would assign id " + std::to_string(id));
    a.id = static_cast<std::int32_t>(id);
    max_added = std::max(max_added, id);
    t.added_by_content[a.content] = a.id;
    auto bi = t.added_by_id.find(a.id);
    if (bi != t.added_by_id.end()) {
      bool was_special = t.added[bi->second].special;
      t.added[bi->second] = a;
      t.added[bi->second].special = a.special || was_special;
    } else {
      t.added_by_id[a.id] = t.added.size();
      t.added.push_back(a);
    }
  }
  for (std::size_t i = 0; i < t.added.size(); ++i) {
    const AddedToken& a = t.added[i];
    if (!a.normalized) {
      t.raw_patterns.add(a.content, static_cast<int>(i));
    } else if (t.nfc) {
      std::string norm;
      std::vector<tok::Align> in_al(a.content.size(), {0, 0}), out_al;
      if (tok::nfc_normalize(a.content, in_al, norm, out_al))
        t.norm_patterns.add(norm, static_cast<int>(i));
      else
        t.norm_patterns.add(a.content, static_cast<int>(i));
    } else {
      t.norm_patterns.add(a.content, static_cast<int>(i));
    }
  }
  t.raw_patterns.finalize();
  t.norm_patterns.finalize();
}

std::vector<tok::TemplatePiece> load_template(const Ctx& c, const json& v, const std::string& w) {
  std::vector<tok::TemplatePiece> out;
  if (!v.is_array()) c.fail(w, "expected an array of template pieces");
  for (std::size_t i = 0; i < v.size(); ++i) {
    std::string pw = w + "[" + std::to_string(i) + "]";
    const json& e = v[i];
    if (!e.is_object() || e.size() != 1) c.fail(pw, "expected {\"SpecialToken\"|\"Sequence\": ...}");
    tok::TemplatePiece p;
    if (auto it = e.find("Sequence"); it != e.end()) {
      p.is_sequence = true;
      std::string id = c.get_string(c.field(*it, "id", pw), pw + ".Sequence.id");
      if (id != "A" && id != "B") c.fail(pw, "sequence id must be A or B");
      p.sequence = id == "B";
    } else if (auto st = e.find("SpecialToken"); st != e.end()) {
      p.special = c.get_string(c.field(*st, "id", pw), pw + ".SpecialToken.id");
    } else {
      c.fail(pw, "unsupported template piece");
    }
    const json& body = e.begin().value();
    auto tid = body.find("type_id");
    if (tid != body.end()) {
      if (!tid->is_number_unsigned()) c.fail(pw + ".type_id", "expected a non-negative integer");
      p.type_id = tid->get<std::uint32_t>();
    }
    out.push_back(p);
  }
  return out;
}

void load_post(const Ctx& c, const json& p, Tokenizer::Impl& t, const std::string& where) {
  if (p.is_null()) return;
  std::string type = c.type_of(p, where);
  tok::PostStep step;
  if (type == "TemplateProcessing") {
    step.kind = tok::PostStep::kTemplate;
    step.single = load_template(c, c.field(p, "single", where), where + ".single");
    step.pair = load_template(c, c.field(p, "pair", where), where + ".pair");
    const json& sp = c.field(p, "special_tokens", where);
    if (!sp.is_object()) c.fail(where + ".special_tokens", "expected an object");
    for (auto it = sp.begin(); it != sp.end(); ++it) {
      std::string sw = where + ".special_tokens[\"" + it.key() + "\"]";
      const json& ids = c.field(it.value(), "ids", sw);
      if (!ids.is_array()) c.fail(sw + ".ids", "expected an array");
      std::vector<std::int32_t> v;
      for (const auto& id : ids) v.push_back(c.get_id(id, sw + ".ids"));
      step.special_ids[it.key()] = v;
    }
    for (const auto* tpl : {&step.single, &step.pair})
      for (const auto& piece : *tpl)
        if (!piece.is_sequence && !step.special_ids.count(piece.special))
          c.fail(where, "template uses special token '" + piece.special +
                            "' missing from special_tokens");
    bool has_a = false;
    for (const auto& piece : step.single) {
      if (piece.is_sequence && piece.sequence == 1) c.fail(where + ".single", "uses $B");
      has_a |= piece.is_sequence;
    }
    if (!has_a) c.fail(where + ".single", "template has no $A");
  } else if (type == "ByteLevel") {
    step.kind = tok::PostStep::kByteLevel;
    step.trim_offsets = c.get_bool(p, "trim_offsets", where, true);
    step.add_prefix_space = c.get_bool(p, "add_prefix_space", where, true);
    c.get_bool(p, "use_regex", where, true);
    if (step.trim_offsets) t.has_trim = true;
  } else if (type == "Sequence") {
    const json& list = c.field(p, "processors", where);
    if (!list.is_array()) c.fail(where + ".processors", "expected an array");
    for (std::size_t i = 0; i < list.size(); ++i)
      load_post(c, list[i], t, where + ".processors[" + std::to_string(i) + "]");
    return;
  } else {
    c.fail(where, "unsupported post_processor '" + type +
                      "' (supported: TemplateProcessing, ByteLevel, Sequence)");
  }
  t.post.push_back(std::move(step));
}

std::pair<std::uint16_t, std::uint16_t> ws_counts(std::string_view s) {
  // Leading / trailing characters that are 'Ġ' or whitespace (ByteLevel process_offsets).
  std::vector<char32_t> cps;
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (std::size_t i = 0; i < s.size();) {
    char32_t cp;
    int bad;
    int len = tok::utf8_decode(p, s.size(), i, cp, bad);
    if (!len) {
      ++i;
      continue;
    }
    cps.push_back(cp);
    i += len;
  }
  auto is_sp = [](char32_t cp) { return cp == 0x120 || tok::is_white_space(cp); };
  std::size_t lead = 0, trail = 0;
  while (lead < cps.size() && is_sp(cps[lead])) ++lead;
  while (trail < cps.size() && is_sp(cps[cps.size() - 1 - trail])) ++trail;
  return {static_cast<std::uint16_t>(std::min<std::size_t>(lead, 65535)),
          static_cast<std::uint16_t>(std::min<std::size_t>(trail, 65535))};
}

}  // namespace

Tokenizer Tokenizer::from_json_string(std::string_view text, const std::string& origin) {
  auto impl = std::make_shared<Impl>();
  impl->origin = origin;
  Ctx c{impl->origin};
  json j;
  try {
    j = json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    throw Error(origin + ": not valid JSON: " + e.what());
  }
  try {
    if (!j.is_object()) c.fail("top level", "expected an object");
    Impl& t = *impl;
    if (auto v = j.find("version"); v != j.end() && !(v->is_string() && *v == "1.0"))
      c.fail("version", "unsupported tokenizer.json version (expected \"1.0\")");
    load_normalizer(c, j.value("normalizer", json()), t, "normalizer");
    load_pre_tokenizer(c, j.value("pre_tokenizer", json()), t, "pre_tokenizer");
    const json added = j.value("added_tokens", json());
    const json& model = c.field(j, "model", "top level");
    std::size_t n_vocab = 0;
    if (auto v = model.find("vocab"); v != model.end() && v->is_object()) n_vocab = v->size();
    load_model(c, model, t, n_vocab + (added.is_array() ? added.size() : 0));
    load_added_tokens(c, added, t);
    load_post(c, j.value("post_processor", json()), t, "post_processor");
    const json dec = j.value("decoder", json());
    if (!dec.is_null()) {
      std::string type = c.type_of(dec, "decoder");
      if (type != "ByteLevel")
        c.fail("decoder", "unsupported decoder '" + type + "' (supported: ByteLevel)");
      t.byte_level_decoder = true;
    }
    const json trunc = j.value("truncation", json());
    if (!trunc.is_null()) {
      const json& ml = c.field(trunc, "max_length", "truncation");
      if (!ml.is_number_unsigned()) c.fail("truncation.max_length", "expected an integer");
      t.file_max_length = ml.get<std::size_t>();
      if (t.file_max_length == 0) c.fail("truncation.max_length", "must be positive");
      auto st = trunc.find("strategy");
      std::string s = st != trunc.end() && st->is_string() ? st->get<std::string>() : "LongestFirst";
      if (s == "LongestFirst") t.file_trunc_strategy = 0;
      else if (s == "OnlyFirst") t.file_trunc_strategy = 1;
      else if (s == "OnlySecond") t.file_trunc_strategy = 2;
      else c.fail("truncation.strategy", "unsupported strategy '" + s + "'");
      auto dir = trunc.find("direction");
      if (dir != trunc.end() && !(dir->is_string() && *dir == "Right"))
        c.fail("truncation.direction", "only Right is supported");
      auto stride = trunc.find("stride");
      if (stride != trunc.end() && !(stride->is_number_integer() && *stride == 0))
        c.fail("truncation.stride", "only stride 0 is supported");
    }
    const json pad = j.value("padding", json());
    if (!pad.is_null())
      c.fail("padding", "padding settings in tokenizer.json are not supported (set it to null)");

    std::size_t n = t.id_to_vocab.size();
    for (const auto& a : t.added) n = std::max(n, static_cast<std::size_t>(a.id) + 1);
    t.max_id_plus_one = n;
    // Template special-token ids go straight into encodings: they must name an id of the file.
    for (const auto& step : t.post)
      for (const auto& [name, ids] : step.special_ids)
        for (std::int32_t id : ids)
          if (static_cast<std::size_t>(id) >= n)
            c.fail("post_processor.special_tokens[\"" + name + "\"].ids",
                   "id " + std::to_string(id) + " is outside the vocabulary (" + std::to_string(n) + " ids)");
    if (t.has_trim) {
      t.vocab_ws.assign(t.id_to_vocab.size(), {0, 0});
      for (std::size_t i = 0; i < t.id_to_vocab.size(); ++i) t.vocab_ws[i] = ws_counts(t.id_to_vocab[i]);
    }
  } catch (const json::exception& e) {
    throw Error(origin + ": malformed tokenizer.json: " + e.what());
  }
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::from_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open tokenizer file");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw Error(path + ": read error");
  return from_json_string(ss.str(), path);
}

}  // namespace modernbert
