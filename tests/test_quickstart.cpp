// The README's "Quick start with Hugging Face models", run as written: for each of the five
// repositories, the README block marked "# quickstart: REPO" is read, its download command is
// checked (git clone https://huggingface.co/REPO after `git lfs install`, or huggingface-cli
// download REPO --local-dir DIR) and replaced by a tiny checkpoint with the repository's layout at
// ./DIR (hf_layout_fixtures.h), and every other line runs in bash with build/modernbert being the
// CLI under test. The outputs are then checked for shape and against a second path through the
// engine that does not share the code under test (encode's raw tensors, input_ids given verbatim,
// the documented sentence-transformers / PyLate semantics). Also: PyLate's settings and
// colbert_input() directly, and the README's C++ snippet, built by CMake from README.md, runs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <regex>

#include "hf_layout_fixtures.h"
#include "modernbert/error.h"
#include "modernbert/file_io.h"
#include "modernbert/inference.h"
#include "modernbert/model_dir.h"
#include "modernbert/safetensors.h"
#include "modernbert/tasks.h"
#include "modernbert/tokenizer.h"
#include "test_util.h"

using namespace modernbert;
using nlohmann::json;

namespace {

std::string readme() { return read_file(std::string(MB_SOURCE_DIR) + "/README.md"); }

// The lines of the ```sh block whose first line is "# quickstart: REPO".
std::vector<std::string> quickstart_block(const std::string& repo) {
  std::stringstream ss(readme());
  std::string line;
  std::vector<std::string> block;
  bool in = false, prev_fence = false;
  while (std::getline(ss, line)) {
    if (in) {
      if (line == "```") return block;
      block.push_back(line);
    } else if (prev_fence && line == "# quickstart: " + repo) {
      in = true;
    }
    prev_fence = line == "```sh";
  }
  return {};
}

struct Ran {
  std::string dir;                         // where the model directory goes (./DIR)
  std::map<std::string, std::string> out;  // command line -> its output
};

// Checks the block's download command, writes the fixture where it would have put the model and
// runs every other command in `work`.
Ran run_block(const std::string& repo, const std::string& work) {
  Ran r;
  auto block = quickstart_block(repo);
  EXPECT_FALSE(block.empty()) << "README has no ```sh block starting with '# quickstart: " << repo << "'";
  const std::string name = repo.substr(repo.find('/') + 1);
  bool lfs = false;
  std::vector<std::string> cmds;
  for (const auto& l : block) {
    if (l.empty() || l[0] == '#') continue;
    if (l == "git lfs install") {
      lfs = true;
    } else if (l.rfind("git clone ", 0) == 0) {
      EXPECT_EQ(l, "git clone https://huggingface.co/" + repo);
      EXPECT_TRUE(lfs) << repo << ": git clone of a model needs `git lfs install` first";
      r.dir = name;
    } else if (l.rfind("huggingface-cli download ", 0) == 0) {
      std::smatch m;
      EXPECT_TRUE(std::regex_match(l, m, std::regex("huggingface-cli download (\\S+) --local-dir (\\S+)"))) << l;
      if (m.size() == 3) {
        EXPECT_EQ(m[1].str(), repo);
        r.dir = m[2].str();
      }
    } else {
      cmds.push_back(l);
    }
  }
  EXPECT_FALSE(r.dir.empty()) << repo << ": no download command";
  if (r.dir.empty() || !mbtest::hf::write_fixture(repo, work + "/" + r.dir)) return r;
  auto info = mbtest::run_command(mbtest::cli() + " info " + work + "/" + r.dir);
  EXPECT_EQ(info.status, 0) << repo << ": info\n" << info.output;
  for (const auto& c : cmds) {
    EXPECT_EQ(c.rfind("build/modernbert ", 0) == 0 || c.rfind("printf ", 0) == 0, true) << "unexpected command: " << c;
    std::string cmd = c;
    if (cmd.rfind("build/modernbert ", 0) == 0) cmd = mbtest::cli() + cmd.substr(16);
    std::ofstream(work + "/cmd.sh") << cmd << "\n";
    auto res = mbtest::run_command("cd " + work + " && bash cmd.sh 2>&1");
    EXPECT_EQ(res.status, 0) << repo << ": " << c << "\n" << res.output;
    r.out[c] = res.output;
  }
  return r;
}

std::vector<json> jsonl_file(const std::string& path) { return mbtest::jsonl(read_file(path)); }

double norm(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return std::sqrt(s);
}

void expect_close(const std::vector<float>& a, const std::vector<float>& b, double tol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], tol) << what << " element " << i;
}

