// The serving engine (engine.h): loading the model directory as the inference commands do,
// the input checks (tokenize / check_ids / prompt_text / submit) and the Job handle. The scheduler
// thread is in scheduler.cpp.
#include "serve/engine.h"

#include <sys/stat.h>

#include <algorithm>
#include <utility>

#include "kernels/backend.h"
#include "modernbert/batching.h"
#include "modernbert/error.h"
#include "serve/engine_impl.h"

namespace modernbert::serve {

// ---- Job --------------------------------------------------------------------------------------

void Job::State::finish_locked() {
  if (done) return;
  done = true;
  finished = Clock::now();
  --q->outstanding;
  done_cv.notify_all();
}

bool Job::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> l(s_->q->mu);
  return s_->done_cv.wait_for(l, timeout, [&] { return s_->done; });
}

bool Job::done() const {
  std::lock_guard<std::mutex> l(s_->q->mu);
  return s_->done;
}

void Job::cancel() {
  std::lock_guard<std::mutex> l(s_->q->mu);
  State& s = *s_;
  if (s.done || s.cancelled) return;
  s.cancelled = true;
  if (s.queued) {
    auto& jobs = s.q->jobs;
    jobs.erase(std::find(jobs.begin(), jobs.end(), s_));
    s.queued = false;
  }
  // Sequences in the running batch finish; the scheduler completes the job after that batch.
  if (s.in_flight == 0) s.finish_locked();
}

bool Job::cancelled() const {
  std::lock_guard<std::mutex> l(s_->q->mu);
  return s_->cancelled;
}

const std::vector<SequenceResult>& Job::results() const {
  std::lock_guard<std::mutex> l(s_->q->mu);
  if (!s_->done) throw std::logic_error("Job::results() before the job is done");
  if (s_->error) std::rethrow_exception(s_->error);
  if (s_->cancelled) throw std::runtime_error("the request was cancelled");
  return s_->results;
}

double Job::queue_seconds() const {
  std::lock_guard<std::mutex> l(s_->q->mu);
  const State& s = *s_;
  if (s.has_started) return std::chrono::duration<double>(s.started - s.enqueued).count();
  return s.done ? std::chrono::duration<double>(s.finished - s.enqueued).count() : 0.0;
}

double Job::inference_seconds() const {
  std::lock_guard<std::mutex> l(s_->q->mu);
  const State& s = *s_;
  return s.has_started && s.done ? std::chrono::duration<double>(s.finished - s.started).count() : 0.0;
}

size_t Job::num_tokens() const { return s_->tokens; }

// ---- loading ----------------------------------------------------------------------------------

