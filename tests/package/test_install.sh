#!/usr/bin/env bash
# The installed library as a user gets it (#17 item 1): `cmake --install` of the already-built
# tree into a temporary prefix, then a program built out of tree against the installed files in
# both ways a user would (find_package(modernbert) and pkg-config), each linked shared and static,
# run against a tiny model; then the .deb (cpack -G DEB) and what it holds.
#   tests/package/test_install.sh BUILD_DIR       (CTest: package.install, label script)
# Nothing is rebuilt: the build tree must be built (scripts/build.sh). Work files go to
# BUILD_DIR/package_test (removed first), so that a failure leaves them to look at.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: test_install.sh BUILD_DIR}" && pwd)
work=$build/package_test
rm -rf "$work"
mkdir -p "$work"
prefix=$work/prefix

fail() {
  echo "test_install: FAILED: $*" >&2
  exit 1
}
step() { echo "== $*"; }
cache() { sed -nE "s/^$1:[A-Z]+=(.*)$/\1/p" "$build/CMakeCache.txt"; }
libdir=$(cache CMAKE_INSTALL_LIBDIR)
[[ -n $libdir ]] || fail "CMAKE_INSTALL_LIBDIR not in $build/CMakeCache.txt (configure with MODERNBERT_INSTALL=ON)"

step "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log" || fail "cmake --install (see $work/install.log)"
for f in bin/modernbert "$libdir/libmodernbert.so" "$libdir/libmodernbert.a" include/modernbert/inference.h \
  include/modernbert/error.h "$libdir/cmake/modernbert/modernbertConfig.cmake" \
  "$libdir/cmake/modernbert/modernbertConfigVersion.cmake" "$libdir/cmake/modernbert/modernbertTargets.cmake" \
  "$libdir/cmake/modernbert/modernbertStaticTargets.cmake" "$libdir/pkgconfig/modernbert.pc"; do
  [[ -e $prefix/$f ]] || fail "not installed: $f"
done
# Every public header of the source tree, the C API header included once it exists.
for h in "$src"/include/modernbert/*.h "$src"/include/*.h; do
  [[ -e $h ]] || continue
  rel=${h#"$src"/}
  cmp -s "$h" "$prefix/$rel" || fail "header not installed (or differs): $rel"
done
# The shared library: a versioned SONAME whose file is installed, nothing undefined that its
# DT_NEEDED libraries do not provide (ldd -r), Model's symbols exported.
so=$prefix/$libdir/libmodernbert.so
soname=$(readelf -d "$so" | sed -nE 's/.*\(SONAME\).*\[(.*)\]/\1/p')
[[ $soname =~ ^libmodernbert\.so\.[0-9]+ ]] || fail "SONAME of libmodernbert.so is '$soname'"
[[ -e $prefix/$libdir/$soname ]] || fail "$soname (the SONAME) is not installed"
if ldd -r "$so" 2>&1 | grep -E 'undefined symbol|not found'; then
  fail "libmodernbert.so has unresolved symbols or libraries"
fi
nm -DC --defined-only "$so" | grep 'modernbert::Model::Model(' >/dev/null || fail "libmodernbert.so does not export modernbert::Model"
nm -C "$prefix/$libdir/libmodernbert.a" 2>/dev/null | grep ' T modernbert::Model::Model(' >/dev/null ||
  fail "libmodernbert.a does not define modernbert::Model"

step "a tiny model with the installed CLI"
model=$work/model
"$prefix/bin/modernbert" init --preset tiny --seed 21 --heads mlm --out "$model" >"$work/init.log" 2>&1 ||
  fail "modernbert init (see $work/init.log)"
cp "$src/tests/data/modernbert-tokenizer/tokenizer.json" "$model/"
mkdir -p "$work/not_a_model"
text="Hello world, ModernBERT!"
# The reference: the CLI's tokenization of the same text.
expected_ids="ids: $(printf '%s\n' "$text" | "$prefix/bin/modernbert" tokenize --model "$model" |
  sed -nE 's/.*"input_ids": \[([^]]*)\].*/\1/p' | tr -d ',')"
[[ $expected_ids =~ ^ids:\ [0-9] ]] || fail "modernbert tokenize gave no ids"

