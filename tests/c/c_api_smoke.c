/* c_api_smoke: the C API used from C (C11, -Wall -Wextra -Wpedantic -Werror; CTest c_api.smoke).
 *   c_api_smoke MODEL_DIR VERSION
 * Loads the tiny test model, embeds two texts, checks the shape, finiteness and normalisation,
 * checks mb_version() against the CMake project version (VERSION) and one error path (an unknown
 * dtype), and that every *_free accepts NULL. Exit 0 = pass; a failure says what on stderr. */
#include <math.h>
#include <modernbert.h>
#include <stdio.h>
#include <string.h>

static int failures = 0;
#define CHECK(cond)                                                     \
  do {                                                                  \
    if (!(cond)) {                                                      \
      fprintf(stderr, "c_api_smoke:%d: FAILED: %s\n", __LINE__, #cond); \
      ++failures;                                                       \
    }                                                                   \
  } while (0)

int main(int argc, char** argv) {
  mb_model* model = NULL;
  mb_model_options opts;
  const mb_model_info* info = NULL;
  mb_embeddings* emb = NULL;
  mb_embed_params params;
  const char* texts[] = {"hello world", "ModernBERT from plain C"};
  size_t r, c;

  if (argc != 3) {
    fprintf(stderr, "usage: %s MODEL_DIR VERSION\n", argv[0]);
    return 2;
  }
  CHECK(strcmp(mb_version(), argv[2]) == 0);
  CHECK(strcmp(mb_version(), MODERNBERT_VERSION_STRING) == 0);

  /* An error path: an unknown dtype is refused before anything is read. */
  opts = mb_model_options_default();
  opts.dtype = "f64";
  CHECK(mb_model_load(argv[1], &opts, &model) == MB_ERR_INVALID_ARGUMENT);
  CHECK(model == NULL);
  CHECK(strstr(mb_last_error_message(), "f64") != NULL);
  CHECK(strcmp(mb_status_name(MB_ERR_INVALID_ARGUMENT), "MB_ERR_INVALID_ARGUMENT") == 0);

  opts = mb_model_options_default();
  opts.threads = 1;
  if (mb_model_load(argv[1], &opts, &model) != MB_OK) {
    fprintf(stderr, "c_api_smoke: load failed: %s\n", mb_last_error_message());
    return 1;
  }
  CHECK(mb_model_get_info(model, &info) == MB_OK);
  CHECK(info != NULL && info->hidden_size > 0 && info->has_tokenizer);

  params = mb_embed_params_default();
  params.normalize = 1;
  if (mb_embed(model, texts, 2, &params, &emb) != MB_OK) {
    fprintf(stderr, "c_api_smoke: embed failed: %s\n", mb_last_error_message());
    mb_model_free(model);
    return 1;
  }
  CHECK(mb_embeddings_rows(emb) == 2);
  CHECK(info != NULL && mb_embeddings_cols(emb) == (size_t)info->embedding_dim);
  for (r = 0; r < mb_embeddings_rows(emb); ++r) {
    const float* row = mb_embeddings_data(emb) + r * mb_embeddings_cols(emb);
    double norm = 0;
    for (c = 0; c < mb_embeddings_cols(emb); ++c) {
      CHECK(isfinite(row[c]));
      norm += (double)row[c] * row[c];
    }
    CHECK(fabs(sqrt(norm) - 1.0) < 1e-4);
  }
  mb_embeddings_free(emb);
  mb_model_free(model);

  /* Freeing NULL is a no-op for every result type. */
  mb_model_free(NULL);
  mb_embeddings_free(NULL);
  mb_encoding_free(NULL);
  mb_token_embeddings_free(NULL);
  mb_classifications_free(NULL);
  mb_token_labels_free(NULL);
  mb_fill_mask_free(NULL);
  mb_rerank_free(NULL);

  if (failures == 0) printf("c_api_smoke: ok\n");
  return failures == 0 ? 0 : 1;
}
