#!/usr/bin/env bash
# gen-oracle-vectors.sh — regenerate tests/data/oracle/*.oracle, the vectors that pin the
# crate's block codecs (apr_qa::quant) to ggml bit for bit. tests/oracle.rs checks them.
#
# Usage:  scripts/gen-oracle-vectors.sh [OUT_DIR]      (default: tests/data/oracle)
# Needs:  x86-64 Linux, gcc/g++, python3 with venv, and PyPI (first run only). ~1.5–2 minutes.
#         The old files are replaced only when every type was generated and cross-checked.
# Cache:  ${APR_QA_CACHE:-~/.cache/apr-qa}: the sdist, the extracted ggml sources, the build
#         and the gguf-py venv (oracle-venv). Delete it to start from scratch. Re-running
#         writes the same files (inputs come from a fixed splitmix64 stream).
#
# What it does:
#   1. ggml: downloads llama-cpp-python==0.3.36's sdist from PyPI (pip download, checked
#      against the sha256 below) and takes the ggml it vendors (vendor/llama.cpp/ggml). It
#      compiles the real ggml-base sources (ggml.c, ggml-quants.c, ggml-alloc.c, ggml.cpp,
#      ggml-backend*.cpp, ggml-opt.cpp, ggml-threading.cpp, gguf.cpp) with
#      `-O2 -ffp-contract=off -DNDEBUG` for the x86-64 baseline (no -march, so no FMA: the
#      reference build of shared/reference/ggml-gguf-safetensors.md §3.6), and links
#      scripts/oracle/driver.c, which calls quantize_row_*_ref, ggml_quantize_chunk and
#      dequantize_row_*.
#   2. gguf-py: creates a venv with gguf==0.19.0 as a second, independent producer.
#   3. scripts/oracle/gen.py writes one file per type. Block bytes come from ggml quantizing
#      several input distributions (imatrix of ones for IQ2_XXS/IQ2_XS/IQ1_S, which require
#      one), from random bytes, and from random bytes with NaN/Inf/subnormal/±0 scale fields;
#      ggml dequantizes them. Quantization vectors are ggml's reference quantizer output.
#      Wherever gguf-py implements the type it recomputes every section; any difference other
#      than the few documented, individually verified divergences (listed in gen.py and noted
#      in each affected file) makes the script fail.
#
# File format (<type>.oracle), parsed by tests/oracle.rs with std only:
#   text header, one item per line, ended by the line "data":
#     ggml-oracle-vectors 1
#     type NAME / ggml_id N / block_size N / type_size N
#     producer TEXT          who computed the expected outputs (ggml build, versions, flags)
#     crosscheck TEXT        what gguf-py recomputed
#     note TEXT / input NAME: TEXT / layout ...
#     section KIND NAME N_BLOCKS TAG...   KIND is dequantize or quantize; tags say which
#                            ggml function produced it (by=), where the blocks came from
#                            (src=) and the gguf-py result (gguf-py=)
#   then the sections' payloads, in header order, little-endian:
#     dequantize: N_BLOCKS*type_size block bytes, then N_BLOCKS*block_size f32
#     quantize:   N_BLOCKS*block_size f32, then N_BLOCKS*type_size block bytes
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36
SDIST_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
GGUF_PY_VERSION=0.19.0
CFLAGS_COMMON="-O2 -ffp-contract=off -DNDEBUG -D_XOPEN_SOURCE=600 -D_GNU_SOURCE -DGGML_SCHED_MAX_COPIES=4"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT/tests/data/oracle}
CACHE=${APR_QA_CACHE:-$HOME/.cache/apr-qa}
SDIST=$CACHE/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz
SRC=$CACHE/ggml-src-$LLAMA_CPP_PYTHON_VERSION
BUILD=$CACHE/oracle-build-$LLAMA_CPP_PYTHON_VERSION
VENV=$CACHE/oracle-venv
start=$(date +%s)
mkdir -p "$CACHE"

[ "$(uname -m)" = x86_64 ] || { echo "error: the reference build is x86-64 (found $(uname -m))" >&2; exit 1; }

# 1a. The sdist. `--no-binary llama-cpp-python` (not :all:) lets pip use wheels for the
# build backend it installs to read the sdist's metadata; the sdist itself is what we keep.
if [ ! -f "$SDIST" ]; then
    echo "== downloading llama-cpp-python $LLAMA_CPP_PYTHON_VERSION sdist"
    tmp=$(mktemp -d "$CACHE/dl.XXXXXX")
    python3 -m pip download --quiet --no-deps --no-binary llama-cpp-python \
        "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" -d "$tmp"
    mv "$tmp/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz" "$SDIST"
    rm -rf "$tmp"
