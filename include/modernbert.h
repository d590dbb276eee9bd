/* modernbert.h: the C API of modernbert.cpp (#17). C99 and C++; no C++ type crosses it, and no C++
 * exception either (every one is caught and becomes a status code). It wraps modernbert::Model
 * (modernbert/inference.h), so every result equals the C++ API's for the same input, which equals
 * the CLI's (`modernbert embed`, `classify`, `fill-mask`, `rerank`, ...).
 *
 *   mb_model* m = NULL;
 *   mb_model_options o = mb_model_options_default();
 *   o.dtype = "bf16";
 *   if (mb_model_load("path/to/model", &o, &m) != MB_OK) { puts(mb_last_error_message()); ... }
 *   const char* texts[] = {"search_query: what is X?", "search_document: X is ..."};
 *   mb_embeddings* e = NULL;
 *   if (mb_embed(m, texts, 2, NULL, &e) == MB_OK) {
 *     const float* row1 = mb_embeddings_data(e) + 1 * mb_embeddings_cols(e);  ...
 *   }
 *   mb_embeddings_free(e);
 *   mb_model_free(m);
 *
 * CONVENTIONS (every function below follows them; the comments only state exceptions)
 *
 * Enums: option structs hold enum values in int fields (a C enum's size and range are the
 *   compiler's; an int is the same everywhere); a value not listed is MB_ERR_INVALID_ARGUMENT.
 *
 * Status: every function that can fail returns mb_status (MB_OK = 0). On failure,
 *   mb_last_error_message() says what and where (a text's index, a file, a field), and
 *   mb_last_error_input_index() names the failing text for MB_ERR_INPUT / MB_ERR_TOO_LONG /
 *   MB_ERR_TOKENIZER. Both are thread-local: they describe the last failed call on the calling
 *   thread, and stay until the next failed call on it (a successful call leaves them as they were).
 *   Output pointers are set to NULL on failure (when the pointer itself is not NULL).
 *
 * Ownership: results are LIBRARY-OWNED objects returned through an out-pointer (mb_embeddings**,
 *   ...). The caller frees each with its mb_*_free function; freeing NULL is a no-op. Pointers an
 *   accessor returns (arrays, strings) point into the object and stay valid until it is freed; the
 *   object is independent of the model (it may outlive it). Inputs are only read during the call
 *   and never kept. mb_model_get_info()'s struct belongs to the model (valid until mb_model_free).
 *
 * Texts: `const char* const* texts, size_t n`: n NUL-terminated UTF-8 strings (so a text cannot
 *   contain U+0000: it ends at the first NUL byte; use explicit-length strings in C++ instead).
 *   n == 0 is allowed and gives an empty result (0 rows, count 0) in every batch call (embed,
 *   embed_tokens, hidden_states, classify, classify_tokens, fill_mask, rerank); a NULL `texts`
 *   with n > 0, or a NULL text, is MB_ERR_INVALID_ARGUMENT. Texts are tokenized with special tokens; a text longer than the
 *   model's max length is MB_ERR_TOO_LONG unless the model was loaded with `truncate`; invalid
 *   UTF-8 is MB_ERR_TOKENIZER unless loaded with `lossy_utf8` (then U+FFFD); an empty text is
 *   MB_ERR_INPUT.
 *
 * Threads: an mb_model may be used from several threads at once; calls on one model are serialised
 *   by its internal mutex (each call already uses every core). Use one model per thread for
 *   concurrent forwards. mb_model_options.threads is process-wide. mb_model_free must not race with
 *   calls on the same model. Result objects are plain data: read them from any thread.
 *
 * Link: -lmodernbert (pkg-config --cflags --libs modernbert, or find_package(modernbert)). The
 *   library is C++ inside: the shared one brings its C++ runtime along; a static link also needs
 *   the C++ runtime and the third-party libraries (pkg-config --static --libs modernbert).
 */
#ifndef MODERNBERT_H
#define MODERNBERT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MB_API __attribute__((visibility("default")))
#else
#define MB_API
#endif

/* The version of this header; mb_version() gives the library's (the CMake project version). */
#define MODERNBERT_VERSION_MAJOR 0
#define MODERNBERT_VERSION_MINOR 1
#define MODERNBERT_VERSION_PATCH 0
#define MODERNBERT_VERSION_STRING "0.1.0"

/* ---- errors ----------------------------------------------------------------------------------- */