// encode's raw tensors for the texts of `input` (a file in work).
std::unique_ptr<SafeTensorsFile> encode(const std::string& work, const std::string& dir, const std::string& input,
                                        const std::string& outputs) {
  auto r = mbtest::run_command(mbtest::cli() + " encode --model " + work + "/" + dir + " --input " + work + "/" +
                               input + " --output " + work + "/enc.safetensors --outputs " + outputs);
  EXPECT_EQ(r.status, 0) << r.output;
  return SafeTensorsFile::open(work + "/enc.safetensors");
}

}  // namespace

TEST(Quickstart, ModernBertBaseFillMask) {
  mbtest::TempDir w("qs_mlm");
  Ran r = run_block("answerdotai/ModernBERT-base", w.path());
  ASSERT_EQ(r.out.size(), 1u);
  auto lines = mbtest::jsonl(r.out.begin()->second);
  ASSERT_EQ(lines.size(), 1u);
  const json& masks = lines[0]["masks"];
  ASSERT_EQ(masks.size(), 1u);
  const json& preds = masks[0]["predictions"];
  ASSERT_EQ(preds.size(), 5u);  // fill-mask's default top_k, as HF's pipeline
  // Best first, probabilities of one softmax; the top one is the argmax of encode's raw MLM logits.
  double sum = 0;
  for (size_t k = 0; k < preds.size(); ++k) {
    sum += preds[k]["score"].get<double>();
    if (k) {
      EXPECT_GE(preds[k - 1]["score"].get<double>(), preds[k]["score"].get<double>());
    }
  }
  EXPECT_LE(sum, 1.0 + 1e-6);
  std::ofstream(w / "t.txt") << "The capital of France is [MASK].\n";
  auto enc = encode(w.path(), r.dir, "t.txt", "mlm_logits");
  auto logits = enc->to_f32("mlm_logits");
  const int64_t V = enc->at("mlm_logits").shape[1], pos = masks[0]["position"].get<int64_t>();
  auto row = logits.begin() + pos * V;
  EXPECT_EQ(std::max_element(row, row + V) - row, preds[0]["token"].get<int64_t>());
}

TEST(Quickstart, NomicEmbedPrefixesAndMatryoshka) {
  mbtest::TempDir w("qs_nomic");
  Ran r = run_block("nomic-ai/modernbert-embed-base", w.path());
  auto q = jsonl_file(w / "queries.jsonl");
  ASSERT_EQ(q.size(), 2u);
  for (const auto& e : q) {
    ASSERT_EQ(e["embedding"].size(), 256u);
    EXPECT_NEAR(norm(e["embedding"].get<std::vector<float>>()), 1.0, 1e-5);  // the Normalize module
  }
  std::string npy = read_file(w / "docs.npy");
  EXPECT_NE(npy.find("'shape': (1, 256)"), std::string::npos) << npy.substr(0, 120);
  // sentence-transformers' Matryoshka: the full embedding of the prefixed text, cut to 256 and
  // normalised again; the full one from a plain embed of the literal text.
  std::ofstream(w / "literal.txt") << "search_query: What is TSNE?\n";
  auto full = mbtest::run_command(mbtest::cli() + " embed --model " + w / r.dir + " --input " + w / "literal.txt");
  ASSERT_EQ(full.status, 0) << full.output;
  auto f = mbtest::jsonl(full.output).at(0)["embedding"].get<std::vector<float>>();
  ASSERT_EQ(f.size(), 288u);
  f.resize(256);
  const double n = norm(f);
  for (auto& x : f) x = static_cast<float>(x / n);
  expect_close(q[0]["embedding"].get<std::vector<float>>(), f, 1e-5, "query 0 vs truncated full embedding");
}

