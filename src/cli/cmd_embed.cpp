// modernbert embed: sentence embeddings (pooled, optional Dense/normalise/Matryoshka) or ColBERT
// per-token vectors, as JSONL or .npy. Under `mpirun -np N` (#16) each rank embeds a contiguous share
// of the inputs and rank 0 writes the one output, byte-identical to one process's (run_embed).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <string_view>
#include <utility>

#include "cli/command.h"
#include "cli/infer_common.h"
#include "cli/world_flags.h"
#include "modernbert/communicator.h"
#include "modernbert/error.h"
#include "modernbert/tasks.h"

namespace modernbert::cli {
namespace {

using nlohmann::json;

// The .npy header (format 1.0) of a float32 [rows, cols] C-order array; the data follows it.
std::string npy_header(int64_t rows, int64_t cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::string out = "\x93NUMPY";
  out.push_back(1);
  out.push_back(0);
  uint16_t hl = static_cast<uint16_t>(header.size());
  out.append(reinterpret_cast<const char*>(&hl), 2);
  out += header;
  return out;
}

// PyLate ColBERT token ids of every record (colbert_input, tasks.h): texts get the query or document
// treatment; records given as input_ids are used exactly as given, every vector kept.
std::vector<std::vector<int32_t>> pylate_ids(const InferenceContext& ctx, const ColbertSettings& s,
                                             const std::vector<InputRecord>& recs, bool is_query, bool lossy,
                                             const std::string& prefix, std::vector<std::vector<uint8_t>>& keep) {
  if (!ctx.tokenizer) throw Error(ctx.model.dir + ": a PyLate ColBERT model needs tokenizer.json");
  const ColbertTokenIds t = colbert_token_ids(*ctx.tokenizer, s);
  std::vector<std::vector<int32_t>> seqs;
  for (const InputRecord& r : recs) {
    if (r.has_pair) throw Error(r.where() + ": --colbert embeds single texts, not text pairs");
    if (r.has_ids) {
      seqs.push_back(r.ids);
      keep.emplace_back(r.ids.size(), 1);
      continue;
    }
    ColbertInput in;
    try {
      in = colbert_input(*ctx.tokenizer, s, t, prefix + r.text, is_query, lossy);
    } catch (const Error& e) {
      throw Error(r.where() + ": " + e.what());
    }
    if (static_cast<int64_t>(in.ids.size()) > ctx.model.config.max_position_embeddings)
      throw Error(r.where() + ": " + std::to_string(in.ids.size()) + " tokens exceed max_position_embeddings " +
                  std::to_string(ctx.model.config.max_position_embeddings) + " (lower --document-length)");
    seqs.push_back(std::move(in.ids));
    keep.push_back(std::move(in.keep));
  }
  return seqs;
}

// The input of `embed`, on every rank: its bytes and where each item (a non-blank line, as
// read_inputs counts them) lies.
struct InputText {
  std::string label;  // the file, or "<stdin>"
  std::string bytes;
  struct Line {
    size_t begin = 0, end = 0;  // [begin, end) in bytes, without '\n' and a trailing '\r'
    size_t number = 0;          // 1-based line number
  };
  std::vector<Line> items;
  InputRecord record(size_t i, int64_t vocab_size, bool lossy) const {
    const Line& l = items[i];
    return parse_input_line(bytes.substr(l.begin, l.end - l.begin), label, l.number, vocab_size, lossy);
  }
};

// A file is read by every rank (under MPI it must be visible to all of them, like --model); stdin
// reaches rank 0 only (mpirun), which broadcasts it. Lines as std::getline splits them.
InputText read_input_text(Communicator& world, const std::string& path, const std::string& label) {
  InputText t;
  t.label = label;
  if (path != "-") {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw Error(path + ": cannot open input");
    t.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (in.bad()) throw Error(label + ": read error");
  } else {
    int64_t n = 0;
    if (world.is_root()) {
      t.bytes.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
      if (std::cin.bad()) throw Error(label + ": read error");
      n = static_cast<int64_t>(t.bytes.size());
    }
    if (world.size() > 1) {
      world.broadcast(&n, sizeof n, 0);
      t.bytes.resize(static_cast<size_t>(n));
      world.broadcast(t.bytes.data(), t.bytes.size(), 0);
    }
  }
  size_t number = 0;
  for (size_t pos = 0; pos < t.bytes.size();) {
    const size_t nl = std::min(t.bytes.find('\n', pos), t.bytes.size());
    ++number;
    size_t end = nl;
    if (end > pos && t.bytes[end - 1] == '\r') --end;
    const std::string_view line(t.bytes.data() + pos, end - pos);
    if (line.find_first_not_of(" \t") != std::string_view::npos) t.items.push_back({pos, end, number});
    pos = nl + 1;
  }
  if (t.items.empty()) throw Error(label + ": no input (empty file)");
  return t;
}

// Every rank must have read the same input (a file that differs between hosts would give a wrong
// output silently): its item count and a hash of its bytes, compared across ranks.
void check_same_input(Communicator& world, const InputText& t, const std::string& label) {
  if (world.size() == 1) return;
  uint64_t h = 1469598103934665603ULL;  // FNV-1a
  for (unsigned char c : t.bytes) h = (h ^ c) * 1099511628211ULL;
  const std::string mine = std::to_string(t.items.size()) + " items, " + std::to_string(t.bytes.size()) +
                           " bytes, FNV-1a " + std::to_string(h);
  const std::vector<std::string> all = world.allgather_bytes(mine);
  for (size_t r = 1; r < all.size(); ++r)
    if (all[r] != all[0])
      throw Error(label + ": rank " + std::to_string(r) + " read " + all[r] + " but rank 0 read " + all[0] +
                  ": every rank must read the same input (a shared file system)");
}

// Every item's token count, on every rank (int32: at most max_position_embeddings each).
std::vector<int32_t> all_lengths(Communicator& world, const std::vector<std::vector<int32_t>>& seqs, size_t count) {
  std::string mine(seqs.size() * sizeof(int32_t), '\0');
  for (size_t i = 0; i < seqs.size(); ++i) {
    const auto n = static_cast<int32_t>(seqs[i].size());
    std::memcpy(mine.data() + i * sizeof n, &n, sizeof n);
  }
  std::vector<int32_t> out;
  out.reserve(count);
  for (const std::string& part : world.allgather_bytes(mine)) {
    const size_t k = part.size() / sizeof(int32_t);
    out.resize(out.size() + k);
    std::memcpy(out.data() + out.size() - k, part.data(), k * sizeof(int32_t));
  }
  if (out.size() != count)
    throw Error("embed: the ranks tokenized " + std::to_string(out.size()) + " of " + std::to_string(count) +
                " inputs (internal error)");
  return out;
}

// The single process's batches and which rank runs each. Batches are packed greedily over all
// items exactly as batch_end (batching.h) packs them: a batch takes items while its token count
// stays within the budget, and an item longer than the budget goes alone. So every batch, and with
// it every GEMM's shape and blocking, is the single process's, and the output is bitwise the
// single process's. Rank r runs the contiguous batches whose first token lies in its even share
// of all tokens (even_bounds): balanced by tokens (a corpus sorted by length is balanced too), to
// within one batch. Rank 0 always runs batch 0.
struct ShardPlan {
  std::vector<size_t> starts;   // first item of every batch, then the item count
  std::vector<size_t> batches;  // size()+1 bounds: rank r runs batches [batches[r], batches[r+1])
  size_t first_item(int rank) const { return starts[batches[static_cast<size_t>(rank)]]; }
  size_t end_item(int rank) const { return starts[batches[static_cast<size_t>(rank) + 1]]; }
  size_t batch_count(int rank) const {
    return batches[static_cast<size_t>(rank) + 1] - batches[static_cast<size_t>(rank)];
  }
};

ShardPlan plan_shards(const std::vector<int32_t>& lengths, int64_t max_batch_tokens, int ranks) {
  ShardPlan p;
  std::vector<size_t> token_start;  // tokens before each batch
  size_t tokens_before = 0;
  for (size_t s = 0; s < lengths.size();) {
    size_t e = s;
    int64_t tokens = 0;
    while (e < lengths.size() && (e == s || tokens + lengths[e] <= max_batch_tokens)) tokens += lengths[e++];
    p.starts.push_back(s);
    token_start.push_back(tokens_before);
    tokens_before += static_cast<size_t>(tokens);
    s = e;
  }
  p.starts.push_back(lengths.size());
  const std::vector<size_t> tb = even_bounds(tokens_before, ranks);
  for (const size_t t : tb)  // batches starting before token t
    p.batches.push_back(
        static_cast<size_t>(std::lower_bound(token_start.begin(), token_start.end(), t) - token_start.begin()));
  p.batches.back() = token_start.size();
  return p;
}

// Batches per round: every rank runs its batches in rounds of this many, with a small collective
// after each (below), so a collective never waits longer than about one round of compute for a
// slower rank, whatever the corpus size (--comm-timeout bounds that wait). Test hook:
// MODERNBERT_TEST_EMBED_ROUND_BATCHES.
size_t batches_per_round() {
  if (const char* v = std::getenv("MODERNBERT_TEST_EMBED_ROUND_BATCHES")) {
    const long n = std::atol(v);
    if (n > 0) return static_cast<size_t>(n);
  }
  return 8;
}

int run_embed(int argc, char** argv) {
  ArgParser a("embed", "--model DIR [--input F] [--output F] [flags]",
              "Sentence embeddings: pooled final hidden states (pooling from the sentence-transformers\n"
              "config, else config.json classifier_pooling, else --pooling), then the model's Dense module\n"
              "if any, L2 normalisation (a Normalize module or --normalize) and Matryoshka truncation\n"
              "(--dim, re-normalised). With --colbert: per-token vectors (PyLate Dense projection if the\n"
              "model has one), L2-normalised; a PyLate model's texts are documents ([D] prefix, document_length,\n"
              "skiplist vectors dropped) or, with --query, queries ([Q] prefix, query_length, expansion). Output: "
              "JSONL {\"embedding\": [...]} / {\"vectors\": [[...]]}\n"
              "or, with --format npy, a float32 [N, D] .npy file.\n"
              "Under `mpirun -np N`, each rank embeds a share of the inputs (every rank reads --input FILE;\n"
              "stdin is read by rank 0) and rank 0 writes the one output, identical to one process's with the\n"
              "same --threads and --max-batch-tokens.");
  add_common_flags(a);
  add_world_flags(a);
  a.option("pooling", "MODE", "cls | mean | max (overrides the model's)");
  a.flag("normalize", "L2-normalise the embeddings");
  a.option("dim", "N", "Matryoshka: keep the first N dimensions");
  a.option("prompt", "NAME", "prepend the sentence-transformers prompt NAME (config_sentence_transformers.json)");
  a.option("prefix", "STR", "prepend STR to every text");
  a.flag("colbert", "per-token ColBERT vectors instead of one vector per text");
  a.flag("query", "--colbert on a PyLate model: the texts are queries ([Q] prefix, query_length, expansion)");
  a.flag("document", "--colbert on a PyLate model: the texts are documents ([D] prefix, skiplist; the default)");
  a.option("document-length", "N",
           "--colbert on a PyLate model: truncate documents to N tokens (default: the model's)");
  a.option("format", "FMT", "jsonl | npy", "jsonl");
  if (!a.parse(argc, argv)) return 0;
  apply_threads(a);
  Communicator& world = open_command_world(a);
  InferenceContext ctx = load_inference(a.require("model"), dtype_option(a));
  const auto& st = ctx.model.sentence_transformers;
  const std::string prompt_name = a.get_or("prompt", "");
  const std::string prefix = prompt_text(st, a.has("prompt") ? &prompt_name : nullptr) + a.get_or("prefix", "");
  EmbedOptions o;
  o.pooling = model_embed_pooling(ctx.model);
  if (a.has("pooling")) o.pooling = parse_embed_pooling(a.get("pooling"));
  o.normalize = a.has("normalize") || st.normalize;
  o.dim = a.get_int_or("dim", 0);
  if (a.has("dim") && o.dim <= 0) throw Error("--dim must be positive");
  o.dense = st.dense_out > 0 ? &st : nullptr;
  std::string fmt = a.get("format");
  if (fmt != "jsonl" && fmt != "npy") throw Error("--format must be jsonl or npy");
  const bool colbert = a.has("colbert");
  if (colbert && fmt == "npy") throw Error("--colbert writes JSONL (a ragged list of vectors per text)");
  if ((a.has("query") || a.has("document") || a.has("document-length")) && !colbert)
    throw Error("--query, --document and --document-length go with --colbert");
  if (a.has("query") && a.has("document")) throw Error("--query and --document exclude each other");
  if ((a.has("query") || a.has("document") || a.has("document-length")) && !st.colbert.present)
    throw Error(
        "--query, --document and --document-length need a PyLate ColBERT model (query_prefix / document_prefix in " +
        ctx.model.dir + "/config_sentence_transformers.json)");
  ColbertSettings pylate = st.colbert;
  if (a.has("document-length")) {
    pylate.document_length = a.get_int("document-length");
    if (pylate.document_length < 3) throw Error("--document-length must be at least 3");
  }

  const bool lossy = a.has("lossy-utf8");
  const int64_t max_batch_tokens = a.get_int("max-batch-tokens");
  if (max_batch_tokens <= 0) throw Error("--max-batch-tokens must be positive");
  const std::string input = a.get("input");
  const std::string label = input == "-" ? "<stdin>" : input;
  const InputText text = read_input_text(world, input, label);
  const size_t count = text.items.size();
  check_same_input(world, text, label);

  // Token ids of items [first, last) (PyLate ColBERT: and the token vectors to keep). Errors name
  // the input's FILE:LINE; under MPI, main.cpp's abort adds the rank.
  auto ids_of = [&](size_t first, size_t last, std::vector<std::vector<uint8_t>>& keep) {
    std::vector<InputRecord> recs;
    recs.reserve(last - first);
    for (size_t i = first; i < last; ++i) recs.push_back(text.record(i, ctx.model.config.vocab_size, lossy));
    return colbert && pylate.present ? pylate_ids(ctx, pylate, recs, a.has("query"), lossy, prefix, keep)
                                     : records_to_ids(ctx, recs, a.has("truncate"), lossy, prefix);
  };
  // 1. This rank parses and tokenizes its share of the items (so a bad item is found and named by
  //    the rank that holds it), and every rank learns every item's token count.
  const int rank = world.rank(), ranks = world.size();
  const Share share = rank_share(static_cast<int64_t>(count), rank, ranks);
  const size_t s_first = static_cast<size_t>(share.first), s_last = static_cast<size_t>(share.last);
  std::vector<std::vector<uint8_t>> share_keep;
  auto share_seqs = ids_of(s_first, s_last, share_keep);
  const std::vector<int32_t> lengths = all_lengths(world, share_seqs, count);
  // 2. The single process's batches, this rank's contiguous run of them (plan_shards), and their
  //    token ids: kept from step 1 where the run overlaps the share, tokenized again elsewhere.
  const ShardPlan plan = plan_shards(lengths, max_batch_tokens, ranks);
  const size_t lo = plan.first_item(rank), hi = plan.end_item(rank);
  std::vector<std::vector<int32_t>> seqs;
  std::vector<std::vector<uint8_t>> keep;  // PyLate: which token vectors are returned
  auto take = [&](size_t first, size_t last) {
    if (first >= last) return;
    if (first >= s_first && last <= s_last) {
      for (size_t i = first; i < last; ++i) {
        seqs.push_back(std::move(share_seqs[i - s_first]));
        if (!share_keep.empty()) keep.push_back(std::move(share_keep[i - s_first]));
      }
      return;
    }
    std::vector<std::vector<uint8_t>> k;
    for (auto& q : ids_of(first, last, k)) seqs.push_back(std::move(q));
    for (auto& q : k) keep.push_back(std::move(q));
  };
  take(lo, std::min(hi, s_first));
  take(std::max(lo, s_first), std::min(hi, s_last));
  take(std::max(lo, s_last), hi);
  share_seqs.clear();
  share_keep.clear();

  const int64_t H = ctx.model.config.hidden_size;
  std::string out;  // this rank's part: JSONL lines, or float32 rows for npy
  int64_t D = 0;
  size_t base = 0;  // index into seqs of the current round's first item
  auto emit = [&](const Batch& b, size_t first, const std::vector<float>& h) {
    first += base;
    if (colbert) {
      auto v = colbert_vectors(h.data(), b.num_tokens(), H, o.dense, &D);
      for (int64_t s = 0; s < b.num_seqs(); ++s) {
        json rows = json::array();
        const int64_t t0 = b.cu_seqlens[static_cast<size_t>(s)];
        for (int64_t t = t0; t < b.cu_seqlens[static_cast<size_t>(s + 1)]; ++t)
          if (keep.empty() || keep[first + static_cast<size_t>(s)][static_cast<size_t>(t - t0)])
            rows.push_back(std::vector<float>(v.begin() + t * D, v.begin() + (t + 1) * D));
        out += json({{"vectors", rows}}).dump() + "\n";
      }
      return;
    }
    auto e = sentence_embeddings(b, h.data(), H, o, &D);
    if (fmt == "npy") {
      out.append(reinterpret_cast<const char*>(e.data()), e.size() * sizeof(float));
    } else {
      for (int64_t s = 0; s < b.num_seqs(); ++s)
        out += json({{"embedding", std::vector<float>(e.begin() + s * D, e.begin() + (s + 1) * D)}}).dump() + "\n";
    }
  };
  // Rounds: the same number on every rank (from the largest run); a rank whose run is over only
  // takes part in the collective. for_each_batch over a round's items, which start and end at
  // batch boundaries, packs exactly the plan's batches.
  size_t max_batches = 0;
  for (int r = 0; r < ranks; ++r) max_batches = std::max(max_batches, plan.batch_count(r));
  const size_t per_round = batches_per_round(), b0 = plan.batches[static_cast<size_t>(rank)];
  for (size_t k = 0; k * per_round < max_batches; ++k) {
    const size_t bl = b0 + std::min(k * per_round, plan.batch_count(rank));
    const size_t bh = b0 + std::min((k + 1) * per_round, plan.batch_count(rank));
    if (bl < bh) {
      base = plan.starts[bl] - lo;
      std::vector<std::vector<int32_t>> round(
          std::make_move_iterator(seqs.begin() + static_cast<std::ptrdiff_t>(base)),
          std::make_move_iterator(seqs.begin() + static_cast<std::ptrdiff_t>(plan.starts[bh] - lo)));
      for_each_batch(*ctx.encoder, round, max_batch_tokens, emit);
    }
    if (ranks > 1) world.barrier();
  }
  // 3. Every part to rank 0, which alone writes the one output, parts in rank order = input order.
  //    Rank 0 keeps its own part (no copy through the gather).
  std::vector<std::string> parts = world.gather_bytes(world.is_root() ? std::string() : out, 0);
  if (!world.is_root()) return 0;
  parts[0] = std::move(out);
  if (fmt == "npy") {
    // Rank 0 always embeds the first batch, so it knows D.
    size_t bytes = 0;
    for (const auto& p : parts) bytes += p.size();
    if (bytes != count * static_cast<size_t>(D) * sizeof(float))
      throw Error("embed: the ranks returned " + std::to_string(bytes) + " bytes of embeddings for " +
                  std::to_string(count) + " inputs of dimension " + std::to_string(D) + " (internal error)");
  }
  Output output(a.get("output"));  // a file appears only when complete
  if (fmt == "npy") output.write(npy_header(static_cast<int64_t>(count), D));
  for (const auto& p : parts) output.write(p);
  output.commit();
  return 0;
}

CommandRegistrar reg({"embed", "sentence embeddings or ColBERT vectors (JSONL / .npy)", run_embed});

}  // namespace
}  // namespace modernbert::cli