# check_consumer BINARY KIND: runs the consumer program; KIND shared|static is how it must link.
check_consumer() {
  local bin=$1 kind=$2 out
  check_linked "$bin" "$kind"
  out=$("$bin" "$model" "$work/not_a_model" "$text") || fail "$bin exited with $?: $out"
  grep -qxF "$expected_ids" <<<"$out" || fail "$bin printed '$out', expected '$expected_ids' (the CLI's)"
  grep -q '^error: .' <<<"$out" || fail "$bin: loading a directory without a model did not throw modernbert::Error"
  echo "ok: $bin ($kind)"
}

# check_linked BINARY KIND: KIND shared|static is how BINARY must link libmodernbert.
check_linked() {
  if [[ $2 == shared ]]; then
    readelf -d "$1" | grep 'NEEDED.*\[libmodernbert\.so' >/dev/null || fail "$1 does not link libmodernbert.so"
  else
    ! readelf -d "$1" | grep 'NEEDED.*libmodernbert' >/dev/null || fail "$1 links libmodernbert.so, not the .a"
  fi
}

# The examples of docs/library.md, checked against the CLI's embeddings of their texts
# (tests/package/compare_example.py; the model has no classifier, so the C++ example's rerank is
# the cosine of sentence embeddings). The texts are the examples' own.
example_c=$src/examples/c/embed.c
example_cpp=$src/examples/cpp/embed_and_rerank.cpp
c_texts=("The cat sat on the mat." "A cat was sitting on a mat.")  # given on embed.c's command line
cpp_texts=("The cat sat on the mat." "A cat is sitting on a rug." "Where is the Eiffel Tower?"
  "Paris is the capital of France." "Cats like to sleep." "The Eiffel Tower is in Paris.")
printf '%s\n' "${c_texts[@]}" | "$prefix/bin/modernbert" embed --model "$model" >"$work/c_texts.jsonl" ||
  fail "modernbert embed"
printf '%s\n' "${cpp_texts[@]}" | "$prefix/bin/modernbert" embed --model "$model" >"$work/cpp_texts.jsonl" ||
  fail "modernbert embed"
# check_example c|cpp BINARY KIND
check_example() {
  local lang=$1 bin=$2 out=$work/$(basename "$2").out
  check_linked "$bin" "$3"
  if [[ $lang == c ]]; then
    "$bin" "$model" "${c_texts[@]}" >"$out" || fail "$bin exited with $?: $(cat "$out")"
  else
    "$bin" "$model" >"$out" || fail "$bin exited with $?: $(cat "$out")"
  fi
  python3 "$src/tests/package/compare_example.py" "$lang" "$work/${lang}_texts.jsonl" "$out" ||
    fail "$bin: its output differs from what the CLI's embeddings give"
  echo "ok: $bin ($3)"
}

step "find_package(modernbert): tests/package/consumer"
cmake -S "$src/tests/package/consumer" -B "$work/consumer" -DCMAKE_PREFIX_PATH="$prefix" \
  -DEXAMPLE_C="$example_c" -DEXAMPLE_CPP="$example_cpp" >"$work/consumer_configure.log" 2>&1 ||
  fail "consumer configure (see $work/consumer_configure.log)"
cmake --build "$work/consumer" -j2 >"$work/consumer_build.log" 2>&1 || fail "consumer build (see $work/consumer_build.log)"
for kind in shared static; do
  check_consumer "$work/consumer/consumer_$kind" $kind
  check_example c "$work/consumer/example_c_$kind" $kind
  check_example cpp "$work/consumer/example_cpp_$kind" $kind
done