TEST(Quickstart, GteEmbedCls) {
  mbtest::TempDir w("qs_gte");
  Ran r = run_block("Alibaba-NLP/gte-modernbert-base", w.path());
  auto e = jsonl_file(w / "gte.jsonl");
  ASSERT_EQ(e.size(), 4u);
  // The card's recipe on encode's raw hidden states: row 0 of each text, L2-normalised.
  auto enc = encode(w.path(), r.dir, "texts.txt", "cu_seqlens,last_hidden_state");
  auto h = enc->to_f32("last_hidden_state");
  auto cu = enc->to_i64("cu_seqlens");
  const int64_t H = enc->at("last_hidden_state").shape[1];
  for (size_t i = 0; i < e.size(); ++i) {
    std::vector<float> cls(h.begin() + cu[i] * H, h.begin() + (cu[i] + 1) * H);
    const double n = norm(cls);
    for (auto& x : cls) x = static_cast<float>(x / n);
    expect_close(e[i]["embedding"].get<std::vector<float>>(), cls, 1e-5, "text " + std::to_string(i));
  }
}

TEST(Quickstart, GteRerankerCrossEncoder) {
  mbtest::TempDir w("qs_rerank");
  Ran r = run_block("Alibaba-NLP/gte-reranker-modernbert-base", w.path());
  auto s = jsonl_file(w / "scores.jsonl");
  ASSERT_EQ(s.size(), 2u);
  // One label, no problem_type: the raw logit (what CrossEncoder passes through its sigmoid).
  auto enc = encode(w.path(), r.dir, "pairs.jsonl", "logits");
  auto logits = enc->to_f32("logits");
  ASSERT_EQ(logits.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_NEAR(s[i]["value"].get<double>(), logits[i], 1e-5);
  }
  // rerank: best first, each score CrossEncoder's sigmoid of that pair's logit.
  auto ranked = jsonl_file(w / "ranked.jsonl");
  ASSERT_EQ(ranked.size(), 2u);
  const std::map<std::string, double> logit_of = {{"Beijing", logits[0]}, {"sorting algorithms", logits[1]}};
  for (size_t k = 0; k < 2; ++k) {
    const double z = logit_of.at(ranked[k]["text"].get<std::string>());
    EXPECT_NEAR(ranked[k]["score"].get<double>(), 1 / (1 + std::exp(-z)), 1e-5);
    if (k) {
      EXPECT_GE(ranked[k - 1]["score"].get<double>(), ranked[k]["score"].get<double>());
    }
  }
}

