#!/usr/bin/env bash
# Regenerates evidence/fault-matrix/<model>/ from a real run of the fault kill matrix
# (`apr-qa faults --matrix`): the playbook once clean and once per catalogued fault, each run a
# subprocess. Default: the Qwen ci playbook on the real file (needs scripts/fetch-models.sh;
# ~20 runs of ~75 s, about 25 minutes on 2 cores).
#
# Writes, ready to commit:
#   matrix.json          every run's per-gate outcomes, each fault's killers, the clean run's
#                        false positives and known clean failures
#   summary.txt          the fault × gates table, exit code, wall time, host
#   clean-evidence.json  the clean run's evidence (the per-fault evidence files are ~40 KB each and
#                        are left out; KEEP_RUNS=DIR keeps the whole run tree there)
#
# Exits with the matrix's code: 0 only when the clean run corroborates every gate (known clean
# failures excepted) and every fault is killed (Falsified by a gate that passed clean); 1
# otherwise; 2 bad input.
#
# Known clean failures (KNOWN, comma-separated; default F-PERF-001): gates a playbook may
# falsify on a clean run for reasons unrelated to faults. F-PERF-001 times conversion against
# `cp` on a shared 2-core host and the committed Qwen evidence shows it over its 1.5x limit
# clean. Such a gate is never counted as a killer, does not fail the matrix, and its clean
# failure is printed under "known clean failure" in summary.txt rather than hidden. KNOWN= (empty)
# makes every clean failure a false positive.
#
# Overrides: PLAYBOOK=… (e.g. playbooks/synthetic.playbook.yaml for a check in seconds),
# OUT=… (default evidence/fault-matrix/<playbook name without -ci>), PARALLEL=N fault runs at a
# time (default 1: parallel runs would skew the timing gates), FAULTS=A,B (default: all),
# BIN=… (default: cargo build --release, then target/release/apr-qa).
set -uo pipefail
cd "$(dirname "$0")/.."
PLAYBOOK=${PLAYBOOK:-playbooks/models/qwen2.5-coder-0.5b-ci.playbook.yaml}
KNOWN=${KNOWN-F-PERF-001}
PARALLEL=${PARALLEL:-1}
FAULTS=${FAULTS:-}
name=$(basename "$PLAYBOOK" .yaml)
name=${name%.playbook}
name=${name%-ci}
OUT=${OUT:-evidence/fault-matrix/$name}
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet || exit 2
  BIN=target/release/apr-qa
fi
[ -f "$PLAYBOOK" ] || { echo "error: playbook $PLAYBOOK not found" >&2; exit 2; }

runs=${KEEP_RUNS:-$(mktemp -d)}
[ -n "${KEEP_RUNS:-}" ] || trap 'rm -rf "$runs"' EXIT
mkdir -p "$runs" "$OUT"
args=(faults --matrix "$PLAYBOOK" -o "$runs" --parallel "$PARALLEL" --no-progress)
[ -n "$KNOWN" ] && args+=(--known-clean-failure "$KNOWN")
[ -n "$FAULTS" ] && args+=(--faults "$FAULTS")

t0=$(date +%s)
"$BIN" "${args[@]}" > "$runs/table.txt"
code=$?
wall=$(( $(date +%s) - t0 ))
cat "$runs/table.txt"
if [ ! -f "$runs/matrix.json" ]; then
  echo "error: no matrix.json (exit $code); see $runs" >&2
  exit $(( code == 0 ? 2 : code ))
fi
cp "$runs/matrix.json" "$OUT/matrix.json.tmp" && mv "$OUT/matrix.json.tmp" "$OUT/matrix.json"
if [ -f "$runs/clean/evidence.json" ]; then
  cp "$runs/clean/evidence.json" "$OUT/clean-evidence.json.tmp" \
    && mv "$OUT/clean-evidence.json.tmp" "$OUT/clean-evidence.json"
fi
{
  echo "apr-qa faults --matrix $PLAYBOOK${KNOWN:+ --known-clean-failure $KNOWN}${FAULTS:+ --faults $FAULTS} --parallel $PARALLEL"
  echo "exit code: $code"
  echo "wall seconds: $wall"
  echo "host: $(hostname), $(nproc) cores"
  echo
  grep -v '^matrix: ' "$runs/table.txt"
} > "$OUT/summary.txt.tmp" && mv "$OUT/summary.txt.tmp" "$OUT/summary.txt"
echo "wrote $OUT/{matrix.json,summary.txt,clean-evidence.json} (exit $code)"
exit "$code"
