#!/usr/bin/env bash
# setup-report-tools.sh — what the report tests need beyond cargo: headless Chromium (Debian's
# `chromium`, renders the HTML dashboard to PNG) and the JUnit XML schema junit-10.xsd (taken
# from the pinned pytest sdist on PyPI, see tests/data/junit/README.md) with lxml in the oracle
# venv (scripts/setup-oracles.sh) to validate against it. Idempotent and quick when done.
#
# Usage: scripts/setup-report-tools.sh [--quiet]
set -euo pipefail
quiet=0
[ "${1:-}" = "--quiet" ] && quiet=1
say() { if [ "$quiet" -eq 0 ]; then echo "setup-report-tools: $*" >&2; fi; }

CACHE="${APR_QA_CACHE:-$HOME/.cache/apr-qa}"
VENV="${APR_QA_VENV:-$CACHE/venv}"
XSD="$CACHE/junit-10.xsd"
XSD_SHA=a1a816f58d1bf95ebabf371994df0b9246dee66ea9572fbec4f9296f1b2c0ff6

if ! command -v chromium >/dev/null 2>&1; then
    say "installing chromium (apt)"
    if [ "$(id -u)" -ne 0 ]; then echo "setup-report-tools: chromium missing and not root" >&2; exit 1; fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if [ ! -f "$XSD" ] || [ "$(sha256sum "$XSD" | cut -d' ' -f1)" != "$XSD_SHA" ]; then
    say "fetching junit-10.xsd from the pytest 9.2.0 sdist"
    [ -x "$VENV/bin/pip" ] || { echo "setup-report-tools: no venv at $VENV (scripts/setup-oracles.sh)" >&2; exit 1; }
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: pytest==9.2.0 -d "$tmp"
    tar xzf "$tmp/pytest-9.2.0.tar.gz" -O pytest-9.2.0/testing/example_scripts/junit-10.xsd > "$tmp/junit-10.xsd"
    got=$(sha256sum "$tmp/junit-10.xsd" | cut -d' ' -f1)
    [ "$got" = "$XSD_SHA" ] || { echo "setup-report-tools: junit-10.xsd sha256 $got, expected $XSD_SHA" >&2; exit 1; }
    mkdir -p "$CACHE"
    mv "$tmp/junit-10.xsd" "$XSD"
fi
say "ready: $(command -v chromium), $XSD"