TEST(Quickstart, GteModernColbertPyLateInput) {
  mbtest::TempDir w("qs_colbert");
  Ran r = run_block("lightonai/GTE-ModernColBERT-v1", w.path());
  auto q = jsonl_file(w / "q_vectors.jsonl");
  auto d = jsonl_file(w / "d_vectors.jsonl");
  ASSERT_EQ(q.size(), 1u);
  ASSERT_EQ(d.size(), 2u);
  Tokenizer tok = Tokenizer::from_file(w / r.dir + "/tokenizer.json");
  const int32_t qid = *tok.token_to_id("[Q] "), did = *tok.token_to_id("[D] ");
  EXPECT_EQ(qid, 50368);  // PyLate's added tokens after ModernBERT's 50368
  EXPECT_EQ(did, 50369);
  std::vector<int32_t> punct;
  for (char ch : std::string("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"))
    punct.push_back(*tok.token_to_id(std::string(1, ch)));
  // PyLate by hand: [CLS] prefix rest..., the document's punctuation vectors dropped; run here as
  // input_ids given verbatim (no PyLate treatment), then filtered.
  auto by_hand = [&](const std::string& text, int32_t prefix, bool drop_punct) {
    auto ids = tok.encode(text).ids;
    ids.insert(ids.begin() + 1, prefix);
    std::ofstream(w / "ids.jsonl") << json({{"input_ids", ids}}).dump() << "\n";
    auto res =
        mbtest::run_command(mbtest::cli() + " embed --colbert --model " + w / r.dir + " --input " + w / "ids.jsonl");
    EXPECT_EQ(res.status, 0) << res.output;
    auto v = mbtest::jsonl(res.output).at(0)["vectors"];
    json kept = json::array();
    for (size_t i = 0; i < ids.size(); ++i)
      if (!drop_punct || std::find(punct.begin(), punct.end(), ids[i]) == punct.end()) kept.push_back(v[i]);
    return kept;
  };
  const std::string qtext = "Which planet is known as the Red Planet?";
  json qh = by_hand(qtext, qid, false);
  ASSERT_EQ(q[0]["vectors"].size(), tok.encode(qtext).ids.size() + 1);  // no expansion: do_query_expansion false
  const std::vector<std::string> docs = {
      "Mars, known for its reddish appearance, is often referred to as the Red Planet.",
      "Venus is often called Earth's twin."};
  for (size_t i = 0; i < 2; ++i) {
    json dh = by_hand(docs[i], did, true);
    ASSERT_LT(dh.size(), tok.encode(docs[i]).ids.size() + 1) << "the document has punctuation to skip";
    ASSERT_EQ(d[i]["vectors"].size(), dh.size());
    for (size_t t = 0; t < dh.size(); ++t)
      expect_close(d[i]["vectors"][t].get<std::vector<float>>(), dh[t].get<std::vector<float>>(), 1e-6, "doc vector");
  }
  for (size_t t = 0; t < qh.size(); ++t) {
    auto v = q[0]["vectors"][t].get<std::vector<float>>();
    ASSERT_EQ(v.size(), 32u);  // the fixture's Dense (128 in the real model)
    EXPECT_NEAR(norm(v), 1.0, 1e-5);
    expect_close(v, qh[t].get<std::vector<float>>(), 1e-6, "query vector");
  }
  // The PyLate flags are refused where they mean nothing.
  for (const char* bad : {" --query", " --colbert --query --document", " --colbert --document-length 2"}) {
    auto res = mbtest::run_command(mbtest::cli() + " embed --model " + w / r.dir + bad + " --input " + w / "q.txt");
    EXPECT_NE(res.status, 0) << bad;
  }
  // MaxSim of the query with each document: a sum of cosines, at most one per query vector.
  auto flat = [](const json& rows) {
    std::vector<float> f;
    for (const auto& row : rows)
      for (float x : row.get<std::vector<float>>()) f.push_back(x);
    return f;
  };
  auto qf = flat(q[0]["vectors"]);
  std::vector<float> score(2);
  for (size_t i = 0; i < 2; ++i) {
    auto df = flat(d[i]["vectors"]);
    score[i] = maxsim(qf.data(), int64_t(q[0]["vectors"].size()), df.data(), int64_t(d[i]["vectors"].size()), 32);
    EXPECT_LE(score[i], float(q[0]["vectors"].size()) + 1e-4f);
  }
  // rerank --mode colbert (modernbert::Model: its own path to the PyLate treatment) gives the same
  // MaxSim scores, best first.
  auto ranked = jsonl_file(w / "maxsim.jsonl");
  ASSERT_EQ(ranked.size(), 2u);
  EXPECT_EQ(ranked[0]["index"].get<size_t>(), score[0] >= score[1] ? 0u : 1u);
  for (const auto& h : ranked) EXPECT_NEAR(h["score"].get<double>(), score[h["index"].get<size_t>()], 1e-4);
}