typedef enum mb_status {
  MB_OK = 0,
  MB_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, bad count, unknown dtype/prompt/mode, dim out of range */
  MB_ERR_LOAD = 2,             /* the model directory is missing, unreadable or invalid */
  MB_ERR_UNSUPPORTED = 3,      /* the model lacks what the call needs (tokenizer, MLM or classifier head) */
  MB_ERR_INPUT = 4,            /* a text was refused (empty, no [MASK] for fill-mask, ...): see index */
  MB_ERR_TOO_LONG = 5,         /* a text exceeds the model's max length and truncate is off: see index */
  MB_ERR_TOKENIZER = 6,        /* a text could not be tokenized (invalid UTF-8, ...): see index */
  MB_ERR_OUT_OF_MEMORY = 7,    /* an allocation failed */
  MB_ERR_INTERNAL = 8          /* anything else (a bug: please report the message) */
} mb_status;

/* "MB_OK", "MB_ERR_INVALID_ARGUMENT", ... for an mb_status; "MB_ERR_UNKNOWN" for any other value.
 * Never NULL. */
MB_API const char* mb_status_name(int status);
/* The message of the last failed call on this thread ("" if none). Valid until the next failed call
 * on this thread. Never NULL. */
MB_API const char* mb_last_error_message(void);
/* The index (into the call's texts) of the text that made the last failed call on this thread fail,
 * or -1 when that failure was not about one text. */
MB_API int64_t mb_last_error_input_index(void);

/* The library's version, "MAJOR.MINOR.PATCH" (static string). */
MB_API const char* mb_version(void);

/* ---- the model -------------------------------------------------------------------------------- */

typedef struct mb_model mb_model; /* opaque */

typedef struct mb_model_options {
  size_t struct_size;       /* sizeof(mb_model_options), set by mb_model_options_default(): a library
                               refuses options from a header whose struct differs from its own */
  const char* dtype;        /* "f32" | "bf16" | "f16" | "int8" (also "float32", "fp16", ...); NULL or
                               "" = f32 for a float checkpoint, the stored type for a quantized one */
  int threads;              /* kernel threads, process-wide; 0 = all cores */
  int64_t max_batch_tokens; /* token budget of one forward (default 16384; a longer text runs alone) */
  int64_t batch_size;       /* > 0: also at most this many texts per forward (default 0) */
  int truncate;             /* nonzero: cut over-long texts (keeping the final [SEP]) instead of failing */
  int lossy_utf8;           /* nonzero: invalid UTF-8 becomes U+FFFD instead of MB_ERR_TOKENIZER */
} mb_model_options;

/* The defaults above, with struct_size set. Always start from these. */
MB_API mb_model_options mb_model_options_default(void);

/* Loads the model directory `dir` (config.json, *.safetensors, tokenizer.json, sentence-transformers
 * files) into a new model, *out. `opts` NULL = defaults.
 * Errors: MB_ERR_INVALID_ARGUMENT (dir or out NULL, unknown dtype, bad struct_size, threads < 0,
 * max_batch_tokens < 1, batch_size < 0), MB_ERR_LOAD (the directory: the message names the file). */
MB_API mb_status mb_model_load(const char* dir, const mb_model_options* opts, mb_model** out);
/* Frees the model (NULL: no-op). Result objects stay valid. */
MB_API void mb_model_free(mb_model* model);

/* What the loaded model is and can do. Owned by the model; strings and arrays valid until it is
 * freed. Fields may be appended in later versions (never reordered). */
typedef struct mb_model_info {
  const char* dir;
  int64_t hidden_size, num_layers, vocab_size, max_length; /* max_length: max_position_embeddings */
  int64_t embedding_dim;    /* columns of mb_embed's / mb_embed_tokens' rows (Dense output or hidden) */
  const char* stored_dtype; /* of the files: "F32", "BF16", ... */
  const char* precision;    /* held and computed in: "f32" | "bf16" | "f16" | "int8" */
  int has_tokenizer, has_mlm;
  int has_classifier;       /* sequence classification (incl. cross-encoder rerankers) */
  int has_token_classifier; /* token classification */
  int has_colbert;          /* a Dense projection: per-token ColBERT vectors */
  int64_t num_labels;
  const char* problem_type;       /* "regression" | "single_label_classification" | ... | "" */
  const char* const* label_names; /* [num_labels]: id2label in id order ("LABEL_i" where absent) */
  const char* pooling;            /* "cls" | "mean" | "max": the default of mb_embed */
  int normalize;                  /* the model has a Normalize module (embeddings always normalised) */
  size_t num_prompts;
  const char* const* prompt_names; /* [num_prompts]: config_sentence_transformers.json, sorted */
  const char* const* prompt_texts; /* [num_prompts]: the prefix each prompt prepends */
  const char* default_prompt_name; /* "" if none */
  const char* query_prefix;        /* PyLate ColBERT "[Q] ", "" otherwise */
  const char* document_prefix;     /* PyLate ColBERT "[D] ", "" otherwise */
} mb_model_info;

