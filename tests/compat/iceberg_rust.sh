#!/usr/bin/env bash
# The REST catalog tests that iceberg-rust publishes in its `iceberg-catalog-rest` crate,
# run against Serac.
#
# What the crate packages ship (checked for the versions below; see tests/compat/README.md):
#   * 0.10.1 (the version Serac uses): no tests/ directory at all, and no [[test]] target;
#     only in-source unit tests against a mock HTTP server (mockito), which never talk to a
#     real catalog. Nothing to run against Serac.
#   * 0.9.0: tests/rest_catalog_test.rs (10 tests: namespaces, nested namespaces, create,
#     update and register table), written against upstream's docker REST fixture. Its helper
#     crate `iceberg_test_utils` is an unpublished path dev-dependency that `cargo package`
#     strips, so, as published, the test target does not compile. This script builds it with
#     a stand-in for the four helpers it uses (tests/compat/iceberg_test_utils/lib.rs).
#
# Steps: fetch the 0.9.0 package through cargo (a throwaway project that depends on it, then
# `cargo fetch`), copy it to the cache, add the stand-in as its dev-dependency (the package's
# own Cargo.lock pins everything else), build the test once (`nice -n 19`, its own target dir),
# start Serac on a free port with a fresh data dir, and run the tests with
# ICEBERG_TEST_REST_ENDPOINT pointing at it. Failures listed in
# tests/compat/iceberg-rust-known-failures.txt (`<test name> | <reason>`) are expected; the
# exit status is non-zero on any other failure, and listed tests that pass are named.
#
# Usage: tests/compat/iceberg_rust.sh [--backend sqlite|postgres] [-- TEST_ARGS...]
# Environment (all optional):
#   SERAC_BIN                the serac binary (default: $CARGO_TARGET_DIR/debug/serac, with
#                            CARGO_TARGET_DIR defaulting to $HOME/.cache/serac/target)
#   SERAC_COMPAT_CACHE       (default: $HOME/.cache/serac/compat)
#   SERAC_COMPAT_RUST_TARGET target dir of this build (default: $HOME/.cache/serac/compat-target)
#   SERAC_COMPAT_JOBS        cargo -j (default: 2)
#
# A cold build compiles the iceberg 0.9.0 crate and its dependencies (minutes of CPU); later
# runs reuse the target dir. Exit status non-zero on an unlisted test failure or a failed build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/compat"
CRATE=iceberg-catalog-rest
VERSION=0.9.0
KNOWN="$HERE/iceberg-rust-known-failures.txt"

BACKEND=sqlite
TEST_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
    --backend) BACKEND="${2:?}"; shift ;;
    --backend=*) BACKEND="${1#--backend=}" ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; TEST_ARGS=("$@"); break ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$BACKEND" in sqlite | postgres) ;; *) echo "--backend must be sqlite or postgres" >&2; exit 2 ;; esac

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
CACHE="${SERAC_COMPAT_CACHE:-$HOME/.cache/serac/compat}"
TARGET="${SERAC_COMPAT_RUST_TARGET:-$HOME/.cache/serac/compat-target}"
SERAC_BIN="${SERAC_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/serac/target}/debug/serac}"

T0=$SECONDS
log() { printf '[iceberg-rust %4ss] %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ -x "$SERAC_BIN" ] || die "serac binary not found at $SERAC_BIN (build it, or set SERAC_BIN)"

# ------------------------------------------------------------ the package, through cargo
FETCH="$CACHE/fetch-$CRATE-$VERSION"
mkdir -p "$FETCH/src"
cat >"$FETCH/Cargo.toml" <<EOF
[package]
name = "serac-compat-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
$CRATE = "=$VERSION"

[workspace]
EOF
: >"$FETCH/src/lib.rs"
log "cargo fetch ($CRATE $VERSION)"
(cd "$FETCH" && cargo fetch -q) || die "cargo fetch failed"
PKG="$(cd "$FETCH" && cargo metadata --format-version 1 2>/dev/null |
    python3 -c "import json,sys; m=json.load(sys.stdin); print(next(p['manifest_path'] for p in m['packages'] if p['name']=='$CRATE' and p['version']=='$VERSION'))")"
PKG="$(dirname "$PKG")"
[ -d "$PKG" ] || die "no unpacked $CRATE $VERSION in the cargo registry"
if [ ! -f "$PKG/tests/rest_catalog_test.rs" ]; then
    log "$CRATE $VERSION ships no tests/rest_catalog_test.rs: nothing to run"
    exit 0
fi

