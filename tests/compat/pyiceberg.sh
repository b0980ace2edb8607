#!/usr/bin/env bash
# PyIceberg's own integration suite (the pyiceberg 0.12.0 sdist from PyPI) against Serac.
#
# Upstream runs tests/ -m integration against a docker-compose stack (Iceberg's Java REST
# fixture, MinIO, a Hive metastore, Spark 4 Connect). Here:
#   1. the sdist is downloaded with pip (cached under $SERAC_COMPAT_CACHE) and checked
#      against a pinned sha256, then unpacked fresh for every run;
#   2. a venv of its own gets the test dependencies (tests/compat/pyiceberg-requirements.txt);
#   3. tests/compat/adapt_pyiceberg.py points the copy at Serac (REST URI, no S3 settings,
#      file:// warehouse, in-process Spark 3.5 instead of Spark 4 Connect);
#   4. Serac starts (embedded SQLite, or PostgreSQL with --backend postgres) on a free port
#      with a fresh data directory;
#   5. dev/provision.py creates upstream's fixture tables through Spark 3.5 + Iceberg 1.10.2
#      (tests/clients/spark_setup.sh) and PyIceberg;
#   6. pytest runs the integration tests. Tests listed in tests/compat/pyiceberg-known-failures.txt
#      are expected to fail (xfail with their reason, via tests/compat/serac_known_failures.py).
#
# Exit status: 0 when every failure is a listed one; non-zero on any unlisted failure or
# error (named at the end), or when setup fails. Listed tests that now pass are named too.
#
# Usage: tests/compat/pyiceberg.sh [--quick] [--backend sqlite|postgres] [--keep] [-- PYTEST_ARGS...]
#   --quick      only the catalog-facing files (QUICK_FILES below): what CI runs
#   (default)    the whole integration suite, as upstream's `make test-integration` selects it
#   --backend    sqlite (default) or postgres (uses $SERAC_TEST_PG_URL's cluster when set,
#                else starts a throwaway one with tests/lib/pg.sh)
#   --keep       keep the work directory (server log, data, adapted sources)
#   PYTEST_ARGS  passed to pytest last, e.g. -- -k test_catalog -x
#
# Environment (all optional):
#   SERAC_BIN            the serac binary (default: $CARGO_TARGET_DIR/debug/serac, with
#                        CARGO_TARGET_DIR defaulting to $HOME/.cache/serac/target)
#   SERAC_COMPAT_CACHE   downloads, venv, last results (default: $HOME/.cache/serac/compat)
#   SERAC_SPARK_CACHE    see tests/clients/spark_setup.sh
#   SERAC_COMPAT_LOG_LEVEL  serac's --log-level (default: warn)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/compat"

PYICEBERG_VERSION=0.12.0
SDIST="pyiceberg-$PYICEBERG_VERSION.tar.gz"
SDIST_SHA256=19f165d298054f9436108691098b60fa0fa99d0eff5fb884700c43b29334a39d

# The catalog-facing files: namespaces, tables, views, commits and their conflicts, schema,
# partition and sort-order evolution, snapshots and refs, statistics, scan planning, and the
# reads of the tables Spark provisioned through Serac.
QUICK_FILES=(
    tests/integration/test_catalog.py
    tests/integration/test_rest_catalog.py
    tests/integration/test_rest_schema.py
    tests/integration/test_partition_evolution.py
    tests/integration/test_sort_order_update.py
    tests/integration/test_snapshot_operations.py
    tests/integration/test_statistics_operations.py
    tests/integration/test_rest_scan_planning_integration.py
    tests/integration/test_rest_manifest.py
    tests/integration/test_reads.py
    tests/integration/test_inspect_table.py
    tests/integration/test_writes/test_optimistic_concurrency.py
)
# Upstream selects `tests/ -m integration`; the only integration-marked tests outside
# tests/integration are in tests/table/test_snapshots.py (and collecting all of tests/ would
# import unit-test modules that need google-cloud, nbformat and datafusion).
FULL_PATHS=(tests/integration tests/table/test_snapshots.py)