/* *out = the model's info. Errors: MB_ERR_INVALID_ARGUMENT (a NULL argument). */
MB_API mb_status mb_model_get_info(const mb_model* model, const mb_model_info** out);

/* ---- tokenize --------------------------------------------------------------------------------- */

typedef struct mb_encoding mb_encoding; /* opaque, library-owned */

/* Tokenizes one text (with [CLS]/[SEP] when add_special_tokens is nonzero) into *out. No length
 * check (a model loaded with truncate cuts to its max length). Errors: MB_ERR_INVALID_ARGUMENT (NULL),
 * MB_ERR_UNSUPPORTED (no tokenizer.json), MB_ERR_TOKENIZER (invalid UTF-8 without lossy_utf8; index 0). */
MB_API mb_status mb_tokenize(mb_model* model, const char* text, int add_special_tokens, mb_encoding** out);
MB_API size_t mb_encoding_size(const mb_encoding* e);                 /* tokens, n; 0 for NULL */
MB_API const int32_t* mb_encoding_ids(const mb_encoding* e);          /* [n] token ids */
MB_API const size_t* mb_encoding_offsets(const mb_encoding* e);       /* [n][2] UTF-8 byte [start, end) */
MB_API const uint8_t* mb_encoding_special_mask(const mb_encoding* e); /* [n] 1 = special token */
MB_API void mb_encoding_free(mb_encoding* e);

/* ---- sentence embeddings ---------------------------------------------------------------------- */

typedef enum mb_pooling {
  MB_POOLING_DEFAULT = 0, /* the model's (sentence-transformers Pooling, else config.json) */
  MB_POOLING_CLS = 1,
  MB_POOLING_MEAN = 2,
  MB_POOLING_MAX = 3
} mb_pooling;

/* Options of mb_embed(), as `modernbert embed` and sentence-transformers' encode(). */
typedef struct mb_embed_params {
  const char* prompt_name; /* a prompt of config_sentence_transformers.json; NULL or "" = the model's
                              default prompt, if any; unknown = MB_ERR_INVALID_ARGUMENT */
  const char* prefix;      /* prepended after the prompt (NULL = none) */
  int normalize;           /* nonzero: L2-normalise (a model with a Normalize module always does) */
  int64_t dim;             /* Matryoshka: keep the first dim columns (re-normalised); 0 = all */
  int pooling;             /* an mb_pooling: override the model's pooling */
  int64_t batch_size;      /* > 0: at most this many texts per forward (else the model's option) */
  int no_default_prompt;   /* nonzero: with prompt_name NULL or "", no prompt at all; the model's
                              default prompt is left out (sentence-transformers' encode(prompt=...)) */
} mb_embed_params;
MB_API mb_embed_params mb_embed_params_default(void); /* all zero / NULL */

typedef struct mb_embeddings mb_embeddings; /* opaque, library-owned: a row-major float matrix */

/* Sentence embeddings of n texts: *out is [n, D] (D = dim if set, else info.embedding_dim), row i
 * for texts[i]. `params` NULL = defaults. Errors: MB_ERR_INVALID_ARGUMENT (NULL, unknown prompt,
 * dim < 0 or > D, bad pooling), MB_ERR_UNSUPPORTED (no tokenizer), the text errors (Texts above). */
MB_API mb_status mb_embed(mb_model* model, const char* const* texts, size_t n, const mb_embed_params* params,
                          mb_embeddings** out);
MB_API size_t mb_embeddings_rows(const mb_embeddings* e);       /* n; 0 for NULL */
MB_API size_t mb_embeddings_cols(const mb_embeddings* e);       /* D; 0 for NULL */
MB_API const float* mb_embeddings_data(const mb_embeddings* e); /* [rows * cols], row-major */
MB_API void mb_embeddings_free(mb_embeddings* e);

