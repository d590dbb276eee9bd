// The inference API (modernbert/inference.h): loading, input checks and every task but rerank
// (inference_rerank.cpp). Each task resolves its knobs with the same functions as the matching CLI
// command (tasks.h: model_embed_pooling, prompt_text, resolve_problem_type, token_labels,
// fill_mask_batch, ...), so a result equals the command's for the same input.
#include "modernbert/inference.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "kernels/backend.h"
#include "modernbert/batching.h"
#include "tasks/inference_impl.h"

namespace modernbert {

namespace {

InputIssue issue_of(SequenceIssue k) {
  switch (k) {
    case SequenceIssue::kTokenizer:
      return InputIssue::kTokenizer;
    case SequenceIssue::kIdOutOfRange:
      return InputIssue::kIdOutOfRange;
    case SequenceIssue::kTooLong:
      return InputIssue::kTooLong;
    case SequenceIssue::kEmpty:
      return InputIssue::kEmpty;
  }
  return InputIssue::kInvalid;
}

// Everything the model is and can do, resolved as the commands resolve it.
ModelInfo make_info(const Model::Impl& m) {
  const ModelConfig& cfg = m.model.config;
  const SentenceTransformersInfo& st = m.model.sentence_transformers;
  const HeadSet& heads = m.model.weights.heads();
  ModelInfo i;
  i.dir = m.model.dir;
  i.hidden_size = cfg.hidden_size;
  i.num_layers = cfg.num_hidden_layers;
  i.vocab_size = cfg.vocab_size;
  i.max_length = cfg.max_position_embeddings;
  i.stored_dtype = m.model.stored_dtype;
  i.precision = m.model.precision;
  i.has_tokenizer = m.tok.has_value();
  i.has_mlm = heads.mlm;
  i.has_classifier = heads.classifier == HeadSet::Classifier::kSequence;
  i.has_token_classifier = heads.classifier == HeadSet::Classifier::kToken;
  i.has_colbert = st.dense_out > 0;
  if (heads.classifier != HeadSet::Classifier::kNone) {
    i.num_labels = m.enc->num_labels();
    i.problem_type = i.has_classifier ? resolve_problem_type(cfg.problem_type, i.num_labels)
                                      : ProblemType::kSingleLabel;  // token labels: softmax, as `classify --tokens`
    for (int64_t k = 0; k < i.num_labels; ++k) i.labels.push_back(label_name(cfg, k));
  }
  i.pooling = model_embed_pooling(m.model);
  i.normalize = st.normalize;
  i.embedding_dim = i.has_colbert ? st.dense_out : cfg.hidden_size;
  if (st.colbert.present) {
    i.query_prefix = st.colbert.query_prefix;
    i.document_prefix = st.colbert.document_prefix;
  }
  i.prompts = st.prompts;
  if (st.prompts.count(st.default_prompt_name)) i.default_prompt_name = st.default_prompt_name;
  return i;
}

void check_pairs(const std::vector<std::string>& texts, const std::vector<std::string>& pairs) {
  if (!pairs.empty() && pairs.size() != texts.size())
    throw Error("classify: " + std::to_string(pairs.size()) + " pairs for " + std::to_string(texts.size()) +
                " texts (give one pair per text, or none)");
}

}  // namespace

// ---- Impl -------------------------------------------------------------------------------------

std::vector<std::vector<int32_t>> Model::Impl::to_ids(const std::vector<SequenceInput>& in, const std::string& prefix,
                                                      std::vector<Encoding>* encs) const {
  for (size_t i = 0; i < in.size(); ++i) {
    if (!in[i].has_ids && in[i].text.empty()) throw InputError(InputIssue::kEmpty, i, "empty text");
    if (in[i].has_pair && in[i].text_pair.empty()) throw InputError(InputIssue::kEmpty, i, "empty text pair");
    if (!in[i].has_ids && !tok)
      throw InputError(InputIssue::kTokenizer, i, "text input needs " + model.dir + "/tokenizer.json");
  }
  SequenceOptions o;
  o.max_position = model.config.max_position_embeddings;
  if (opts.truncate) o.truncate_to = model.config.max_position_embeddings;
  o.vocab_size = model.config.vocab_size;
  o.lossy_utf8 = opts.lossy_utf8;
  o.prefix = prefix;
  o.too_long_hint = "enable truncation";
  o.tokenizer_threads = opts.threads > 0 ? static_cast<unsigned>(opts.threads) : 0;
  try {
    return inputs_to_ids(tok ? &*tok : nullptr, in, o, encs);
  } catch (const SequenceInputError& e) {
    throw InputError(issue_of(e.kind), e.index(), e.detail());
  } catch (const InputError&) {
    throw;
  } catch (const BatchItemError& e) {
    throw InputError(InputIssue::kInvalid, e.index(), e.detail());
  }
}

std::vector<std::vector<int32_t>> Model::Impl::texts_to_ids(const std::vector<std::string>& texts,
                                                            const std::string& prefix,
                                                            std::vector<Encoding>* encs) const {
  std::vector<SequenceInput> in(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) in[i].text = texts[i];
  return to_ids(in, prefix, encs);
}

std::vector<std::vector<int32_t>> Model::Impl::token_input_ids(const std::vector<std::string>& texts,
                                                               const TokenParams& p,
                                                               std::vector<std::vector<uint8_t>>* keep) const {
  const ColbertSettings& s = model.sentence_transformers.colbert;
  if (!s.present) return texts_to_ids(texts, p.prefix);
  // PyLate ColBERT (colbert_input, tasks.h): its prefix token after [CLS], query/document lengths,
  // query expansion, and `keep` = the vectors returned (documents lose their skiplist tokens').
  if (!tok) throw Error(model.dir + ": a PyLate ColBERT model needs tokenizer.json");
  const ColbertTokenIds t = colbert_token_ids(*tok, s);
  std::vector<std::vector<int32_t>> seqs;
  for (size_t i = 0; i < texts.size(); ++i) {
    if (texts[i].empty()) throw InputError(InputIssue::kEmpty, i, "empty text");
    ColbertInput in;
    try {
      in = colbert_input(*tok, s, t, p.prefix + texts[i], p.is_query, opts.lossy_utf8);
    } catch (const Error& e) {
      throw InputError(InputIssue::kTokenizer, i, e.what());
    }
    if (static_cast<int64_t>(in.ids.size()) > model.config.max_position_embeddings)
      throw InputError(InputIssue::kTooLong, i,
                       std::to_string(in.ids.size()) + " tokens, more than max_position_embeddings " +
                           std::to_string(model.config.max_position_embeddings));
    seqs.push_back(std::move(in.ids));
    if (keep) keep->push_back(std::move(in.keep));
  }
  return seqs;
}

void Model::Impl::run(const std::vector<std::vector<int32_t>>& seqs, int64_t batch_size,
                      const std::function<void(const Batch&, size_t, const std::vector<float>&)>& fn) {
  if (batch_size <= 0 || static_cast<size_t>(batch_size) >= seqs.size()) {
    if (!seqs.empty()) for_each_batch(*enc, seqs, opts.max_batch_tokens, fn);
    return;
  }
  // At most batch_size sequences per forward: token-budget batches within chunks of batch_size.
  const size_t bs = static_cast<size_t>(batch_size);
  for (size_t c0 = 0; c0 < seqs.size(); c0 += bs) {
    const size_t c1 = std::min(seqs.size(), c0 + bs);
    const std::vector<std::vector<int32_t>> chunk(seqs.begin() + static_cast<std::ptrdiff_t>(c0),
                                                  seqs.begin() + static_cast<std::ptrdiff_t>(c1));
    for_each_batch(*enc, chunk, opts.max_batch_tokens,
                   [&](const Batch& b, size_t first, const std::vector<float>& h) { fn(b, c0 + first, h); });
  }
}

Matrix Model::Impl::embed(const std::vector<std::string>& texts, const EmbedParams& p) {
  const SentenceTransformersInfo& st = model.sentence_transformers;
  if (p.dim < 0 || p.dim > info.embedding_dim)
    throw Error("embed: dim " + std::to_string(p.dim) + " outside 0.." + std::to_string(info.embedding_dim) +
                " (0 = all dimensions)");
  if (p.batch_size < 0) throw Error("embed: batch_size must be >= 0");
  const std::string prompt = !p.prompt_name.empty() ? prompt_text(st, &p.prompt_name)
                             : p.use_default_prompt ? prompt_text(st, nullptr)
                                                    : std::string();
  const std::string prefix = prompt + p.prefix;
  EmbedOptions o;
  o.pooling = p.pooling.value_or(info.pooling);
  o.normalize = p.normalize || st.normalize;
  o.dim = p.dim;
  o.dense = info.has_colbert ? &st : nullptr;
  Matrix out;
  out.cols = p.dim ? p.dim : info.embedding_dim;
  out.rows = static_cast<int64_t>(texts.size());
  out.data.resize(static_cast<size_t>(out.rows * out.cols));
  auto seqs = texts_to_ids(texts, prefix);
  run(seqs, p.batch_size > 0 ? p.batch_size : opts.batch_size,
      [&](const Batch& b, size_t first, const std::vector<float>& h) {
        int64_t D = 0;
        auto e = sentence_embeddings(b, h.data(), info.hidden_size, o, &D);
        std::memcpy(out.data.data() + first * static_cast<size_t>(out.cols), e.data(), e.size() * sizeof(float));
      });
  return out;
}

TokenVectors Model::Impl::embed_tokens(const std::vector<std::string>& texts, const TokenParams& p) {
  const SentenceTransformersInfo* dense = info.has_colbert ? &model.sentence_transformers : nullptr;
  std::vector<std::vector<uint8_t>> keep;  // PyLate: the token vectors returned (empty: all)
  auto seqs = token_input_ids(texts, p, &keep);
  TokenVectors out;
  out.vectors.cols = info.embedding_dim;
  out.offsets.push_back(0);
  for (size_t i = 0; i < seqs.size(); ++i)
    out.offsets.push_back(out.offsets.back() + (keep.empty() ? static_cast<int64_t>(seqs[i].size())
                                                             : std::count(keep[i].begin(), keep[i].end(), 1)));
  out.vectors.rows = out.offsets.back();
  out.vectors.data.resize(static_cast<size_t>(out.vectors.rows * out.vectors.cols));
  run(seqs, opts.batch_size, [&](const Batch& b, size_t first, const std::vector<float>& h) {
    int64_t D = 0;
    auto v = colbert_vectors(h.data(), b.num_tokens(), info.hidden_size, dense, &D);
    if (keep.empty()) {
      std::memcpy(out.vectors.data.data() + out.offsets[first] * D, v.data(), v.size() * sizeof(float));
      return;
    }
    for (int64_t s = 0; s < b.num_seqs(); ++s) {
      const size_t i = first + static_cast<size_t>(s);
      float* dst = out.vectors.data.data() + out.offsets[i] * D;
      for (int64_t t = 0; t < b.seq_len(s); ++t)
        if (keep[i][static_cast<size_t>(t)]) {
          std::memcpy(dst, v.data() + (b.cu_seqlens[static_cast<size_t>(s)] + t) * D,
                      sizeof(float) * static_cast<size_t>(D));
          dst += D;
        }
    }
  });
  return out;
}

std::vector<Classification> Model::Impl::classify(const std::vector<std::string>& texts,
                                                  const std::vector<std::string>& pairs) {
  if (!info.has_classifier)
    throw Error(info.dir + ": no sequence-classification head" +
                (info.has_token_classifier ? " (it has a token head: use classify_tokens)" : ""));
  check_pairs(texts, pairs);
  std::vector<SequenceInput> in(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    in[i].text = texts[i];
    if (!pairs.empty()) {
      in[i].text_pair = pairs[i];
      in[i].has_pair = true;
    }
  }
  auto seqs = to_ids(in, "");
  std::vector<Classification> out(texts.size());
  const int64_t L = info.num_labels;
  run(seqs, opts.batch_size, [&](const Batch& b, size_t first, const std::vector<float>& h) {
    auto lg = enc->classify(b, h.data());
    for (int64_t s = 0; s < b.num_seqs(); ++s)
      out[first + static_cast<size_t>(s)] = classification_from_logits(lg.data() + s * L, L, info.problem_type);
  });
  return out;
}

// ---- Model ------------------------------------------------------------------------------------

Model::Model(const std::string& dir, const ModelOptions& options) {
  if (options.threads < 0) throw Error("ModelOptions::threads must be >= 0 (0 = all cores)");
  if (options.max_batch_tokens <= 0) throw Error("ModelOptions::max_batch_tokens must be positive");
  if (options.batch_size < 0) throw Error("ModelOptions::batch_size must be >= 0 (0 = no limit)");
  if (options.threads > 0) kernels::set_num_threads(options.threads);  // as the commands' --threads
  LoadOptions lo;
  lo.precision = options.precision;
  impl_ = std::make_unique<Impl>(load_model_dir(dir, lo));
  Impl& m = *impl_;
  m.opts = options;
  struct stat sb {};
  const std::string tk = dir + "/tokenizer.json";
  if (::stat(tk.c_str(), &sb) == 0) m.tok = Tokenizer::from_file(tk);
  m.enc = std::make_unique<Encoder>(m.model.weights);
  m.info = make_info(m);
  m.cleanup = tokenizer_cleans_up(m.model.dir);
  if (m.tok) m.mask_id = m.tok->token_to_id("[MASK]");
}

Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;

const ModelInfo& Model::info() const { return impl_->info; }
const Tokenizer* Model::tokenizer() const { return impl_->tok ? &*impl_->tok : nullptr; }

Encoding Model::tokenize(const std::string& text, bool add_special_tokens) const {
  const Impl& m = *impl_;
  if (!m.tok) throw Error(m.info.dir + ": tokenize needs tokenizer.json");
  EncodeOptions eo;
  eo.add_special_tokens = add_special_tokens;
  eo.lossy_utf8 = m.opts.lossy_utf8;
  if (m.opts.truncate) eo.max_length = static_cast<size_t>(m.info.max_length);
  try {
    return m.tok->encode(text, eo);
  } catch (const Error& e) {
    throw InputError(InputIssue::kTokenizer, 0, e.what());
  }
}

TokenVectors Model::hidden_states(const std::vector<std::string>& texts) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  auto seqs = m.texts_to_ids(texts, "");
  TokenVectors out;
  const int64_t H = m.info.hidden_size;
  out.vectors.cols = H;
  out.offsets.push_back(0);
  for (const auto& s : seqs) out.offsets.push_back(out.offsets.back() + static_cast<int64_t>(s.size()));
  out.vectors.rows = out.offsets.back();
  out.vectors.data.resize(static_cast<size_t>(out.vectors.rows * H));
  m.run(seqs, m.opts.batch_size, [&](const Batch&, size_t first, const std::vector<float>& h) {
    std::memcpy(out.vectors.data.data() + out.offsets[first] * H, h.data(), h.size() * sizeof(float));
  });
  return out;
}

