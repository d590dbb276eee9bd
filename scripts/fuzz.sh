#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (library included, with -fsanitize=fuzzer-no-link,address)
# and runs each for a given time.
#   scripts/fuzz.sh [SECONDS_PER_TARGET=300] [TARGET...]
# Needs clang and libclang-rt-14-dev (apt). Findings (crash-*, leak-*, timeout-*) land in
# build-fuzz/artifacts/<target>/; corpora grow in build-fuzz/corpus/<target>/.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-300}"; shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(fuzz_tokenizer_load fuzz_tokenizer_encode)
build="${MB_FUZZ_BUILD:-$here/build-fuzz}"
shared="${MB_SHARED_DATA:-$here/../shared/data}"
command -v clang++ >/dev/null || { echo "clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }

# MB_FUZZ_DIRECT=1 skips the CMake build of the whole library (slow with ASan on a busy machine)
# and compiles the targets from the tokenizer sources directly.
direct="${MB_FUZZ_DIRECT:-0}"
if [[ $direct != 1 ]]; then
  cmake -S "$here" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMODERNBERT_FUZZ=ON -DMODERNBERT_TESTS=OFF -DMODERNBERT_BENCH=OFF >/dev/null
  cmake --build "$build" -j"${MB_JOBS:-2}" --target "${targets[@]}" || direct=1
fi
mkdir -p "$build"
if [[ $direct == 1 ]]; then
  # The fuzz targets link the whole library; if some unrelated part of it does not build with
  # clang right now, build the targets from the tokenizer sources alone with the same flags.
  echo "fuzz.sh: building ${targets[*]} from src/tokenizer only" >&2
  flags=(-std=c++20 -O1 -g -fno-omit-frame-pointer -I"$here/include" -I"$here/src")
  mkdir -p "$build/direct"
  objs=()
  for src in "$here"/src/tokenizer/*.cpp; do
    o="$build/direct/$(basename "$src" .cpp).o"
    clang++ "${flags[@]}" -fsanitize=fuzzer-no-link,address,undefined -c "$src" -o "$o" &
    objs+=("$o")
  done
  wait
  for t in "${targets[@]}"; do
    clang++ "${flags[@]}" -fsanitize=fuzzer,address,undefined "$here/fuzz/$t.cpp" "${objs[@]}" -licuuc -o "$build/$t"
  done
fi

export MB_FUZZ_TOKENIZER="${MB_FUZZ_TOKENIZER:-$shared/modernbert-tokenizer/tokenizer.json}"
status=0
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"; art="$build/artifacts/$t"
  mkdir -p "$corpus" "$art"
  # Seeds: the committed trained tokenizer.json files for the loader; test texts for encode.
  if [[ $t == fuzz_tokenizer_load ]]; then
    for f in "$here"/tests/data/tokenizer/*/tokenizer.json; do [[ -f $f ]] && cp -f "$f" "$corpus/seed_$(basename "$(dirname "$f")").json"; done
    dict=(); max_len=(-max_len=200000)
  else
    python3 - "$shared/modernbert-tokenizer/testcases/cases.jsonl" "$corpus" <<'PY'
import json, sys
for i, l in enumerate(open(sys.argv[1], encoding="utf-8")):
    d = json.loads(l)
    open(f"{sys.argv[2]}/seed_{i}", "wb").write(bytes([i % 16]) + d["text"].encode())
PY
    dict=(); max_len=(-max_len=4096)
  fi
  echo "== $t for ${secs}s"
  if ! (cd "$art" && "$build/$t" "$corpus" -max_total_time="$secs" -timeout=20 -rss_limit_mb=4096 \
        -print_final_stats=1 "${max_len[@]}" ${dict[@]+"${dict[@]}"} -artifact_prefix="$art/"); then
    echo "!! $t found a problem; see $art" >&2; status=1
  fi
done
exit $status
