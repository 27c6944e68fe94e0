#!/usr/bin/env bash
# Regenerates evidence/qwen2.5-coder-0.5b/{evidence.json,summary.txt,report.html,junit.xml,
# report.md} from a real run of the Qwen ci playbook (needs scripts/fetch-models.sh). The run's
# exit code is recorded beside it; the evidence is committed as measured, falsified gates
# included, and the reports are rendered from that evidence file alone.
set -uo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet || exit 2
out=evidence/qwen2.5-coder-0.5b
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/time -q -f "%e" -o "$tmp/wall" target/release/apr-qa run playbooks/models/qwen2.5-coder-0.5b-ci.playbook.yaml \
  --no-progress -o "$tmp" | tee "$tmp/summary.txt"
code=${PIPESTATUS[0]}
cp "$tmp/evidence.json" "$out/evidence.json"
{ echo "exit code: $code"; echo "wall seconds: $(cat "$tmp/wall")"; echo "host: $(hostname), $(nproc) cores"; echo; cat "$tmp/summary.txt"; } > "$out/summary.txt"
target/release/apr-qa report "$out/evidence.json" -o "$out" >/dev/null || exit 2
echo "wrote $out/{evidence.json,summary.txt,report.html,junit.xml,report.md} (run exit $code)"