/* ---- per-token vectors (ColBERT) -------------------------------------------------------------- */

typedef struct mb_token_params {
  int is_query;       /* PyLate ColBERT: the query treatment ([Q] prefix, [MASK] expansion) vs document */
  const char* prefix; /* prepended to every text after any PyLate prefix (NULL = none) */
} mb_token_params;

typedef struct mb_token_embeddings mb_token_embeddings; /* opaque, library-owned */

/* Per-token vectors of n texts: the L2-normalised ColBERT projection when info.has_colbert, else
 * the L2-normalised final hidden states (as `modernbert embed --colbert`). All texts' tokens
 * (special ones included) are stacked in one [total, D] matrix (D = info.embedding_dim); text i
 * owns rows offsets[i] .. offsets[i+1]-1. `params` NULL = document treatment, no prefix.
 * Errors: MB_ERR_INVALID_ARGUMENT, MB_ERR_UNSUPPORTED (no tokenizer), the text errors. */
MB_API mb_status mb_embed_tokens(mb_model* model, const char* const* texts, size_t n, const mb_token_params* params,
                                 mb_token_embeddings** out);
/* The raw final hidden states (after the final norm) of n texts, [total, hidden_size], in the
 * same layout (no prefix, no ColBERT treatment). Errors as mb_embed_tokens. */
MB_API mb_status mb_hidden_states(mb_model* model, const char* const* texts, size_t n, mb_token_embeddings** out);
MB_API size_t mb_token_embeddings_count(const mb_token_embeddings* t);           /* n texts; 0 for NULL */
MB_API size_t mb_token_embeddings_rows(const mb_token_embeddings* t);            /* total tokens */
MB_API size_t mb_token_embeddings_cols(const mb_token_embeddings* t);            /* D */
MB_API const float* mb_token_embeddings_data(const mb_token_embeddings* t);      /* [rows * cols] */
MB_API const int64_t* mb_token_embeddings_offsets(const mb_token_embeddings* t); /* [count + 1] */
MB_API void mb_token_embeddings_free(mb_token_embeddings* t);

/* ---- sequence classification ------------------------------------------------------------------ */

typedef struct mb_classifications mb_classifications; /* opaque, library-owned */

/* Classifies n texts, or the n pairs (texts[i], pairs[i]) when `pairs` is not NULL (cross-encoders;
 * `pairs` then holds n texts too). Errors: MB_ERR_INVALID_ARGUMENT, MB_ERR_UNSUPPORTED (no
 * classifier head or tokenizer), the text errors (the index names the pair). */
MB_API mb_status mb_classify(mb_model* model, const char* const* texts, const char* const* pairs, size_t n,
                             mb_classifications** out);
MB_API size_t mb_classifications_count(const mb_classifications* c);        /* n; 0 for NULL */
MB_API size_t mb_classifications_num_labels(const mb_classifications* c);   /* L = info.num_labels */
MB_API const float* mb_classifications_logits(const mb_classifications* c); /* [n * L] row-major */
/* [n * L]: softmax (single label), sigmoid (multi label) or the logits (regression) */
MB_API const float* mb_classifications_scores(const mb_classifications* c);
MB_API const int64_t* mb_classifications_labels(const mb_classifications* c); /* [n]: argmax; -1 unless single label */
/* Multi-label: the label indices of text i whose score > 0.5 (*count of them; NULL and 0 if i >= n). */
MB_API const int64_t* mb_classifications_multi_labels(const mb_classifications* c, size_t i, size_t* count);
MB_API void mb_classifications_free(mb_classifications* c);

/* ---- token classification --------------------------------------------------------------------- */

typedef struct mb_token_label {
  int64_t index;     /* token position in the sequence (special tokens counted) */
  int32_t id;        /* token id */
  const char* token; /* the token decoded alone */
  size_t start, end; /* UTF-8 byte offsets [start, end) into the text */
  int64_t label;     /* argmax label (info.label_names[label]) */
  float score;       /* its softmax probability */
} mb_token_label;

typedef struct mb_token_labels mb_token_labels; /* opaque, library-owned */

/* Labels the non-special tokens of each of n texts. Errors: MB_ERR_INVALID_ARGUMENT,
 * MB_ERR_UNSUPPORTED (no token-classification head or tokenizer), the text errors. */
