// Embeds two texts and reranks documents against a query with modernbert::Model (inference.h).
//
//   embed_and_rerank MODEL_DIR
//
// MODEL_DIR is a ModernBERT checkpoint directory (config.json, model.safetensors, tokenizer.json and
// any sentence-transformers files), e.g. a `git clone` of nomic-ai/modernbert-embed-base.
// Prints the embedding shape, the cosine of the two texts, then the ranked documents, best first.
#include <cmath>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "modernbert/inference.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
    return 2;
  }
  try {
    modernbert::Model model(argv[1]);  // ModelOptions: precision, threads, truncate, ...

    // Sentence embeddings [2, D], L2-normalised so that their dot product is the cosine.
    modernbert::EmbedParams ep;
    ep.normalize = true;
    const modernbert::Matrix e = model.embed({"The cat sat on the mat.", "A cat is sitting on a rug."}, ep);
    double cosine = 0;
    for (int64_t k = 0; k < e.cols; ++k) cosine += double(e.row(0)[k]) * e.row(1)[k];
    std::printf("embeddings: %lld x %lld\n", static_cast<long long>(e.rows), static_cast<long long>(e.cols));
    std::printf("cosine: %.6f\n", cosine);

    // Documents by relevance to the query: the model's classifier when it is a cross-encoder,
    // ColBERT MaxSim when it has a projection, else the cosine of sentence embeddings.
    const std::vector<std::string> docs = {"Paris is the capital of France.", "Cats like to sleep.",
                                           "The Eiffel Tower is in Paris."};
    for (const modernbert::RerankHit& hit : model.rerank("Where is the Eiffel Tower?", docs))
      std::printf("%lld\t%.6f\t%s\n", static_cast<long long>(hit.index), hit.score, docs[hit.index].c_str());
    return 0;
  } catch (const std::exception& ex) {
    std::fprintf(stderr, "error: %s\n", ex.what());
    return 1;
  }
}