Matrix Model::embed(const std::vector<std::string>& texts, const EmbedParams& p) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->embed(texts, p);
}

TokenVectors Model::embed_tokens(const std::vector<std::string>& texts, const TokenParams& p) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->embed_tokens(texts, p);
}

std::vector<Classification> Model::classify(const std::vector<std::string>& texts,
                                            const std::vector<std::string>& pairs) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->classify(texts, pairs);
}

std::vector<std::vector<TokenLabel>> Model::classify_tokens(const std::vector<std::string>& texts) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  if (!m.info.has_token_classifier)
    throw Error(m.info.dir + ": no token-classification head (ModernBertForTokenClassification)" +
                (m.info.has_classifier ? "; it has a sequence head: use classify" : ""));
  std::vector<Encoding> encs;
  auto seqs = m.texts_to_ids(texts, "", &encs);
  std::vector<std::vector<TokenLabel>> out(texts.size());
  const int64_t L = m.info.num_labels;
  const Tokenizer* tk = m.tok ? &*m.tok : nullptr;
  m.run(seqs, m.opts.batch_size, [&](const Batch& b, size_t first, const std::vector<float>& h) {
    auto lg = m.enc->classify_tokens(h.data(), b.num_tokens());
    for (int64_t s = 0; s < b.num_seqs(); ++s) {
      const size_t idx = first + static_cast<size_t>(s);
      const int64_t s0 = b.cu_seqlens[static_cast<size_t>(s)];
      out[idx] = token_labels(lg.data() + s0 * L, L, b.ids.data() + s0, b.seq_len(s), &encs[idx], tk);
    }
  });
  return out;
}

