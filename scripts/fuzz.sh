#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_*.cpp; bodies in fuzz/fuzz_entries.h) with clang, ASan
# and UBSan (library included, compiled with -fsanitize=fuzzer-no-link,address,undefined), seeds
# their corpora and runs them ONE AT A TIME (one fuzzing process at once).
#   scripts/fuzz.sh [SECONDS_PER_TARGET=600] [TARGET...]
# Targets: fuzz_safetensors_header fuzz_safetensors_file fuzz_config fuzz_tokenizer_load
#          fuzz_tokenizer_encode fuzz_eval_jsonl fuzz_finetune_jsonl (default: all)
# Needs clang and libclang-rt-14-dev (apt). Findings (crash-*, leak-*, timeout-*, oom-*) land in
# build-fuzz/artifacts/<target>/; corpora grow in build-fuzz/corpus/<target>/; logs in
# build-fuzz/logs/<target>.log. See docs/fuzzing.md.
#
# Environment:
#   MB_FUZZ_CMAKE=1   build through CMake (-DMODERNBERT_FUZZ=ON, clang): the whole library
#                     instrumented. The default ("direct") compiles only the sources each target
#                     exercises straight with clang++ (much faster on a busy machine);
#                     fuzz_finetune_jsonl then links the rest from build/libmodernbert.a.
#   MB_FUZZ_FORK=1    run in libFuzzer's fork mode with one worker (-fork=1), continuing past
#                     crashes/timeouts/OOMs so that one finding does not end the run; the default
#                     stops at the first finding.
#   MB_FUZZ_BUILD_ONLY=1  build, do not run;  MB_FUZZ_NO_BUILD=1  run what is built in $build.
#   MB_SHARED_DATA    seed data (default ../shared/data); the encode target loads the real
#                     tokenizer from there (or from MB_FUZZ_TOKENIZER).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
secs="${1:-600}"; shift || true
all=(fuzz_safetensors_header fuzz_safetensors_file fuzz_config fuzz_tokenizer_load fuzz_tokenizer_encode
     fuzz_eval_jsonl fuzz_finetune_jsonl)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all[@]}")
build="${MB_FUZZ_BUILD:-$here/build-fuzz}"
shared="${MB_SHARED_DATA:-$here/../shared/data}"
command -v clang++ >/dev/null || { echo "clang++ not found (apt-get install clang libclang-rt-14-dev)" >&2; exit 1; }
mkdir -p "$build/logs"

san=(-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g)
if [[ ${MB_FUZZ_NO_BUILD:-0} == 1 ]]; then
  :
elif [[ ${MB_FUZZ_CMAKE:-0} == 1 ]]; then
  cmake -S "$here" -B "$build/cmake" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMODERNBERT_FUZZ=ON -DMODERNBERT_TESTS=OFF -DMODERNBERT_BENCH=OFF >/dev/null
  cmake --build "$build/cmake" -j"${MB_JOBS:-2}" --target "${targets[@]}"
  for t in "${targets[@]}"; do cp -f "$build/cmake/$t" "$build/$t"; done
