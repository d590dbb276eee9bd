// The BPE model: merges of one pre-token over its raw bytes.
#include <algorithm>

#include "tokenizer/tokenizer_impl.h"

namespace modernbert {

// BPE::merge_word + Word::merge_all, exactly: symbols in a doubly linked list, a min-heap of
// candidate merges ordered by (rank, position), stale entries skipped when the pair at that
// position no longer yields the same new id.
void Tokenizer::Impl::bpe(std::string_view word, std::vector<std::pair<std::int32_t, std::uint32_t>>& out) const {
  if (ignore_merges) {
    auto it = raw_vocab.find(std::string(word));
    if (it != raw_vocab.end()) {
      out.emplace_back(it->second, static_cast<std::uint32_t>(word.size()));
      return;
    }
  }
  struct Sym {
    std::int32_t id;
    std::int32_t prev, next;
    std::uint32_t len;
  };
  thread_local std::vector<Sym> syms;
  syms.clear();
  std::int32_t pending_unk_len = -1;
  auto push = [&](std::int32_t id, std::uint32_t len) {
    std::int32_t idx = static_cast<std::int32_t>(syms.size());
    syms.push_back({id, idx - 1, -1, len});
    if (idx > 0) syms[idx - 1].next = idx;
  };
  for (unsigned char b : word) {
    std::int32_t id = byte_id[b];
    if (id >= 0) {
      if (pending_unk_len >= 0) {
        push(unk_id, static_cast<std::uint32_t>(pending_unk_len));
        pending_unk_len = -1;
      }
      push(id, 1);
    } else if (unk_id >= 0) {
      if (pending_unk_len >= 0 && fuse_unk) {
        pending_unk_len += 1;
      } else {
        if (pending_unk_len >= 0) push(unk_id, static_cast<std::uint32_t>(pending_unk_len));
        pending_unk_len = 1;
      }
    }
    // No unk token: HF drops the character.
  }
  if (pending_unk_len >= 0) push(unk_id, static_cast<std::uint32_t>(pending_unk_len));

  struct Cand {
    std::uint32_t rank;
    std::int32_t pos;
    std::int32_t new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<Cand> heap;
  heap.clear();
  auto cmp = [](const Cand& a, const Cand& b) { return a > b; };
  for (std::size_t i = 0; i + 1 < syms.size(); ++i) {
    if (auto* m = merges.find(tok::MergeMap::make_key(syms[i].id, syms[i + 1].id)))
      heap.push_back({m->rank, static_cast<std::int32_t>(i), m->new_id});
  }
  std::make_heap(heap.begin(), heap.end(), cmp);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), cmp);
    Cand top = heap.back();
    heap.pop_back();
    Sym& cur = syms[top.pos];
    if (cur.len == 0 || cur.next < 0) continue;
    std::int32_t next_pos = cur.next;
    Sym& right = syms[next_pos];
    auto* m = merges.find(tok::MergeMap::make_key(cur.id, right.id));
    if (!m || m->new_id != top.new_id) continue;
    cur.id = top.new_id;
    cur.len += right.len;
    cur.next = right.next;
    right.len = 0;
    if (cur.next >= 0) syms[cur.next].prev = top.pos;
    if (cur.prev >= 0) {
      if (auto* pm = merges.find(tok::MergeMap::make_key(syms[cur.prev].id, cur.id))) {
        heap.push_back({pm->rank, cur.prev, pm->new_id});
        std::push_heap(heap.begin(), heap.end(), cmp);
      }
    }
    if (cur.next >= 0) {
      if (auto* nm = merges.find(tok::MergeMap::make_key(cur.id, syms[cur.next].id))) {
        heap.push_back({nm->rank, top.pos, nm->new_id});
        std::push_heap(heap.begin(), heap.end(), cmp);
      }
    }
  }
  for (const Sym& s : syms)
    if (s.len > 0) out.emplace_back(s.id, s.len);
}

}  // namespace modernbert