MB_API mb_status mb_classify_tokens(mb_model* model, const char* const* texts, size_t n, mb_token_labels** out);
MB_API size_t mb_token_labels_count(const mb_token_labels* t); /* n; 0 for NULL */
/* The tokens of text i (*count of them; NULL and 0 if i >= n). */
MB_API const mb_token_label* mb_token_labels_get(const mb_token_labels* t, size_t i, size_t* count);
MB_API void mb_token_labels_free(mb_token_labels* t);

/* ---- fill-mask -------------------------------------------------------------------------------- */

typedef struct mb_mask_prediction {
  int32_t token;         /* token id */
  const char* token_str; /* decoded as Hugging Face decodes it (a leading space included) */
  float score;           /* softmax probability */
  const char* sequence;  /* the text with this fill, special tokens skipped */
} mb_mask_prediction;

typedef struct mb_mask {
  int64_t position;                      /* token index of the [MASK] in the sequence */
  size_t num_predictions;                /* top_k (or the vocabulary size, if smaller) */
  const mb_mask_prediction* predictions; /* best first */
} mb_mask;

typedef struct mb_fill_mask_result mb_fill_mask_result; /* opaque, library-owned */

/* The top_k fills of every [MASK] of each of n texts. Errors: MB_ERR_INVALID_ARGUMENT (top_k < 1),
 * MB_ERR_UNSUPPORTED (no MLM head or tokenizer), MB_ERR_INPUT (a text without [MASK]), the text
 * errors. */
MB_API mb_status mb_fill_mask(mb_model* model, const char* const* texts, size_t n, int64_t top_k,
                              mb_fill_mask_result** out);
MB_API size_t mb_fill_mask_count(const mb_fill_mask_result* r); /* n; 0 for NULL */
/* The masks of text i, in text order (*count of them; NULL and 0 if i >= n). */
MB_API const mb_mask* mb_fill_mask_get(const mb_fill_mask_result* r, size_t i, size_t* count);
MB_API void mb_fill_mask_free(mb_fill_mask_result* r);

/* ---- rerank ----------------------------------------------------------------------------------- */

typedef enum mb_rerank_mode {
  MB_RERANK_AUTO = 0,          /* cross-encoder if a classifier, else ColBERT if a projection, else embedding */
  MB_RERANK_CROSS_ENCODER = 1, /* sigmoid of the classifier's logit (of the last label's probability) */
  MB_RERANK_COLBERT = 2,       /* MaxSim of the query's and the text's token vectors */
  MB_RERANK_EMBEDDING = 3      /* cosine of the sentence embeddings */
} mb_rerank_mode;

typedef struct mb_rerank_params {
  int mode;                         /* an mb_rerank_mode */
  const char* query_prompt_name;    /* embedding mode: prompt for the query (NULL = the default) */
  const char* document_prompt_name; /* embedding mode: prompt for the texts (NULL = the default) */
  int64_t top_n;                    /* keep the best top_n; 0 = all */
} mb_rerank_params;

typedef struct mb_rerank_hit {
  int64_t index; /* into the texts given */
  float score;
} mb_rerank_hit;

typedef struct mb_rerank_result mb_rerank_result; /* opaque, library-owned */

/* Orders n texts by relevance to `query`, best first (ties: input order). `params` NULL = auto, all.
 * Errors: MB_ERR_INVALID_ARGUMENT (NULL, bad mode, top_n < 0, unknown prompt, a prompt outside the
 * embedding mode), MB_ERR_UNSUPPORTED
 * (cross-encoder mode without a classifier; no tokenizer), the text errors of the texts (in
 * cross-encoder mode, of the (query, texts[i]) pair: index i); an empty query, or one refused alone
 * (ColBERT and embedding modes), is MB_ERR_INVALID_ARGUMENT (index -1, the message says "query"). */
MB_API mb_status mb_rerank(mb_model* model, const char* query, const char* const* texts, size_t n,
                           const mb_rerank_params* params, mb_rerank_result** out);
MB_API size_t mb_rerank_count(const mb_rerank_result* r);              /* hits; 0 for NULL */
MB_API const mb_rerank_hit* mb_rerank_hits(const mb_rerank_result* r); /* [count], best first */
MB_API void mb_rerank_free(mb_rerank_result* r);

#ifdef __cplusplus
}
#endif

#endif /* MODERNBERT_H */
