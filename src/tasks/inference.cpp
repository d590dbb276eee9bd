// The inference API (modernbert/inference.h). STUB: the interface is fixed; the implementation
// lands on branch `api`.
#include "modernbert/inference.h"

namespace modernbert {

struct Model::Impl {
  ModelInfo info;
};

namespace {
[[noreturn]] void not_yet() { throw Error("modernbert::Model: not implemented yet"); }
}  // namespace

Model::Model(const std::string&, const ModelOptions&) { not_yet(); }
Model::~Model() = default;
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
const ModelInfo& Model::info() const { return impl_->info; }
const Tokenizer* Model::tokenizer() const { return nullptr; }
Encoding Model::tokenize(const std::string&, bool) const { not_yet(); }
TokenVectors Model::hidden_states(const std::vector<std::string>&) { not_yet(); }
Matrix Model::embed(const std::vector<std::string>&, const EmbedParams&) { not_yet(); }
TokenVectors Model::embed_tokens(const std::vector<std::string>&, const TokenParams&) { not_yet(); }
std::vector<Classification> Model::classify(const std::vector<std::string>&, const std::vector<std::string>&) {
  not_yet();
}
std::vector<std::vector<TokenLabel>> Model::classify_tokens(const std::vector<std::string>&) { not_yet(); }
std::vector<std::vector<MaskResult>> Model::fill_mask(const std::vector<std::string>&, int64_t) { not_yet(); }
std::vector<RerankHit> Model::rerank(const std::string&, const std::vector<std::string>&, const RerankParams&) {
  not_yet();
}

}  // namespace modernbert