namespace {

// The model's capabilities and the embedding options, resolved exactly as `modernbert embed` /
// `classify` / `fill-mask` resolve them (src/cli/cmd_*.cpp).
void resolve(Engine::Impl& m, const EngineOptions& o) {
  const ModelConfig& cfg = m.model.config;
  const SentenceTransformersInfo& st = m.model.sentence_transformers;
  const HeadSet& heads = m.model.weights.heads();
  Capabilities& c = m.caps;
  c.model_dir = m.model.dir;
  c.hidden_size = cfg.hidden_size;
  c.vocab_size = cfg.vocab_size;
  c.max_input_length = cfg.max_position_embeddings;
  c.stored_dtype = m.model.stored_dtype;
  c.precision = precision_name(m.model.precision);
  // Pooling: the sentence-transformers config, else config.json's classifier_pooling; the option wins.
  m.embed.pooling = cfg.classifier_pooling == Pooling::kCls ? EmbedPooling::kCls : EmbedPooling::kMean;
  if (st.present && !st.pooling_mode.empty()) m.embed.pooling = parse_embed_pooling(st.pooling_mode);
  if (!o.pooling.empty()) m.embed.pooling = parse_embed_pooling(o.pooling);
  m.embed.dense = st.dense_out > 0 ? &st : nullptr;
  c.pooling = m.embed.pooling;
  c.has_colbert_projection = st.dense_out > 0;
  c.embedding_dim = c.has_colbert_projection ? st.dense_out : cfg.hidden_size;
  c.token_vector_dim = c.embedding_dim;
  c.normalize_by_default = st.normalize;
  c.has_mlm = heads.mlm;
  c.has_classifier = heads.classifier == HeadSet::Classifier::kSequence;
  if (c.has_classifier) {
    c.num_labels = m.enc->num_labels();
    // As config.json says: when it is unset, `classify` takes 1 label as regression while TEI takes
    // it as a sigmoid score (cross-encoders), so the HTTP layer decides.
    c.problem_type = cfg.problem_type;
    for (int64_t i = 0; i < c.num_labels; ++i) c.labels.push_back(label_name(cfg, i));
  }
  c.prompts = st.prompts;
  c.default_prompt_name = o.default_prompt_name.empty() ? st.default_prompt_name : o.default_prompt_name;
  if (!c.default_prompt_name.empty()) {
    auto it = c.prompts.find(c.default_prompt_name);
    if (it != c.prompts.end()) {
      m.default_prompt = it->second;
    } else if (!o.default_prompt_name.empty()) {
      throw Error("default prompt name '" + o.default_prompt_name + "': the model defines no such prompt");
    } else {
      c.default_prompt_name.clear();  // as `modernbert embed`: a default naming no prompt is ignored
    }
  }
  if (m.tok)
    if (auto id = m.tok->token_to_id("[MASK]"); id && *id >= 0 && *id < cfg.vocab_size) c.mask_token_id = *id;
}

std::shared_ptr<Job> enqueue(Engine::Impl& m, Request r, bool warmup);  // below

// A short sequence ([CLS], 14 ids, [SEP]) that the warm-up runs through the whole path.
std::vector<int32_t> warmup_ids(const ModelConfig& cfg) {
  auto in_vocab = [&](int64_t id) { return static_cast<int32_t>(id >= 0 && id < cfg.vocab_size ? id : 0); };
  std::vector<int32_t> ids{in_vocab(cfg.cls_token_id)};
  for (int64_t k = 0; k < 14; ++k) ids.push_back(in_vocab((1000 + 37 * k) % cfg.vocab_size));
  ids.push_back(in_vocab(cfg.sep_token_id));
  return ids;
}

InputError input_error(const Error& e) {
  if (const auto* s = dynamic_cast<const SequenceInputError*>(&e)) {
    switch (s->kind) {
      case SequenceIssue::kTokenizer:
        return InputError(InputErrorKind::kTokenizer, s->detail());
      case SequenceIssue::kIdOutOfRange:
        return InputError(InputErrorKind::kIdOutOfRange, s->detail());
      case SequenceIssue::kTooLong:
        return InputError(InputErrorKind::kTooLong, s->detail());
      case SequenceIssue::kEmpty:
        return InputError(InputErrorKind::kEmpty, s->detail());
    }
  }
  if (const auto* b = dynamic_cast<const BatchItemError*>(&e))
    return InputError(InputErrorKind::kValidation, b->detail());
  return InputError(InputErrorKind::kTokenizer, e.what());  // the tokenizer as a whole failed
}

// inputs_to_ids (batching.h) for one input, on the calling thread, its errors as InputError.
std::vector<int32_t> one_to_ids(const Tokenizer* tok, const SequenceInput& in, SequenceOptions so,
                                std::vector<Encoding>* encs) {
  so.tokenizer_threads = 1;
  so.too_long_hint = "enable truncation";
  try {
    return std::move(inputs_to_ids(tok, {in}, so, encs).front());
  } catch (const Error& e) {
    throw input_error(e);
  }
}

}  // namespace