TEST(Quickstart, ColbertInputPyLateRules) {
  Tokenizer tok = Tokenizer::from_file(mbtest::tokenizer_json());
  ColbertSettings s;
  s.present = true;
  s.query_prefix = "[CLS]";  // a token this tokenizer has, standing in for "[Q] "
  s.document_prefix = "";    // no document prefix
  s.skiplist_words = {",", ".", "not-a-token"};
  s.query_length = 8;
  s.document_length = 5;
  ColbertTokenIds t = colbert_token_ids(tok, s);
  EXPECT_EQ(t.skiplist.size(), 2u);
  const auto ids = tok.encode("a b").ids;  // [CLS] a b [SEP]
  ASSERT_EQ(ids.size(), 4u);
  // Query with expansion attended: [CLS] prefix a b [SEP] [MASK] x3 = query_length, all kept.
  s.attend_to_expansion_tokens = true;
  ColbertInput in = colbert_input(tok, s, t, "a b", true);
  ASSERT_EQ(in.ids.size(), 8u);
  EXPECT_EQ(in.ids[1], *tok.token_to_id("[CLS]"));
  EXPECT_EQ(in.ids[2], ids[1]);
  EXPECT_EQ(in.ids[7], *tok.token_to_id("[MASK]"));
  EXPECT_EQ(std::count(in.keep.begin(), in.keep.end(), 1), 8);
  // Not attended: the expansion tokens are not run (tasks.h says why).
  s.attend_to_expansion_tokens = false;
  in = colbert_input(tok, s, t, "a b", true);
  EXPECT_EQ(in.ids.size(), 5u);
  EXPECT_EQ(in.expansion_dropped, 3);
  // Truncation to query_length - 1 before the prefix, the final [SEP] kept.
  in = colbert_input(tok, s, t, "a b c d e f g h i j", true);
  ASSERT_EQ(in.ids.size(), 8u);
  EXPECT_EQ(in.ids.back(), *tok.token_to_id("[SEP]"));
  // Document without prefix: truncated to document_length, punctuation vectors not kept.
  in = colbert_input(tok, s, t, "a, b. c d", false);
  ASSERT_EQ(in.ids.size(), 5u);  // [CLS] a , b [SEP]
  EXPECT_EQ(in.keep, (std::vector<uint8_t>{1, 1, 0, 1, 1}));
  s.query_prefix = "[Q] ";
  EXPECT_THROW(colbert_token_ids(tok, s), Error);  // the plain ModernBERT tokenizer has no "[Q] "
}

TEST(Quickstart, PyLateSettingsFromConfig) {
  mbtest::TempDir w("qs_pylate_cfg");
  ASSERT_TRUE(mbtest::hf::write_fixture("lightonai/GTE-ModernColBERT-v1", w / "m"));
  const auto st = load_model_dir(w / "m").sentence_transformers;
  EXPECT_TRUE(st.colbert.present);
  EXPECT_EQ(st.colbert.query_prefix, "[Q] ");
  EXPECT_EQ(st.colbert.document_length, 300);
  EXPECT_FALSE(st.colbert.do_query_expansion);
  EXPECT_EQ(st.colbert.skiplist_words.size(), 32u);
  EXPECT_EQ(st.dense_out, 32);
  const ModelInfo info = Model(w / "m").info();  // what the library reports
  EXPECT_EQ(info.query_prefix, "[Q] ");
  EXPECT_EQ(info.document_prefix, "[D] ");
  EXPECT_TRUE(info.has_colbert);
  // A document: [CLS] [D] a , Ġb . [SEP] runs, the vectors of "," and "." are dropped.
  EXPECT_EQ(Model(w / "m").embed_tokens({"a, b."}).vectors.rows, 5);
  // A wrong type is an error naming the key, not the default.
  json c = json::parse(read_file(w / "m/config_sentence_transformers.json"));
  c["query_length"] = "32";
  std::ofstream(w / "m/config_sentence_transformers.json") << c.dump();
  try {
    load_model_dir(w / "m");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'query_length' must be an integer"), std::string::npos) << e.what();
  }
  // A sentence-transformers model without PyLate keys has no ColBERT settings.
  ASSERT_TRUE(mbtest::hf::write_fixture("nomic-ai/modernbert-embed-base", w / "n"));
  EXPECT_FALSE(load_model_dir(w / "n").sentence_transformers.colbert.present);
}

