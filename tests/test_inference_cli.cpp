// The inference commands end to end: fill-mask against the PyTorch reference, embed (pooling,
// Dense, normalisation, Matryoshka, prompts, ColBERT), classify, MaxSim, and the bad-input errors.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>

#include "modernbert/model_dir.h"
#include "modernbert/safetensors.h"
#include "modernbert/tasks.h"
#include "test_util.h"

using namespace modernbert;
using nlohmann::json;

namespace {

std::string tokenizer_json() { return mbtest::tokenizer_json(); }

using mbtest::jsonl;

// A tiny model with the real vocabulary and tokenizer; heads as given.
std::string make_model(const mbtest::TempDir& tmp, const std::string& name, const std::string& heads) {
  std::string dir = tmp / name;
  auto r = mbtest::run_command(mbtest::cli() + " init --preset tiny --seed 21 --heads " + heads + " --out " + dir);
  EXPECT_EQ(r.status, 0) << r.output;
  mbtest::run_command("cp " + tokenizer_json() + " " + dir + "/");
  return dir;
}

std::string write(const std::string& path, const std::string& content) {
  std::ofstream(path) << content;
  return path;
}

}  // namespace

TEST(MaxSim, HandCheckedExample) {
  // q: 2 tokens, d: 3 tokens, dim 2. Dot products q0: [1, 0, 0.5] -> 1; q1: [0, 1, 0.5] -> 1. Sum 2.
  float q[] = {1, 0, 0, 1};
  float d[] = {1, 0, 0, 1, 0.5f, 0.5f};
  EXPECT_FLOAT_EQ(maxsim(q, 2, d, 3, 2), 2.0f);
  float d2[] = {0.5f, 0.5f};
  EXPECT_FLOAT_EQ(maxsim(q, 2, d2, 1, 2), 1.0f);
  float lg[] = {1.0f, 2.0f, 3.0f};
  auto sm = logits_to_scores(lg, 3, ProblemType::kSingleLabel);
  EXPECT_NEAR(sm[2], std::exp(3.0) / (std::exp(1.0) + std::exp(2.0) + std::exp(3.0)), 1e-6);
  auto sg = logits_to_scores(lg, 3, ProblemType::kMultiLabel);
  EXPECT_NEAR(sg[0], 1 / (1 + std::exp(-1.0)), 1e-6);
  EXPECT_EQ(logits_to_scores(lg, 3, ProblemType::kRegression)[1], 2.0f);
}

TEST(InferenceCli, FillMaskMatchesReferenceLogits) {
  MB_REQUIRE_TORCH();
  mbtest::TempDir tmp("fillmask");
  std::string dir = tmp / "m";
  auto r = mbtest::run_command(mbtest::python() + " " + mbtest::reference_dir() +
                               "/make_checkpoint.py --preset tiny --set vocab_size=50368 --set pad_token_id=50283 "
                               "--set cls_token_id=50281 --set sep_token_id=50282 --head mlm --seed 5 --out " + dir);
  ASSERT_EQ(r.status, 0) << r.output;
  mbtest::run_command("cp " + tokenizer_json() + " " + dir + "/");
  std::string text = "The capital of France is [MASK].";
  auto fm = mbtest::run_command(mbtest::cli() + " fill-mask --model " + dir + " --top-k 5 '" + text + "' 2>/dev/null");
  ASSERT_EQ(fm.status, 0) << fm.output;
  auto lines = jsonl(fm.output);
  ASSERT_EQ(lines.size(), 1u);
  const json& preds = lines[0]["masks"][0]["predictions"];
  ASSERT_EQ(preds.size(), 5u);
  EXPECT_EQ(lines[0]["masks"][0]["position"], 6);  // [CLS] The capital of France is [MASK] . [SEP]
  // Reference logits at the mask position.
  write(tmp / "in.jsonl", "{\"input_ids\": [50281, 510, 5347, 273, 6181, 310, 50284, 15, 50282]}\n");
  auto rr = mbtest::run_command(mbtest::python() + " " + mbtest::reference_dir() + "/run_reference.py --model " + dir +
                                " --input " + tmp / "in.jsonl" + " --output " + tmp / "ref.safetensors" +
                                " --outputs mlm_logits --dtype float64");
  ASSERT_EQ(rr.status, 0) << rr.output;
  auto f = SafeTensorsFile::open(tmp / "ref.safetensors");
  auto logits = f->to_f32("mlm_logits");
  const int64_t V = 50368;
  const float* row = logits.data() + 6 * V;
  double mx = *std::max_element(row, row + V), sum = 0;
  for (int64_t v = 0; v < V; ++v) sum += std::exp(row[v] - mx);
  std::vector<int> order(V);
  for (int v = 0; v < V; ++v) order[v] = v;
  std::partial_sort(order.begin(), order.begin() + 5, order.end(), [&](int a, int b) { return row[a] > row[b]; });
  for (int k = 0; k < 5; ++k) {
    EXPECT_EQ(preds[k]["token"], order[k]) << k;
    EXPECT_NEAR(preds[k]["score"].get<double>(), std::exp(row[order[k]] - mx) / sum, 1e-6) << k;
    EXPECT_TRUE(preds[k]["token_str"].is_string());
  }
  // Without a mask: a clear error naming the input.
  auto nomask = mbtest::run_command(mbtest::cli() + " fill-mask --model " + dir + " 'no mask here'");
  EXPECT_NE(nomask.status, 0);
  EXPECT_NE(nomask.output.find("no [MASK]"), std::string::npos) << nomask.output;
}

