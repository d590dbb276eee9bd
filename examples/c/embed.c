/* Sentence embeddings from C with modernbert.h.
 *
 *   cc embed.c $(pkg-config --cflags --libs modernbert) -o embed
 *   ./embed path/to/model "first text" "second text"
 *
 * Prints the embedding dimensions and the cosine similarity of the first two texts. */
#include <math.h>
#include <modernbert.h>
#include <stdio.h>

static double cosine(const float* a, const float* b, size_t d) {
  double ab = 0, aa = 0, bb = 0;
  size_t i;
  for (i = 0; i < d; ++i) {
    ab += (double)a[i] * b[i];
    aa += (double)a[i] * a[i];
    bb += (double)b[i] * b[i];
  }
  return ab / (sqrt(aa) * sqrt(bb));
}

int main(int argc, char** argv) {
  const char* fallback[] = {"The cat sat on the mat.", "A cat was sitting on a mat."};
  const char* const* texts = argc > 3 ? (const char* const*)(argv + 2) : fallback;
  size_t n = argc > 3 ? (size_t)(argc - 2) : 2;
  mb_model* model = NULL;
  mb_embeddings* emb = NULL;
  mb_status s;

  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL_DIR [TEXT TEXT...]\n", argv[0]);
    return 2;
  }
  /* NULL options: the defaults (f32 for a float checkpoint, every core). */
  s = mb_model_load(argv[1], NULL, &model);
  if (s != MB_OK) {
    fprintf(stderr, "%s: %s\n", mb_status_name(s), mb_last_error_message());
    return 1;
  }
  /* NULL params: the model's pooling, prompt and normalisation, as sentence-transformers. */
  s = mb_embed(model, texts, n, NULL, &emb);
  if (s != MB_OK) {
    fprintf(stderr, "%s: %s\n", mb_status_name(s), mb_last_error_message());
    mb_model_free(model);
    return 1;
  }
  printf("embeddings: %zu x %zu\n", mb_embeddings_rows(emb), mb_embeddings_cols(emb));
  printf("cosine(text 0, text 1) = %.4f\n",
         cosine(mb_embeddings_data(emb), mb_embeddings_data(emb) + mb_embeddings_cols(emb), mb_embeddings_cols(emb)));
  mb_embeddings_free(emb); /* results are the caller's to free, before or after the model */
  mb_model_free(model);
  return 0;
}
