#!/usr/bin/env bash
# README command 2: install what is missing, build, run the whole test suite.
# Exits non-zero when any test fails, is skipped, is disabled or does not run: the number of tests
# CTest ran and passed must equal the number the test binaries define.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh --test
scripts/build.sh
# The Hugging Face tokenizers reference (node) is part of the suite, not optional.
if [[ ! -f scripts/tokenizer_reference/node_modules/tokenizers/package.json ]]; then
  if ! (cd scripts/tokenizer_reference && npm ci --no-audit --no-fund); then
    echo "run_tests: FAILED: 'npm ci' in scripts/tokenizer_reference failed; the tokenizer parity tests need it" >&2
    exit 1
  fi
fi
# The serve tests' clients (the official openai npm package, tests/serve/package.json).
if [[ ! -f tests/serve/node_modules/openai/package.json ]]; then
  if ! (cd tests/serve && npm ci --no-audit --no-fund); then
    echo "run_tests: FAILED: 'npm ci' in tests/serve failed; the serve.* tests need it" >&2
    exit 1
  fi
fi
log=build/ctest.log
status=0
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 1500 2>&1 | tee "$log" || status=$?
# Every test the binary defines (parameterised instances included; DISABLED_ ones too, which must
# not exist) must have run and passed.
# The ASan/UBSan binary (modernbert_san_tests, CTest names "san.*") counts too.
defined=0
for bin in build/modernbert_tests build/modernbert_san_tests; do
  [[ -x $bin ]] || continue
  n=$($bin --gtest_list_tests | grep -c '^  ') || n=0
  defined=$((defined + n))
done
# CTest tests that are not GoogleTest cases (label "script": layering.<layer>, which prove that a
# wrong-way include between the library's layers fails to compile, and serve.*, `modernbert serve`
# with real HTTP clients) count too, and must pass.
n=$(ctest --test-dir build -N -L '^script$' | sed -nE 's/^Total Tests: ([0-9]+)$/\1/p')
defined=$((defined + ${n:-0}))
ran=$(sed -nE 's/.*tests passed, [0-9]+ tests failed out of ([0-9]+).*/\1/p' "$log" | tail -1)
problems=()
((status == 0)) || problems+=("ctest exited with status $status")
grep -qE 'The following tests did not run|\*\*\*Skipped|\*\*\*Not Run|Not Run \(Disabled\)' "$log" &&
  problems+=("tests were skipped, disabled or not run (see 'The following tests did not run' above)")
[[ "${ran:-}" == "$defined" ]] || problems+=("ctest ran ${ran:-no} tests but the test binary defines $defined")
if ((${#problems[@]})); then
  printf 'run_tests: FAILED: %s\n' "${problems[@]}" >&2
  exit 1
fi
echo "run_tests: all $defined tests ran and passed (none skipped)"