namespace {
// The body of the ```LANG block whose first line starts with `first`.
std::string snippet(const std::string& lang, const std::string& first) {
  const std::string text = readme();
  const std::string open = "```" + lang + "\n" + first;
  const size_t at = text.find(open);
  if (at == std::string::npos) return "";
  const size_t body = at + lang.size() + 4, end = text.find("\n```\n", body);
  return text.substr(body, end == std::string::npos ? std::string::npos : end - body + 1);
}

// The directories the README's download commands create, in hf::repos() order.
const std::vector<std::string> kDirs = {"ModernBERT-base", "modernbert-embed-base", "gte-modernbert-base",
                                        "gte-reranker-modernbert-base", "GTE-ModernColBERT-v1"};

// Each snippet loads the five.
void expect_loads_the_five(const std::string& code, const std::string& lang) {
  for (const auto& dir : kDirs)
    EXPECT_NE(code.find("(\"" + dir + "\")"), std::string::npos) << lang << " snippet: " << dir;
}

bool write_the_five(const std::string& work) {
  for (size_t i = 0; i < kDirs.size(); ++i)
    if (!mbtest::hf::write_fixture(mbtest::hf::repos()[i], work + "/" + kDirs[i])) return false;
  return true;
}
}  // namespace

// The C++ snippet as the build cut it out of README.md (cmake/readme_snippet.cmake), run where the
// five model directories are.
TEST(Quickstart, CppSnippetRuns) {
  const std::string code = snippet("cpp", "// quickstart: C++");
  ASSERT_FALSE(code.empty()) << "README has no ```cpp block starting with '// quickstart: C++'";
  expect_loads_the_five(code, "C++");
  EXPECT_EQ(read_file(std::string(MB_BINARY_DIR) + "/quickstart_snippet.cpp"), code) << "rebuild: the snippet changed";
  mbtest::TempDir w("qs_cpp");
  ASSERT_TRUE(write_the_five(w.path()));
  auto r = mbtest::run_command("cd " + w.path() + " && " + MB_QUICKSTART_CPP + " 2>&1");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("nomic: [1, 256] and [1, 256]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("gte: [2, 64]"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("query vectors of 32"), std::string::npos) << r.output;
  size_t docs = 0, maxsims = 0;
  for (size_t at = 0; (at = r.output.find("\ndocument ", at)) != std::string::npos; ++at) ++docs;
  for (size_t at = 0; (at = r.output.find("MaxSim document ", at)) != std::string::npos; ++at) ++maxsims;
  EXPECT_EQ(docs, 2u) << r.output;
  EXPECT_EQ(maxsims, 2u) << r.output;
  EXPECT_GE(std::count(r.output.begin(), r.output.end(), '\n'), 5 + 1 + 1 + 2 + 1 + 2) << r.output;
}

TEST(Quickstart, PythonSnippetParses) {
  const std::string code = snippet("python", "# quickstart: Python");
  ASSERT_FALSE(code.empty()) << "README has no ```python block starting with '# quickstart: Python'";
  expect_loads_the_five(code, "Python");
  mbtest::TempDir w("qs_py");
  std::ofstream(w / "quickstart.py") << code;
  auto r = mbtest::run_command(mbtest::python() + " -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' " +
                               w / "quickstart.py 2>&1");
  EXPECT_EQ(r.status, 0) << r.output;
}

#ifdef MB_PYTHON_MODULE_DIR
// The Python snippet run with the module built here, where the five model directories are.
TEST(Quickstart, PythonSnippetRuns) {
  const std::string code = snippet("python", "# quickstart: Python");
  ASSERT_FALSE(code.empty());
  mbtest::TempDir w("qs_pyrun");
  ASSERT_TRUE(write_the_five(w.path()));
  std::ofstream(w / "quickstart.py") << code;
  auto r = mbtest::run_command("cd " + w.path() + " && PYTHONPATH=" + MB_PYTHON_MODULE_DIR + " " + mbtest::python() +
                               " quickstart.py 2>&1");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("(1, 256)"), std::string::npos) << r.output;  // nomic, Matryoshka
  EXPECT_NE(r.output.find("(2, 64)"), std::string::npos) << r.output;   // gte, the fixture's hidden size
  EXPECT_NE(r.output.find(", 32) [("), std::string::npos) << r.output;  // ColBERT query then documents
  EXPECT_NE(r.output.find("'score'"), std::string::npos) << r.output;   // rerank hits
}
#endif