MODE=full
BACKEND=sqlite
KEEP=0
PYTEST_EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) MODE=quick ;;
    --full) MODE=full ;;
    --backend) BACKEND="${2:?--backend needs sqlite or postgres}"; shift ;;
    --backend=*) BACKEND="${1#--backend=}" ;;
    --keep) KEEP=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; PYTEST_EXTRA=("$@"); break ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$BACKEND" in sqlite | postgres) ;; *) echo "--backend must be sqlite or postgres" >&2; exit 2 ;; esac

CACHE="${SERAC_COMPAT_CACHE:-$HOME/.cache/serac/compat}"
VENV="$CACHE/venv-pyiceberg-$PYICEBERG_VERSION"
REQUIREMENTS="$HERE/pyiceberg-requirements.txt"
KNOWN="$HERE/pyiceberg-known-failures.txt"
SERAC_BIN="${SERAC_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/serac/target}/debug/serac}"

T0=$SECONDS
log() { printf '[compat %4ss] %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ -x "$SERAC_BIN" ] || die "serac binary not found at $SERAC_BIN (build it, or set SERAC_BIN)"
mkdir -p "$CACHE/dl" "$CACHE/results"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/serac-compat.XXXXXX")"
# shellcheck source=tests/compat/serac.sh
. "$ROOT/tests/compat/serac.sh"
cleanup() {
    compat_stop_serac
    if [ "$KEEP" = 1 ]; then log "kept work dir: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------ sdist and venv (cached)
exec 8>"$CACHE/.lock"
if command -v flock >/dev/null 2>&1; then flock 8; fi

REQ_STAMP="$(cat "$REQUIREMENTS" | sha256sum | cut -c1-16)"
venv_ok() {
    [ -x "$VENV/bin/python" ] && [ "$(cat "$VENV/.serac-requirements" 2>/dev/null)" = "$REQ_STAMP" ] &&
        "$VENV/bin/python" -c 'import pyiceberg, pyspark, pytest, pytest_lazy_fixtures, moto, duckdb' 2>/dev/null
}
if ! venv_ok; then
    log "preparing venv $VENV"
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV" || die "python3 -m venv failed"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQUIREMENTS" </dev/null >&2 ||
        die "pip install -r $REQUIREMENTS failed"
    echo "$REQ_STAMP" >"$VENV/.serac-requirements"
    venv_ok || die "the venv still lacks a test dependency"
fi
if [ ! -f "$CACHE/dl/$SDIST" ]; then
    log "pip download --no-binary :all: --no-deps pyiceberg==$PYICEBERG_VERSION"
    "$VENV/bin/python" -m pip download -q --disable-pip-version-check --no-binary :all: --no-deps \
        -d "$CACHE/dl/tmp" "pyiceberg==$PYICEBERG_VERSION" </dev/null >&2 || die "pip download failed"
    mv -f "$CACHE/dl/tmp/$SDIST" "$CACHE/dl/$SDIST" && rm -rf "$CACHE/dl/tmp"
fi
echo "$SDIST_SHA256  $CACHE/dl/$SDIST" | sha256sum -c --quiet - ||
    die "$SDIST does not have the pinned sha256 (delete it to download again)"

# DuckDB's `INSTALL iceberg` downloads from extensions.duckdb.org, which is unreachable here:
# install the same release's extensions from their PyPI packages into DuckDB's extension dir.
"$VENV/bin/python" - <<'EOF' || die "installing DuckDB extensions from their packages failed"
import importlib, pathlib, duckdb
con = duckdb.connect()
installed = {r[0] for r in con.sql("SELECT extension_name FROM duckdb_extensions() WHERE installed").fetchall()}
for name in ("avro", "httpfs", "iceberg"):
    if name not in installed:
        root = pathlib.Path(importlib.import_module(f"duckdb_extension_{name}").__file__).parent
        con.sql(f"INSTALL '{root / 'extensions' / ('v' + duckdb.__version__) / (name + '.duckdb_extension')}'")
EOF
flock -u 8 2>/dev/null || true

log "Spark 3.5 + Iceberg 1.10.2 (tests/clients/spark_setup.sh)"
SPARK_ENV="$(SERAC_PYTHON="$VENV/bin/python" bash "$ROOT/tests/clients/spark_setup.sh" </dev/null)" ||
    die "spark_setup.sh failed"
JAVA_HOME="$(sed -n 's/^JAVA_HOME=//p' <<<"$SPARK_ENV")"
SERAC_SPARK_JARS="$(sed -n 's/^SERAC_SPARK_JARS=//p' <<<"$SPARK_ENV")"
[ -n "$JAVA_HOME" ] && [ -n "$SERAC_SPARK_JARS" ] || die "spark_setup.sh printed no JAVA_HOME/SERAC_SPARK_JARS"

# ------------------------------------------------------------------- serac
compat_start_serac "$BACKEND" serac_compat "${SERAC_COMPAT_LOG_LEVEL:-warn}"
WAREHOUSE="$("$VENV/bin/python" -c "import json, sys, urllib.request; print(json.load(urllib.request.urlopen(sys.argv[1]))['overrides']['warehouse'])" "$URI/v1/config")"
log "serac ($BACKEND) ready at $URI, warehouse $WAREHOUSE"

# ---------------------------------------------------------- adapted sources
tar -xzf "$CACHE/dl/$SDIST" -C "$WORK"
SRC="$WORK/pyiceberg-$PYICEBERG_VERSION"
"$VENV/bin/python" "$HERE/adapt_pyiceberg.py" "$SRC" --uri "$URI" --warehouse "$WAREHOUSE" >&2 ||
    die "adapt_pyiceberg.py failed"

export JAVA_HOME SERAC_SPARK_JARS SERAC_URI="$URI"
export TZ=UTC LC_ALL=C.UTF-8 LANG=C.UTF-8 PYTHONDONTWRITEBYTECODE=1
# The suite's own hook for an external catalog (rest_test_catalog in test_catalog.py): Serac again.
export PYICEBERG_TEST_CATALOG=serac PYICEBERG_CATALOG__SERAC__TYPE=rest PYICEBERG_CATALOG__SERAC__URI="$URI"

log "dev/provision.py (Spark 3.5 + PyIceberg -> serac)"
if ! (cd "$SRC" && PYTHONPATH="$SRC" "$VENV/bin/python" dev/provision.py >"$WORK/provision.log" 2>&1 </dev/null); then
    tail -n 60 "$WORK/provision.log" >&2 || true
    tail -n 40 "$WORK/serac.log" >&2 || true
    die "dev/provision.py failed"
fi

# -------------------------------------------------------------------- pytest
if [ "$MODE" = quick ]; then TARGETS=("${QUICK_FILES[@]}"); else TARGETS=("${FULL_PATHS[@]}"); fi
RESULTS="$CACHE/results/$MODE-$BACKEND"
rm -rf "$RESULTS"
mkdir -p "$RESULTS"
log "pytest ($MODE: ${#TARGETS[@]} path(s)) -m integration"
set +e
(
    cd "$SRC"
    PYTHONPATH="$HERE" "$VENV/bin/python" -m pytest "${TARGETS[@]}" -m integration \
        -p no:cacheprovider -p serac_known_failures \
        --serac-known-failures "$KNOWN" --serac-report "$RESULTS/report.json" \
        --junitxml "$RESULTS/junit.xml" -q -rfE --tb=short "${PYTEST_EXTRA[@]}" </dev/null
) 2>&1 | tee "$RESULTS/pytest.log"
rc="${PIPESTATUS[0]}"
set -e
cp -f "$WORK/serac.log" "$WORK/provision.log" "$RESULTS/" 2>/dev/null || true

if [ ! -s "$RESULTS/report.json" ]; then
    log "pytest wrote no report (exit $rc)"
    tail -n 40 "$WORK/serac.log" >&2 || true
    exit 1
fi
"$VENV/bin/python" - "$RESULTS/report.json" "$rc" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
c = r["counts"]
print(
    f"pyiceberg compat: {c.get('passed', 0)} passed, {c.get('xfailed', 0)} known failures, "
    f"{c.get('failed', 0) + c.get('error', 0)} unexpected failures/errors, {len(r['xpassed'])} known now passing, "
    f"{len(r.get('flaky_passed', []))} flaky passing, {c.get('skipped', 0)} skipped (pytest exit {sys.argv[2]})"
)
EOF
log "done in $((SECONDS - T0)) s; results in $RESULTS"
if [ "$rc" != 0 ]; then
    tail -n 40 "$WORK/serac.log" >&2 || true
    exit 1
fi