fi
echo "$SDIST_SHA256  $SDIST" | sha256sum --check --quiet || {
    echo "error: $SDIST does not have the pinned sha256; delete it and retry" >&2; exit 1; }

# 1b. ggml's sources and the llama.cpp commit the sdist vendors.
if [ ! -f "$SRC/.complete" ]; then
    echo "== extracting ggml"
    rm -rf "$SRC" && mkdir -p "$SRC"
    top=llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION
    tar -xzf "$SDIST" -C "$SRC" --strip-components=1 "$top/CHANGELOG.md" "$top/vendor/llama.cpp/ggml"
    touch "$SRC/.complete"
fi
G=$SRC/vendor/llama.cpp/ggml
grep -q 'GGML_TYPE_Q2_0' "$G/include/ggml.h" || {
    echo "error: this ggml has no Q1_0/Q2_0; a newer ggml is needed" >&2; exit 1; }
ggml_version=$(sed -n 's/^set(GGML_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)).*/\2/p' "$G/CMakeLists.txt" | paste -sd.)
llama_commit=$(awk -v v="## [$LLAMA_CPP_PYTHON_VERSION]" '$0 == v {f = 1; next}
    f && /^## / {exit} f && match($0, /llama\.cpp@[0-9a-f]+/) {print substr($0, RSTART + 10, RLENGTH - 10); exit}' \
    "$SRC/CHANGELOG.md")
[ -n "$ggml_version" ] && [ -n "$llama_commit" ] || { echo "error: cannot read ggml version/commit" >&2; exit 1; }

# 1c. Build ggml-base and the driver (always rebuilt: ~20 s).
echo "== building ggml $ggml_version (llama.cpp@$llama_commit)"
rm -rf "$BUILD" && mkdir -p "$BUILD"
printf '#pragma once\n#define GGML_VERSION "%s"\n#define GGML_COMMIT "llama.cpp@%s"\n' \
    "$ggml_version" "$llama_commit" > "$BUILD/ggml-version.h"
INC="-I$BUILD -I$G/src -I$G/include"
CFLAGS="-std=gnu11 $CFLAGS_COMMON"
CXXFLAGS="-std=gnu++17 $CFLAGS_COMMON"
for f in ggml.c ggml-alloc.c ggml-quants.c; do
    gcc $CFLAGS $INC -c "$G/src/$f" -o "$BUILD/c-${f%.c}.o" &
done
wait
for f in ggml.cpp ggml-backend.cpp ggml-backend-meta.cpp ggml-opt.cpp ggml-threading.cpp gguf.cpp; do
    g++ $CXXFLAGS $INC -c "$G/src/$f" -o "$BUILD/cpp-${f%.cpp}.o" &
done
wait
for o in c-ggml c-ggml-alloc c-ggml-quants cpp-ggml cpp-ggml-backend cpp-ggml-backend-meta cpp-ggml-opt cpp-ggml-threading cpp-gguf; do
    [ -f "$BUILD/$o.o" ] || { echo "error: compiling $o failed" >&2; exit 1; }
done
gcc $CFLAGS -Wall -Wextra $INC -c "$ROOT/scripts/oracle/driver.c" -o "$BUILD/driver.o"
g++ -o "$BUILD/driver" "$BUILD"/driver.o "$BUILD"/c-*.o "$BUILD"/cpp-*.o -lm -lpthread
gcc_version=$(gcc -dumpfullversion)

# 2. gguf-py.
if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('gguf') != '$GGUF_PY_VERSION')" 2>/dev/null; then
    echo "== creating the gguf-py $GGUF_PY_VERSION venv"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet "gguf==$GGUF_PY_VERSION"
fi

# 3. The vectors.
producer="ggml $ggml_version (llama.cpp@$llama_commit, vendored in the PyPI sdist of llama-cpp-python"
producer+=" $LLAMA_CPP_PYTHON_VERSION, sha256 $SDIST_SHA256); ggml-base compiled by gcc $gcc_version"
producer+=" for x86-64 baseline (no -march): gcc $CFLAGS, g++ $CXXFLAGS; called through"
producer+=" scripts/oracle/driver.c"
echo "== writing vectors to $OUT"
staging=$(mktemp -d "$CACHE/vectors.XXXXXX")
trap 'rm -rf "$staging"' EXIT
"$VENV/bin/python" "$ROOT/scripts/oracle/gen.py" --driver "$BUILD/driver" --out "$staging" --producer "$producer"
mkdir -p "$OUT"
rm -f "$OUT"/*.oracle
mv "$staging"/*.oracle "$OUT"/
echo "== done in $(( $(date +%s) - start )) s: $(du -cb "$OUT"/*.oracle | tail -1 | cut -f1) bytes in $(ls "$OUT"/*.oracle | wc -l) files"
