// Tiny checkpoints laid out like the five Hugging Face repositories the README's quick start uses
// (same file names, config keys, sentence-transformers / PyLate files); what each real layout is
// and how it was established is written at the top of hf_layout_fixtures.cpp.
#pragma once

#include <string>
#include <vector>

namespace mbtest::hf {

// The Hugging Face ids, in README order:
//   answerdotai/ModernBERT-base, nomic-ai/modernbert-embed-base, Alibaba-NLP/gte-modernbert-base,
//   Alibaba-NLP/gte-reranker-modernbert-base, lightonai/GTE-ModernColBERT-v1.
const std::vector<std::string>& repos();

// Writes the tiny stand-in of `repo` into `dir` (created): `modernbert init` weights (seeded, so
// the same bytes every time), tests/data/modernbert-tokenizer/tokenizer.json (plus PyLate's "[Q] " /
// "[D] " added tokens for the ColBERT model) and the repository's side files. Fails the calling
// test (ADD_FAILURE) and returns false when a step fails.
bool write_fixture(const std::string& repo, const std::string& dir);

}  // namespace mbtest::hf