TEST(InferenceCli, EmbedOptionsAgreeWithEncode) {
  mbtest::TempDir tmp("embed");
  std::string dir = make_model(tmp, "m", "mlm");
  std::string in = write(tmp / "in.txt", "first text here\n{\"text\": \"second one\"}\n{\"input_ids\": [50281, 42, 50282]}\n");
  auto enc = mbtest::run_command(mbtest::cli() + " encode --model " + dir + " --input " + in + " --output " +
                                 tmp / "e.safetensors" + " --outputs embeddings,cu_seqlens --pooling cls");
  ASSERT_EQ(enc.status, 0) << enc.output;
  auto e = SafeTensorsFile::open(tmp / "e.safetensors")->to_f32("embeddings");
  EXPECT_EQ(SafeTensorsFile::open(tmp / "e.safetensors")->to_i64("cu_seqlens").back(), 5 + 4 + 3);
  auto em = mbtest::run_command(mbtest::cli() + " embed --model " + dir + " --input " + in + " --pooling cls --dim 16 --normalize 2>/dev/null");
  ASSERT_EQ(em.status, 0) << em.output;
  auto lines = jsonl(em.output);
  ASSERT_EQ(lines.size(), 3u);
  const int H = 64;
  for (int b = 0; b < 3; ++b) {
    auto v = lines[b]["embedding"].get<std::vector<float>>();
    ASSERT_EQ(v.size(), 16u);
    double n = 0;
    for (int c = 0; c < 16; ++c) n += double(e[b * H + c]) * e[b * H + c];
    for (int c = 0; c < 16; ++c) EXPECT_NEAR(v[c], e[b * H + c] / std::sqrt(n), 1e-5);
  }
  // npy output: header + B x H float32.
  auto npy = mbtest::run_command(mbtest::cli() + " embed --model " + dir + " --input " + in + " --pooling cls --format npy --output " + tmp / "e.npy");
  ASSERT_EQ(npy.status, 0) << npy.output;
  std::ifstream nf(tmp / "e.npy", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(nf)), {});
  ASSERT_GT(bytes.size(), 3u * H * 4);
  EXPECT_EQ(bytes.substr(0, 6), "\x93NUMPY");
  EXPECT_NE(bytes.find("'shape': (3, 64)"), std::string::npos);
  EXPECT_EQ(std::memcmp(bytes.data() + bytes.size() - 3 * H * 4, e.data(), 3 * H * 4), 0);
}