step "pkg-config modernbert"
export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
[[ $(pkg-config --modversion modernbert) =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "pkg-config --modversion modernbert"
read -ra cflags <<<"$(pkg-config --cflags modernbert)"
read -ra libs <<<"$(pkg-config --libs modernbert)"
read -ra static_libs <<<"$(pkg-config --static --libs modernbert)"
# The static link: the same flags with the archive in place of -lmodernbert.
static_libs=("${static_libs[@]/#-lmodernbert/-l:libmodernbert.a}")
c++ -std=c++20 -c "${cflags[@]}" "$src/tests/package/consumer/consumer.cpp" -o "$work/consumer_pc.o" ||
  fail "compiling with pkg-config --cflags modernbert"
c++ "$work/consumer_pc.o" -o "$work/consumer_pc_shared" "${libs[@]}" -Wl,-rpath,"$prefix/$libdir" ||
  fail "linking with pkg-config --libs modernbert"
c++ "$work/consumer_pc.o" -o "$work/consumer_pc_static" "${static_libs[@]}" ||
  fail "linking with pkg-config --static --libs modernbert"
check_consumer "$work/consumer_pc_shared" shared
check_consumer "$work/consumer_pc_static" static
# The C example as its header says: cc embed.c $(pkg-config --cflags --libs modernbert).
cc -std=c11 -Wall -Wextra -c "${cflags[@]}" "$example_c" -o "$work/example_c_pc.o" || fail "compiling $example_c"
cc "$work/example_c_pc.o" -o "$work/example_c_pc_shared" "${libs[@]}" -lm -Wl,-rpath,"$prefix/$libdir" ||
  fail "linking the C example with pkg-config --libs modernbert"
cc "$work/example_c_pc.o" -o "$work/example_c_pc_static" "${static_libs[@]}" ||
  fail "linking the C example with pkg-config --static --libs modernbert"
check_example c "$work/example_c_pc_shared" shared
check_example c "$work/example_c_pc_static" static
# The C++ example the same way.
c++ -std=c++20 -Wall -Wextra -c "${cflags[@]}" "$example_cpp" -o "$work/example_cpp_pc.o" || fail "compiling $example_cpp"
c++ "$work/example_cpp_pc.o" -o "$work/example_cpp_pc_shared" "${libs[@]}" -Wl,-rpath,"$prefix/$libdir" ||
  fail "linking the C++ example with pkg-config --libs modernbert"
c++ "$work/example_cpp_pc.o" -o "$work/example_cpp_pc_static" "${static_libs[@]}" ||
  fail "linking the C++ example with pkg-config --static --libs modernbert"
check_example cpp "$work/example_cpp_pc_shared" shared
check_example cpp "$work/example_cpp_pc_static" static

step "cpack -G DEB"
(cd "$work" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/deb") >"$work/cpack.log" 2>&1 ||
  fail "cpack (see $work/cpack.log)"
debs=("$work"/deb/*.deb)
[[ ${#debs[@]} == 1 && -f ${debs[0]} ]] || fail "expected one .deb in $work/deb, found: ${debs[*]}"
deb=${debs[0]}
contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
for f in usr/bin/modernbert "usr/$libdir/libmodernbert.so" "usr/$libdir/$soname" "usr/$libdir/libmodernbert.a" \
  usr/include/modernbert/inference.h "usr/$libdir/cmake/modernbert/modernbertConfig.cmake" \
  "usr/$libdir/cmake/modernbert/modernbertTargets.cmake" "usr/$libdir/pkgconfig/modernbert.pc"; do
  grep -qxF "./$f" <<<"$contents" || fail "$deb does not hold /$f"
done
[[ ! -e $src/include/modernbert.h ]] || grep -qxF ./usr/include/modernbert.h <<<"$contents" ||
  fail "$deb does not hold /usr/include/modernbert.h"
info=$(dpkg-deb -I "$deb")
grep -qE '^ Package: modernbert$' <<<"$info" || fail "package name: $info"
grep -qE '^ Maintainer: .+' <<<"$info" || fail "no Maintainer: $info"
depends=$(sed -nE 's/^ Depends: //p' <<<"$info")
# dpkg-shlibdeps' part (the C++ runtime, OpenBLAS, ICU) and the headers' nlohmann-json3-dev.
for d in libstdc++6 libopenblas libicu nlohmann-json3-dev; do
  grep -q "$d" <<<"$depends" || fail "Depends lacks $d: '$depends'"
done
# The Python module, when packaged, needs python3-numpy at run time.
if grep -q 'dist-packages/modernbert' <<<"$contents"; then
  grep -qE '^ Recommends: .*python3-numpy' <<<"$info" || fail "the .deb holds the Python module but does not recommend python3-numpy: $info"
fi
# The packaged pkg-config file is relocatable: it points at wherever the tree is unpacked.
dpkg-deb -x "$deb" "$work/unpacked"
got=$(PKG_CONFIG_PATH=$work/unpacked/usr/$libdir/pkgconfig pkg-config --cflags-only-I modernbert | awk '{print $1}')
[[ $(realpath -m "${got#-I}") == "$work/unpacked/usr/include" ]] || fail "packaged modernbert.pc: -I is '$got'"
echo "ok: $(basename "$deb"): Depends: $depends"
rm -rf "$work"
echo "test_install: all checks passed"