std::vector<std::vector<MaskResult>> Model::fill_mask(const std::vector<std::string>& texts, int64_t top_k) {
  Impl& m = *impl_;
  std::lock_guard<std::mutex> lock(m.mu);
  if (top_k < 1) throw Error("fill_mask: top_k must be >= 1, got " + std::to_string(top_k));
  if (!m.tok) throw Error(m.info.dir + ": fill_mask needs tokenizer.json");
  if (!m.info.has_mlm) throw Error(m.info.dir + ": fill_mask needs a checkpoint with the MLM head");
  if (!m.mask_id) throw Error(m.info.dir + ": the tokenizer has no [MASK] token");
  auto seqs = m.texts_to_ids(texts, "");
  for (size_t i = 0; i < seqs.size(); ++i)
    if (std::find(seqs[i].begin(), seqs[i].end(), *m.mask_id) == seqs[i].end())
      throw InputError(InputIssue::kNoMask, i, "no [MASK] token in the input");
  std::vector<std::vector<MaskResult>> out(texts.size());
  m.run(seqs, m.opts.batch_size, [&](const Batch& b, size_t first, const std::vector<float>& h) {
    auto r = fill_mask_batch(*m.enc, *m.tok, m.cleanup, b, h.data(), *m.mask_id, top_k);
    for (size_t s = 0; s < r.size(); ++s) out[first + s] = std::move(r[s]);
  });
  return out;
}

}  // namespace modernbert