Engine::Engine(const EngineOptions& o) {
  if (o.threads < 0) throw Error("threads must be >= 0 (0 = all cores)");
  if (o.max_batch_tokens <= 0) throw Error("max_batch_tokens must be positive");
  if (o.max_queued_requests == 0) throw Error("max_queued_requests must be positive");
  if (o.threads > 0) kernels::set_num_threads(o.threads);  // as the commands' --threads
  LoadOptions lo;
  lo.precision = o.precision;
  impl_ = std::make_unique<Impl>(load_model_dir(o.model_dir, lo));
  Impl& m = *impl_;
  m.opts = o;
  struct stat sb {};
  const std::string tk = o.model_dir + "/tokenizer.json";
  if (::stat(tk.c_str(), &sb) == 0) m.tok = Tokenizer::from_file(tk);
  m.enc = std::make_unique<Encoder>(m.model.weights);
  resolve(m, o);
  m.scheduler = std::thread([&m] { m.run_scheduler(); });
  if (o.warmup) {
    try {
      // Through the queue and the scheduler thread: the arena, RoPE tables and the thread-local
      // state of the GEMM library are set up on the thread that serves.
      Request r;
      r.task = Task::kEmbed;
      r.seqs.push_back(warmup_ids(m.model.config));
      auto job = enqueue(m, std::move(r), /*warmup=*/true);
      job->wait_for(std::chrono::hours(24 * 365));
      (void)job->results();
    } catch (const std::exception& e) {
      shutdown();
      throw Error(std::string("warm-up forward failed: ") + e.what());
    }
  }
  m.ready = true;
}

Engine::~Engine() { shutdown(); }

const Capabilities& Engine::capabilities() const { return impl_->caps; }
const Tokenizer* Engine::tokenizer() const { return impl_->tok ? &*impl_->tok : nullptr; }
bool Engine::ready() const { return impl_->ready; }

// ---- input checks -----------------------------------------------------------------------------

std::vector<int32_t> Engine::tokenize(const std::string& text, const std::string* pair, const std::string& prefix,
                                      bool truncate, bool truncate_left) const {
  const Impl& m = *impl_;
  if (!m.tok)
    throw InputError(InputErrorKind::kValidation, m.caps.model_dir + " has no tokenizer.json: send token ids");
  const bool left = truncate && truncate_left;
  if (left && pair) throw InputError(InputErrorKind::kValidation, "left truncation applies to single texts only");
  SequenceInput in;
  in.text = text;
  if (pair) {
    in.text_pair = *pair;
    in.has_pair = true;
  }
  const int64_t max_len = m.caps.max_input_length;
  SequenceOptions so;
  so.prefix = prefix;
  so.vocab_size = m.caps.vocab_size;
  // Right: the tokenizer truncates (longest-first for pairs, the final [SEP] kept), as --truncate.
  // Left: tokenize whole, then keep the leading and trailing special tokens and the last tokens.
  so.max_position = left ? 0 : max_len;
  if (truncate && !left) so.truncate_to = max_len;
  std::vector<Encoding> encs;
  std::vector<int32_t> ids = one_to_ids(&*m.tok, in, so, left ? &encs : nullptr);
  if (!left || static_cast<int64_t>(ids.size()) <= max_len) return ids;
  const auto& special = encs.front().special_tokens_mask;
  size_t lead = 0, trail = 0;
  while (lead < ids.size() && special[lead]) ++lead;
  while (trail < ids.size() - lead && special[ids.size() - 1 - trail]) ++trail;
  if (static_cast<int64_t>(lead + trail) >= max_len)
    throw InputError(InputErrorKind::kTooLong, "max_input_length " + std::to_string(max_len) +
                                                   " leaves no room for text between the special tokens");
  const size_t keep = static_cast<size_t>(max_len) - lead - trail;
  std::vector<int32_t> out(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(lead));
  out.insert(out.end(), ids.end() - static_cast<std::ptrdiff_t>(trail + keep), ids.end());
  return out;
}

std::vector<int32_t> Engine::check_ids(std::vector<int32_t> ids, bool truncate) const {
  const Impl& m = *impl_;
  SequenceInput in;
  in.ids = std::move(ids);
  in.has_ids = true;
  SequenceOptions so;
  so.vocab_size = m.caps.vocab_size;
  so.max_position = m.caps.max_input_length;
  if (truncate) so.truncate_to = m.caps.max_input_length;
  return one_to_ids(nullptr, in, so, nullptr);
}

std::string Engine::prompt_text(const std::string& prompt_name) const {
  const Impl& m = *impl_;
  if (prompt_name.empty()) return m.default_prompt;
  auto it = m.caps.prompts.find(prompt_name);
  if (it != m.caps.prompts.end()) return it->second;
  std::string known;
  for (const auto& [name, text] : m.caps.prompts) known += (known.empty() ? "" : ", ") + name;
  throw InputError(InputErrorKind::kValidation,
                   "unknown prompt_name '" + prompt_name + "' (" +
                       (known.empty() ? std::string("the model defines no prompts") : "the model defines: " + known) +
                       ")");
}

