#!/usr/bin/env bash
# setup-oracles.sh — create or refresh the Python venv that holds the independent oracles
# (gguf-py, numpy, safetensors, tokenizers, lxml for the JUnit schema; optionally llama-cpp-python)
# used by apr-qa's tests.
#
# Usage: scripts/setup-oracles.sh [--llama] [--quiet] [--print-python]
#
#   --llama         also install llama-cpp-python==0.3.36, built from source as a CPU-only wheel.
#                   The wheel is built once and cached under $APR_QA_CACHE/wheels/<key>/, where <key>
#                   hashes the CMake flags, the machine arch and the Python tag; later runs (and
#                   fresh venvs) reuse it. Building takes 5–15 min on 2 cores.
#   --quiet         print only errors (and, with --print-python, the python path).
#   --print-python  print the path of the venv's python on the last line of stdout.
#
# Environment:
#   APR_QA_VENV     venv location            (default ~/.cache/apr-qa/venv)
#   APR_QA_CACHE    cache root for wheels    (default ~/.cache/apr-qa)
#   APR_QA_PYTHON   interpreter for the venv (default python3)
#   APR_QA_JOBS     parallel build jobs      (default: nproc)
#
# Idempotent: a stamp file in the venv records the exact requirement set it was built with; when the
# stamp matches and the modules import, the script does nothing else (well under a second).
# Invariants: every top-level package is pinned to an exact version; a failed install never leaves a
# stamp behind, so the next run retries.
set -euo pipefail

GGUF_PIN="gguf==0.19.0"
NUMPY_PIN="numpy==2.4.6"
SAFETENSORS_PIN="safetensors==0.8.0"
TOKENIZERS_PIN="tokenizers==0.23.3"
LXML_PIN="lxml==6.1.3"
LLAMA_PIN="llama-cpp-python==0.3.36"
# CPU-only build: no GPU backends, no BLAS, no curl, no examples/tests/tools.
LLAMA_CMAKE_ARGS="-DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_HIP=OFF -DGGML_SYCL=OFF -DGGML_BLAS=OFF -DGGML_OPENMP=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF"

want_llama=0
quiet=0
print_python=0
for arg in "$@"; do
    case "$arg" in
        --llama) want_llama=1 ;;
        --quiet) quiet=1 ;;
        --print-python) print_python=1 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "setup-oracles: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

CACHE="${APR_QA_CACHE:-$HOME/.cache/apr-qa}"
VENV="${APR_QA_VENV:-$CACHE/venv}"
PY_BASE="${APR_QA_PYTHON:-python3}"
JOBS="${APR_QA_JOBS:-$(nproc 2>/dev/null || echo 2)}"

say() { if [ "$quiet" -eq 0 ]; then echo "setup-oracles: $*" >&2; fi; }
die() { echo "setup-oracles: error: $*" >&2; exit 1; }

pins=("$GGUF_PIN" "$NUMPY_PIN" "$SAFETENSORS_PIN" "$TOKENIZERS_PIN" "$LXML_PIN")
modules="gguf, numpy, safetensors, tokenizers, lxml"
if [ "$want_llama" -eq 1 ]; then
    pins+=("$LLAMA_PIN")
    modules="$modules, llama_cpp"
fi
stamp_text="$(printf '%s\n' "${pins[@]}")"
if [ "$want_llama" -eq 1 ]; then stamp_text="$stamp_text"$'\n'"cmake: $LLAMA_CMAKE_ARGS"; fi
STAMP="$VENV/.apr-qa-oracles.stamp"
VPY="$VENV/bin/python"

finish() {
    if [ "$quiet" -eq 0 ]; then echo "setup-oracles: venv ready: $VENV" >&2; fi
    if [ "$print_python" -eq 1 ]; then echo "$VPY"; fi
    exit 0
}

# Fast path: the stamp lists a superset of what we want (a --llama venv also serves plain runs) and
# the modules import.
if [ -f "$STAMP" ] && [ -x "$VPY" ]; then
    missing=0
    for p in "${pins[@]}"; do grep -qxF "$p" "$STAMP" || missing=1; done
    if [ "$missing" -eq 0 ] && "$VPY" -c "import $modules" 2>/dev/null; then
        say "already set up (${pins[*]})"
        finish
    fi
fi

command -v "$PY_BASE" >/dev/null || die "interpreter not found: $PY_BASE (set APR_QA_PYTHON)"
if [ ! -x "$VPY" ] || ! "$VPY" -c 'import sys' 2>/dev/null; then
    say "creating venv at $VENV"
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PY_BASE" -m venv "$VENV" || die "cannot create venv at $VENV with $PY_BASE"
fi
rm -f "$STAMP"

pip_q=()
[ "$quiet" -eq 1 ] && pip_q=(-q)

say "installing ${GGUF_PIN} ${NUMPY_PIN} ${SAFETENSORS_PIN} ${TOKENIZERS_PIN} ${LXML_PIN}"
"$VPY" -m pip install "${pip_q[@]}" --disable-pip-version-check \
    "$GGUF_PIN" "$NUMPY_PIN" "$SAFETENSORS_PIN" "$TOKENIZERS_PIN" "$LXML_PIN" \
    || die "pip install of the base oracles failed"

if [ "$want_llama" -eq 1 ]; then
    pytag="$("$VPY" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
    key="$(printf '%s|%s|%s|%s' "$LLAMA_PIN" "$LLAMA_CMAKE_ARGS" "$(uname -m)" "$pytag" | sha256sum | cut -c1-16)"
    WHEELS="$CACHE/wheels/llama-$key"
    mkdir -p "$WHEELS"
    wheel="$(ls "$WHEELS"/llama_cpp_python-0.3.36-*.whl 2>/dev/null | head -n1 || true)"
    if [ -z "$wheel" ]; then
        say "building ${LLAMA_PIN} from source (CPU, ${JOBS} jobs); cached in $WHEELS"
        start=$(date +%s)
        tmpw="$(mktemp -d "$WHEELS/.build.XXXXXX")"
        verbose=(-v)
        [ "$quiet" -eq 1 ] && verbose=(-q)
        if ! CMAKE_ARGS="$LLAMA_CMAKE_ARGS" CMAKE_BUILD_PARALLEL_LEVEL="$JOBS" FORCE_CMAKE=1 \
            "$VPY" -m pip wheel "${verbose[@]}" --disable-pip-version-check --no-deps \
            --no-binary llama-cpp-python -w "$tmpw" "$LLAMA_PIN"; then
            rm -rf "$tmpw"
            die "building ${LLAMA_PIN} failed"
        fi
        built="$(ls "$tmpw"/llama_cpp_python-0.3.36-*.whl 2>/dev/null | head -n1 || true)"
        [ -n "$built" ] || { rm -rf "$tmpw"; die "pip wheel produced no llama_cpp_python wheel"; }
        mv "$built" "$WHEELS/"
        rm -rf "$tmpw"
        wheel="$WHEELS/$(basename "$built")"
        say "built $(basename "$wheel") in $(( $(date +%s) - start )) s"
    else
        say "reusing cached wheel $wheel"
    fi
    "$VPY" -m pip install "${pip_q[@]}" --disable-pip-version-check "$wheel" \
        || die "installing $wheel failed"
fi

"$VPY" -c "import $modules" || die "import check failed after install ($modules)"
"$VPY" -m pip freeze --disable-pip-version-check > "$VENV/apr-qa-freeze.txt" 2>/dev/null || true
printf '%s\n' "$stamp_text" > "$STAMP"
finish