else
  # Direct build: each target from the library sources it exercises, compiled with the fuzzer's
  # coverage instrumentation and the sanitizers and cached in $build/direct. fuzz_finetune_jsonl
  # calls finetune(), which references the whole library (model, trainer) although it never gets
  # that far (the model directory does not exist): the code it runs (finetune*, eval data, config,
  # safetensors, tokenizer) is instrumented, the rest is taken from an ordinary library build
  # ($MB_FUZZ_LIB, default build/libmodernbert.a; objects given on the command line win over the
  # archive's members of the same source file).
  flags=(-std=c++20 -O1 -I"$here/include" -I"$here/src" "${san[@]}")
  sources_of() {
    case $1 in
      fuzz_tokenizer_*) ls "$here"/src/tokenizer/*.cpp ;;
      fuzz_safetensors_* | fuzz_config) ls "$here"/src/io/{safetensors,config,file_util}.cpp ;;
      fuzz_eval_jsonl) ls "$here"/src/io/{safetensors,config,file_util}.cpp "$here"/src/tasks/eval_{data,metrics}.cpp ;;
      fuzz_finetune_jsonl)
        ls "$here"/src/io/{safetensors,config,file_util}.cpp "$here"/src/tasks/eval_{data,metrics}.cpp \
          "$here"/src/tasks/finetune{,_retrieval}.cpp "$here"/src/tokenizer/*.cpp ;;
    esac
  }
  mkdir -p "$build/direct"
  for t in "${targets[@]}"; do
    objs=()
    for src in $(sources_of "$t"); do
      rel="${src#"$here"/src/}"; rel="${rel%.cpp}"; o="$build/direct/${rel//\//_}.o"
      if [[ ! -f $o || $src -nt $o ]]; then
        clang++ "${flags[@]}" -fsanitize=fuzzer-no-link -c "$src" -o "$o"
      fi
      objs+=("$o")
    done
    libs=(-licuuc)
    [[ $t == fuzz_eval_jsonl ]] && libs=(-lopenblas -licuuc)  # eval_metrics' exact search
    if [[ $t == fuzz_finetune_jsonl ]]; then
      lib="${MB_FUZZ_LIB:-$here/build/libmodernbert.a}"
      [[ -f $lib ]] || { echo "fuzz.sh: $t needs $lib (cmake --build build --target modernbert_lib)" >&2; exit 1; }
      libs=("$lib" -lopenblas -licuuc -lpthread)
      # (grep without -q: an early exit would kill nm with SIGPIPE and pipefail would say "no")
      if nm -A "$lib" 2>/dev/null | grep ' U dnnl_' >/dev/null; then libs+=(-ldnnl -fopenmp); fi
    fi
    clang++ "${flags[@]}" -fsanitize=fuzzer "$here/fuzz/$t.cpp" "${objs[@]}" "${libs[@]}" -o "$build/$t.tmp"
    mv -f "$build/$t.tmp" "$build/$t"
  done
fi
[[ ${MB_FUZZ_BUILD_ONLY:-0} == 1 ]] && exit 0

export MB_FUZZ_TOKENIZER="${MB_FUZZ_TOKENIZER:-$here/tests/data/modernbert-tokenizer/tokenizer.json}"
# UBSan reports must end the run like an ASan report (the targets' flags already make them fatal;
# halt_on_error also covers objects built without -fno-sanitize-recover).
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"

# Seeds: small real files (tests/data, $shared), hand-made valid files, and the committed
# regression corpus tests/data/fuzz/<target>/.
seed() {  # seed TARGET CORPUS_DIR
  python3 - "$1" "$2" "$here" "$shared" <<'PY'
import glob, json, os, struct, sys
t, out, here, shared = sys.argv[1:5]
n = 0
def put(data, name=None):
    global n
    if isinstance(data, str): data = data.encode()
    n += 1
    open(os.path.join(out, name or f"seed_{n:03d}"), "wb").write(data)
def lines(path, k):
    try:
        with open(path, encoding="utf-8") as f: return "".join(l for _, l in zip(range(k), f))
    except OSError: return ""
def st_file(tensors, meta=None):
    hdr, data = {}, b""
    if meta: hdr["__metadata__"] = meta
    for name, (dt, shape, raw) in tensors.items():
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(hdr, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + data, h
st = [st_file({"w": ("F32", [2, 2], struct.pack("<4f", 1, -2, 3.5, 0))}, {"format": "pt"}),
      st_file({"a": ("BF16", [3], b"\x80\x3f\x00\x40\xc0\x7f"), "b": ("I64", [2], struct.pack("<2q", 7, -1)),
               "c": ("F16", [1, 1], b"\x00\x3c"), "d": ("U8", [0], b"")}),
      st_file({"x": ("I32", [2], struct.pack("<2i", 1, 2)), "y": ("BOOL", [1], b"\x01"), "z": ("F64", [1], struct.pack("<d", 2.5))})]
if t == "fuzz_safetensors_file":
    for f, _ in st: put(f)
elif t == "fuzz_safetensors_header":
    for _, h in st: put(h)
elif t == "fuzz_config":
    for p in [f"{shared}/modernbert-tokenizer/config_modernbert-base_seqcls-finetune.json"] + \
             glob.glob(f"{here}/tests/data/**/config.json", recursive=True):
        if os.path.isfile(p) and os.path.getsize(p) < 100000: put(open(p, "rb").read())
    put('{"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":96,"vocab_size":512,'
        '"pad_token_id":0,"cls_token_id":1,"sep_token_id":2,"layer_types":["full_attention","sliding_attention"],'
        '"id2label":{"0":"neg","1":"pos"},"label2id":{"neg":0,"pos":1},"rope_parameters":{"rope_theta":10000}}')