TEST(InferenceCli, SentenceTransformersDenseNormalizePromptsAndColbert) {
  mbtest::TempDir tmp("embedst");
  std::string dir = make_model(tmp, "m", "mlm");
  write(dir + "/modules.json", json::array({{{"idx", 0}, {"path", ""}, {"type", "sentence_transformers.models.Transformer"}},
                                            {{"idx", 1}, {"path", "1_Pooling"}, {"type", "sentence_transformers.models.Pooling"}},
                                            {{"idx", 2}, {"path", "2_Dense"}, {"type", "sentence_transformers.models.Dense"}},
                                            {{"idx", 3}, {"path", "3_Normalize"}, {"type", "sentence_transformers.models.Normalize"}}}).dump());
  mbtest::run_command("mkdir -p " + dir + "/1_Pooling " + dir + "/2_Dense");
  write(dir + "/1_Pooling/config.json", R"({"pooling_mode_mean_tokens": true})");
  write(dir + "/2_Dense/config.json", R"({"in_features": 64, "out_features": 8, "bias": true, "activation_function": "torch.nn.modules.linear.Identity"})");
  std::vector<float> W(8 * 64), bias(8);
  for (size_t i = 0; i < W.size(); ++i) W[i] = std::sin(0.1f * i);
  for (size_t i = 0; i < bias.size(); ++i) bias[i] = 0.01f * i;
  SafeTensorsWriter d;
  d.add_f32("linear.weight", {8, 64}, W.data());
  d.add_f32("linear.bias", {8}, bias.data());
  d.write(dir + "/2_Dense/model.safetensors");
  write(dir + "/config_sentence_transformers.json", R"({"prompts": {"query": "search_query: "}, "default_prompt_name": null})");
  std::string in = write(tmp / "in.txt", "what is rope\n");
  std::string in_prefixed = write(tmp / "in2.txt", "search_query: what is rope\n");
  auto enc = mbtest::run_command(mbtest::cli() + " encode --model " + dir + " --input " + in_prefixed + " --output " +
                                 tmp / "e.safetensors" + " --outputs embeddings --pooling mean");
  ASSERT_EQ(enc.status, 0) << enc.output;
  auto pooled = SafeTensorsFile::open(tmp / "e.safetensors")->to_f32("embeddings");
  std::vector<double> expect(8);
  double n = 0;
  for (int o = 0; o < 8; ++o) {
    double acc = bias[o];
    for (int i = 0; i < 64; ++i) acc += double(W[o * 64 + i]) * pooled[i];
    expect[o] = acc;
    n += acc * acc;
  }
  auto em = mbtest::run_command(mbtest::cli() + " embed --model " + dir + " --input " + in + " --prompt query 2>/dev/null");
  ASSERT_EQ(em.status, 0) << em.output;
  auto v = jsonl(em.output)[0]["embedding"].get<std::vector<float>>();
  ASSERT_EQ(v.size(), 8u);
  for (int o = 0; o < 8; ++o) EXPECT_NEAR(v[o], expect[o] / std::sqrt(n), 1e-5) << o;
  auto bad = mbtest::run_command(mbtest::cli() + " embed --model " + dir + " --input " + in + " --prompt nope");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("no such prompt"), std::string::npos);
  // ColBERT: one unit vector per token, projected by the Dense module.
  auto cb = mbtest::run_command(mbtest::cli() + " embed --model " + dir + " --input " + in + " --colbert 2>/dev/null");
  ASSERT_EQ(cb.status, 0) << cb.output;
  auto vecs = jsonl(cb.output)[0]["vectors"];
  EXPECT_EQ(vecs.size(), 5u);  // [CLS] what is rope [SEP]
  for (const auto& row : vecs) {
    auto x = row.get<std::vector<float>>();
    ASSERT_EQ(x.size(), 8u);
    double s = 0;
    for (float f : x) s += double(f) * f;
    EXPECT_NEAR(s, 1.0, 1e-5);
  }
}