namespace {

// Everything submit() refuses before queueing. Ids are re-checked here (cheap) because a bad id
// in a batch would fail every request in it.
void validate(const Capabilities& c, const Request& r) {
  using K = InputErrorKind;
  if (r.seqs.empty()) throw InputError(K::kEmpty, "no inputs");
  switch (r.task) {
    case Task::kEmbed:
      if (r.dims < 0 || r.dims > c.embedding_dim)
        throw InputError(K::kValidation, "dimensions must be in 1.." + std::to_string(c.embedding_dim) + ", got " +
                                             std::to_string(r.dims));
      break;
    case Task::kEmbedAll:
      break;
    case Task::kClassify:
      if (!c.has_classifier) throw InputError(K::kValidation, "the model has no sequence-classification head");
      break;
    case Task::kFillMask:
      if (!c.has_mlm) throw InputError(K::kValidation, "the model has no masked-language-model head");
      if (c.mask_token_id < 0) throw InputError(K::kValidation, "the model's vocabulary has no [MASK] token");
      if (r.top_k < 1) throw InputError(K::kValidation, "top_k must be positive");
      break;
  }
  for (size_t i = 0; i < r.seqs.size(); ++i) {
    const auto& s = r.seqs[i];
    const std::string where = "input " + std::to_string(i) + ": ";
    if (s.empty()) throw InputError(K::kEmpty, where + "no tokens");
    if (static_cast<int64_t>(s.size()) > c.max_input_length)
      throw InputError(K::kTooLong, where + std::to_string(s.size()) + " tokens exceed max_position_embeddings " +
                                        std::to_string(c.max_input_length));
    for (int32_t id : s)
      if (id < 0 || id >= c.vocab_size)
        throw InputError(K::kIdOutOfRange, where + "id " + std::to_string(id) + " outside the vocabulary [0, " +
                                               std::to_string(c.vocab_size) + ")");
    if (r.task == Task::kFillMask && std::find(s.begin(), s.end(), c.mask_token_id) == s.end())
      throw InputError(K::kValidation, where + "no [MASK] token in the input");
  }
}

// submit() and the constructor's warm-up.
std::shared_ptr<Job> enqueue(Engine::Impl& m, Request r, bool warmup) {
  validate(m.caps, r);
  auto st = std::make_shared<Job::State>();
  st->q = m.q;
  st->warmup = warmup;
  st->results.resize(r.seqs.size());
  for (const auto& s : r.seqs) st->tokens += s.size();
  st->req = std::move(r);
  {
    std::lock_guard<std::mutex> l(m.q->mu);
    if (m.q->stopping) throw ShuttingDown("the server is shutting down");
    if (m.q->outstanding >= m.opts.max_queued_requests)
      throw QueueFull("the queue is full (" + std::to_string(m.opts.max_queued_requests) + " requests)");
    ++m.q->outstanding;
    st->queued = true;
    st->enqueued = Clock::now();
    m.q->jobs.push_back(st);
  }
  m.q->wake.notify_one();
  return std::make_shared<Job>(st);
}

}  // namespace

std::shared_ptr<Job> Engine::submit(Request r) { return enqueue(*impl_, std::move(r), false); }

void Engine::shutdown() {
  Impl& m = *impl_;
  {
    std::lock_guard<std::mutex> l(m.q->mu);
    m.q->stopping = true;
  }
  m.q->wake.notify_all();
  // A second caller waits here until the first one's join returned: both return drained.
  std::call_once(m.joined, [&] {
    if (m.scheduler.joinable()) m.scheduler.join();
  });
}

size_t Engine::queue_size() const {
  std::lock_guard<std::mutex> l(impl_->q->mu);
  return impl_->q->outstanding;
}

void Engine::set_batch_observer(std::function<void(const BatchStats&)> fn) {
  std::lock_guard<std::mutex> l(impl_->observer_mu);
  impl_->observer = std::move(fn);
}

}  // namespace modernbert::serve