# ------------------------------------------------------------ a patched copy in the cache
WORKCOPY="$CACHE/$CRATE-$VERSION"
# Copied again only when this recipe changes: a fresh copy makes cargo recompile the crate.
STAMP="$(cat "$HERE/iceberg_test_utils/lib.rs" "$0" | sha256sum | cut -c1-16)"
if [ "$(cat "$WORKCOPY/.serac-stamp" 2>/dev/null)" != "$STAMP" ]; then
rm -rf "$WORKCOPY" "$CACHE/iceberg_test_utils"
cp -r "$PKG" "$WORKCOPY"
chmod -R u+w "$WORKCOPY"
mkdir -p "$CACHE/iceberg_test_utils/src"
cp "$HERE/iceberg_test_utils/lib.rs" "$CACHE/iceberg_test_utils/src/lib.rs"
cat >"$CACHE/iceberg_test_utils/Cargo.toml" <<EOF
[package]
name = "iceberg_test_utils"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
iceberg = "=$VERSION"
EOF
cat >>"$WORKCOPY/Cargo.toml" <<'EOF'

# Added by Serac's tests/compat/iceberg_rust.sh: the stand-in for the stripped path dependency.
[dev-dependencies.iceberg_test_utils]
path = "../iceberg_test_utils"

[workspace]
EOF
echo "$STAMP" >"$WORKCOPY/.serac-stamp"
fi

log "building the test target (nice -n 19, CARGO_TARGET_DIR=$TARGET)"
BUILD_LOG="$CACHE/$CRATE-$VERSION-build.log"
if ! (cd "$WORKCOPY" && CARGO_TARGET_DIR="$TARGET" nice -n 19 cargo test -j "${SERAC_COMPAT_JOBS:-2}" \
    --test rest_catalog_test --no-run --message-format short) >"$BUILD_LOG" 2>&1; then
    tail -n 60 "$BUILD_LOG" >&2
    die "the build failed (log: $BUILD_LOG)"
fi
TEST_BIN="$(cd "$WORKCOPY" && CARGO_TARGET_DIR="$TARGET" cargo test --test rest_catalog_test --no-run \
    --message-format json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "rest_catalog_test":
        print(m["executable"])')"
[ -x "$TEST_BIN" ] || die "no test executable found"
log "built: $TEST_BIN"

# ------------------------------------------------------------------------ serac
WORK="$(mktemp -d "${TMPDIR:-/tmp}/serac-compat-rust.XXXXXX")"
# shellcheck source=tests/compat/serac.sh
. "$ROOT/tests/compat/serac.sh"
cleanup() {
    compat_stop_serac
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

compat_start_serac "$BACKEND" serac_compat_rust warn
log "serac ($BACKEND) on http://127.0.0.1:$PORT"

set +e
ICEBERG_TEST_REST_ENDPOINT="http://127.0.0.1:$PORT" RUST_BACKTRACE=0 "$TEST_BIN" "${TEST_ARGS[@]}" </dev/null 2>&1 |
    tee "$WORK/test.log"
set -e
# Classify: failures listed in iceberg-rust-known-failures.txt are expected.
python3 - "$WORK/test.log" "$KNOWN" <<'EOF2'
import re, sys
log, known_path = sys.argv[1], sys.argv[2]
known = {}
for line in open(known_path):
    line = line.strip()
    if line and not line.startswith("#"):
        name, _, reason = line.partition(" | ")
        known[name.strip()] = reason.strip()
results = dict(re.findall(r"^test (\S+) \.\.\. (ok|FAILED|ignored)$", open(log).read(), re.M))
if not results:
    sys.exit("no test results found")
passed = [t for t, r in results.items() if r == "ok" and t not in known]
expected = [t for t, r in results.items() if r == "FAILED" and t in known]
unexpected = [t for t, r in results.items() if r == "FAILED" and t not in known]
now_pass = [t for t, r in results.items() if r == "ok" and t in known]
for t in expected:
    print(f"known failure: {t}: {known[t]}")
for t in now_pass:
    print(f"listed test now PASSES (remove it from the list): {t}")
for t in unexpected:
    print(f"UNEXPECTED failure: {t}")
print(f"iceberg-rust compat: {len(passed)} passed, {len(expected)} known failures, "
      f"{len(unexpected)} unexpected failures, {len(now_pass)} known now passing")
sys.exit(1 if unexpected else 0)
EOF2
rc=$?
if [ "$rc" != 0 ]; then tail -n 40 "$WORK/serac.log" >&2 || true; fi
log "done in $((SECONDS - T0)) s (exit $rc)"
exit "$rc"