elif t == "fuzz_tokenizer_load":
    for p in glob.glob(f"{here}/tests/data/tokenizer/*/tokenizer.json") + glob.glob(f"{here}/tests/data/tokenizer/variants/*.json"):
        put(open(p, "rb").read())
    put('{"pre_tokenizer":{"type":"ByteLevel"},"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]},'
        '"added_tokens":[{"id":3,"content":"[X]","special":true}]}')
elif t == "fuzz_tokenizer_encode":
    texts = []
    p = f"{shared}/modernbert-tokenizer/testcases/cases.jsonl"
    if os.path.isfile(p): texts += [json.loads(l)["text"] for l in open(p, encoding="utf-8")]
    texts += ["[CLS] hello [MASK]   world", "caf\u00e9 e\u0301 \U0001F600", "  \t\n"]
    for i, s in enumerate(texts): put(bytes([i % 16]) + s.encode()[:4000])
    put(bytes([0]) + b"\xff\xfe bad \xc3")
elif t == "fuzz_eval_jsonl":
    d = f"{shared}/downstream"
    put(b"\x00" + lines(f"{d}/rt_polarity/dev.jsonl", 5).encode())
    put(b"\x10" + b'{"text":"a","label":"pos"}\n{"text":"b","text_pair":"c","label":1}\n')
    put(b"\x01" + lines(f"{d}/manpages_retrieval/corpus.jsonl", 2).encode()[:3000])
    put(b"\x02" + lines(f"{d}/manpages_retrieval/queries_dev.jsonl", 5).encode())
    put(b"\x03" + b'{"id":"d1","text":"x","split":"test"}\n{"id":"d2","text":"y"}\n\x00'
        b'{"qid":"q1","query":"x","positive_ids":["d1","d9"]}\n{"qid":"q2","query":"z","positive_ids":["d7"]}\n')
elif t == "fuzz_finetune_jsonl":
    d = f"{shared}/downstream"
    cls = lines(f"{d}/rt_polarity/dev.jsonl", 4)
    put(b"\x00" + cls.encode())
    put(b"\x01" + b'{"text":"a","label":0.5}\n{"text":"b","label":[1]}\n')
    put(b"\x02" + b'{"text":"a","labels":[0,2]}\n{"text":"b","labels":[1]}\n')
    put(b"\x03" + b'{"tokens":["a","b"],"tags":["O","B-X"]}\n{"tokens":["c"],"tags":["O"]}\n')
    put(b"\x04" + b'{"query":"q","positive":"p"}\n{"query":"r","positive":["s","p"]}\n')
    put(b"\x0c" + b'{"id":"d1","text":"t","query":"q","positive_ids":["d1"]}\n')
    put(b"\x00" + lines(f"{d}/wordnet_supersense/dev.jsonl", 2).encode()[:3000])
for p in glob.glob(f"{here}/tests/data/fuzz/{t}/*"):
    put(open(p, "rb").read(), "committed_" + os.path.basename(p))
PY
}

status=0
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"; art="$build/artifacts/$t"
  mkdir -p "$corpus" "$art"
  seed "$t" "$corpus"
  case $t in
    fuzz_tokenizer_load) max_len=200000 ;;
    fuzz_safetensors_file | fuzz_finetune_jsonl | fuzz_eval_jsonl | fuzz_config) max_len=16384 ;;
    *) max_len=4096 ;;
  esac
  mode=()
  [[ ${MB_FUZZ_FORK:-0} == 1 ]] && mode=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  echo "== $t for ${secs}s (log: $build/logs/$t.log)"
  if ! (cd "$art" && "$build/$t" "$corpus" ${mode[@]+"${mode[@]}"} -max_total_time="$secs" -timeout=20 \
        -rss_limit_mb=4096 -max_len="$max_len" -print_final_stats=1 -artifact_prefix="$art/" \
        >"$build/logs/$t.log" 2>&1); then
    echo "!! $t found a problem; see $art and $build/logs/$t.log" >&2; status=1
  fi
  ls "$art" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' && status=1 || true
done
exit $status