TEST(InferenceCli, ClassifyScoresAreSoftmaxOfLogits) {
  mbtest::TempDir tmp("classify");
  std::string dir = make_model(tmp, "m", "cls:3");
  std::string in = write(tmp / "in.txt", "a short text\nanother, longer text with more words\n");
  auto enc = mbtest::run_command(mbtest::cli() + " encode --model " + dir + " --input " + in + " --output " +
                                 tmp / "e.safetensors" + " --outputs logits");
  ASSERT_EQ(enc.status, 0) << enc.output;
  auto logits = SafeTensorsFile::open(tmp / "e.safetensors")->to_f32("logits");
  auto cl = mbtest::run_command(mbtest::cli() + " classify --model " + dir + " --input " + in + " 2>/dev/null");
  ASSERT_EQ(cl.status, 0) << cl.output;
  auto lines = jsonl(cl.output);
  ASSERT_EQ(lines.size(), 2u);
  for (int b = 0; b < 2; ++b) {
    auto sc = logits_to_scores(logits.data() + 3 * b, 3, ProblemType::kSingleLabel);
    int best = static_cast<int>(std::max_element(sc.begin(), sc.end()) - sc.begin());
    EXPECT_EQ(lines[b]["label"], "LABEL_" + std::to_string(best));
    for (int i = 0; i < 3; ++i) EXPECT_NEAR(lines[b]["scores"]["LABEL_" + std::to_string(i)].get<double>(), sc[i], 1e-6);
  }
  std::string tdir = make_model(tmp, "t", "token:4");
  auto tk = mbtest::run_command(mbtest::cli() + " classify --tokens --model " + tdir + " --input " + in + " 2>/dev/null");
  ASSERT_EQ(tk.status, 0) << tk.output;
  auto toks = jsonl(tk.output)[0]["tokens"];
  ASSERT_EQ(toks.size(), 3u);  // "a short text": specials skipped
  EXPECT_EQ(toks[1]["start"], 1);
  EXPECT_EQ(toks[1]["end"], 7);
  auto wrong = mbtest::run_command(mbtest::cli() + " classify --model " + tdir + " --input " + in);
  EXPECT_NE(wrong.status, 0);
  EXPECT_NE(wrong.output.find("use --tokens"), std::string::npos) << wrong.output;
}

TEST(InferenceCli, BadInputErrorsNameTheLine) {
  mbtest::TempDir tmp("badin");
  std::string dir = make_model(tmp, "m", "mlm");
  auto run = [&](const std::string& content, const std::string& extra = "--outputs last_hidden_state") {
    std::string in = write(tmp / "in.jsonl", content);
    return mbtest::run_command(mbtest::cli() + " encode --model " + dir + " --input " + in + " --output " + tmp / "o.safetensors " + extra);
  };
  struct Case { std::string input, expect; };
  for (const auto& c : std::vector<Case>{{"ok\n{\"text\": \"\"}\n", ":2: empty text"},
                                         {"ok\n\n{\"input_ids\": [1, 50368]}\n", "in.jsonl:3: field input_ids[1]: id 50368 outside the vocabulary [0, 50368)"},
                                         {"{\"text\": \"a\"\n", ":1: malformed JSON"},
                                         {"{\"txt\": \"a\"}\n", ":1: expected an object with \"text\" or \"input_ids\""},
                                         {"{\"input_ids\": []}\n", ":1: field input_ids: empty list of token ids"},
                                         {"{\"input_ids\": [1, \"x\"]}\n", ":1: field input_ids[1]: expected an integer token id, found \"x\""},
                                         {"", "no input"}}) {
    auto r = run(c.input);
    EXPECT_NE(r.status, 0) << c.input;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << "input: " << c.input << "\noutput: " << r.output;
  }
  auto r = run("hello\n", "--outputs logits");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("no sequence-classification head"), std::string::npos) << r.output;
  r = run("hello\n", "--outputs nonsense");
  EXPECT_NE(r.output.find("unknown tensor 'nonsense'"), std::string::npos) << r.output;
  // Longer than max_position_embeddings: an error unless --truncate.
  std::string longtext;
  for (int i = 0; i < 9000; ++i) longtext += "word ";
  r = run("short\n" + longtext + "\n", "--outputs cu_seqlens");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("in.jsonl:2: 9003 tokens exceed max_position_embeddings 8192 (use --truncate)"), std::string::npos) << r.output;  // 9000 words, a trailing space, [CLS], [SEP]
  r = run("short\n" + longtext + "\n", "--outputs cu_seqlens --truncate");
  ASSERT_EQ(r.status, 0) << r.output;
  auto cu = SafeTensorsFile::open(tmp / "o.safetensors")->to_i64("cu_seqlens");
  EXPECT_EQ(cu.back() - cu[1], 8192);
}
