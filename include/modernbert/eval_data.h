// Evaluation data: labelled JSONL examples, retrieval corpus and queries, the search scopes of the
// retrieval protocols, scoring rankings into a report block, and a checkpoint's label space.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "modernbert/config.h"

namespace modernbert {

// One JSONL record with its text(s). Lines are 1-based.
struct Example {
  size_t line = 0;
  std::string text, text_pair;
  bool has_pair = false;
  nlohmann::json record;
};
// Reads every non-blank line as a JSON object with a string `text_field` (and optional
// `pair_field`). Throws naming file:line for bad lines; an empty file is an error. lossy_utf8:
// invalid UTF-8 is replaced by U+FFFD instead of failing (for_each_jsonl), here and below.
std::vector<Example> read_examples(const std::string& path, const std::string& text_field = "text",
                                   const std::string& pair_field = "text_pair", bool lossy_utf8 = false);

struct RetrievalDoc {
  std::string id, text, split;
};
struct RetrievalQuery {
  std::string qid, query;
  std::vector<std::string> positive_ids;
};
// corpus.jsonl: {"id", "text"[, "split"]}; queries: {"qid", "query", "positive_ids": [...]}.
// Duplicate ids are errors; empty files are errors.
std::vector<RetrievalDoc> read_corpus(const std::string& path, bool lossy_utf8 = false);
std::vector<RetrievalQuery> read_queries(const std::string& path, bool lossy_utf8 = false);

// Which documents a protocol searches: "closed" = the documents whose split equals `split`,
// "full" = all of them, "both" = one scope of each.
enum class ScopeMode { kClosed, kFull, kBoth };
// "closed" | "full" | "both"; throws "scope must be closed, full or both, got 'X'" otherwise.
ScopeMode parse_scope_mode(const std::string& s);
struct SearchScope {
  std::string name;               // "closed:test" | "full"
  std::vector<int64_t> doc_rows;  // indices into the corpus
};
// The scopes of `mode` in the order closed, full (closed needs a split).
std::vector<SearchScope> make_scopes(const std::vector<RetrievalDoc>& corpus, ScopeMode mode, const std::string& split);

// Ranks (indices into scope.doc_rows order) -> metrics, given the queries' positive ids. Positives
// absent from the scope are counted; a query with none present is skipped and counted.
// Returns the JSON block of one scope.
nlohmann::json score_rankings(const std::vector<RetrievalDoc>& corpus, const SearchScope& scope,
                              const std::vector<RetrievalQuery>& queries,
                              const std::vector<std::vector<int64_t>>& rankings);

// Label names of a checkpoint's classifier: id2label when present, else LABEL_i.
struct LabelSpace {
  std::vector<std::string> names;
  std::map<std::string, int64_t> index;  // name -> id (also label2id's spellings)
  bool named = false;                    // id2label has names other than LABEL_i
};
LabelSpace label_space(const ModelConfig& cfg, int64_t num_labels);
// A label value from the data: an integer id (must be < names.size()) or a name that must be in
// the label space. Throws naming `where` and the valid labels.
int64_t resolve_label(const nlohmann::json& v, const LabelSpace& ls, const std::string& where);

}  // namespace modernbert
