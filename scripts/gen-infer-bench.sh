#!/usr/bin/env bash
# Regenerates evidence/infer-bench/qwen2.5-coder-0.5b.txt: prefill (128-token prompt) and
# decode (128 steps) tok/s of the CPU engine and of llama.cpp (llama-cpp-python in the oracle
# venv, scripts/setup-oracles.sh --llama) on the same file, in the same run, alternating
# rounds, with the ratios and our peak anonymous memory. Needs scripts/fetch-models.sh.
# Run it on a quiet machine: the figures are as measured, and the machine's load is recorded.
set -euo pipefail
cd "$(dirname "$0")/.."
out=evidence/infer-bench
mkdir -p "$out"
tmp=$(mktemp)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
trap 'rm -f "$tmp"' EXIT
cargo bench --bench infer 2>/dev/null | tee "$tmp"
grep -q '^apr-qa ' "$tmp" || { echo "bench printed no figures" >&2; exit 1; }
{
  echo "# cargo bench --bench infer ($(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(date -u +%Y-%m-%dT%H:%M:%SZ))"
  echo "# host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average before: $load_before, after: $(cut -d' ' -f1-3 /proc/loadavg)"
  cat "$tmp"
} > "$out/qwen2.5-coder-0.5b.txt"
echo "wrote $out/qwen2.5-coder-0.5b.txt"
