#!/usr/bin/env bash
# Runs Serac's whole test suite:
#
#   1. cargo test            (unit + Rust integration tests; a throwaway
#                             PostgreSQL cluster is provided via SERAC_TEST_PG_URL, and a
#                             throwaway S3 with STS (SeaweedFS, tests/lib/s3.sh) via
#                             SERAC_TEST_S3_*; both are started once and shared by all stages)
#   2. clients-sqlite        (real clients against `serac serve` on the embedded SQLite
#                             backend: PyIceberg, DuckDB, Spark 3.5 with Iceberg 1.10,
#                             and the OpenAPI contract check; see tests/clients; a second
#                             server with --auth oauth2 for the clients' OAuth2 flows)
#   3. clients-postgres      (the same on the PostgreSQL backend)
#   4. compat                (PyIceberg 0.12.0's own integration tests, catalog-facing files,
#                             against `serac serve` on SQLite: tests/compat/pyiceberg.sh --quick;
#                             failures listed in tests/compat/pyiceberg-known-failures.txt are
#                             expected, any other fails the stage. See tests/compat/README.md)
#   5. compat-rust           (iceberg-rust's REST catalog tests, from the iceberg-catalog-rest
#                             0.9.0 crate package, against `serac serve` on SQLite and on
#                             PostgreSQL: tests/compat/iceberg_rust.sh; failures listed in
#                             tests/compat/iceberg-rust-known-failures.txt are expected)
#   6. deploy                (the Dockerfile, the kustomize overlays, the Prometheus rules and
#                             the Grafana dashboard: hadolint, kustomize render, checkov,
#                             Kubernetes schemas, promtool check/test rules, a real Prometheus
#                             scraping Serac, the container contract with the binary:
#                             tests/deploy/run.sh; its tools go to $HOME/.cache/serac/deploy-venv
#                             and Debian's prometheus package. SERAC_DEPLOY_IMAGE=1 also builds
#                             the image with podman and checks it)
#
# Every stage runs even if an earlier one failed; the script exits non-zero if
# any stage failed and ends with a line "N passed, N failed".
#
# Environment knobs (all optional):
#   CARGO_TARGET_DIR     build dir (default: $HOME/.cache/serac/target, reused across runs)
#   SERAC_VENV           Python venv for the client tests (default: $HOME/.cache/serac/venv)
#   SERAC_TEST_THREADS   parallelism for `cargo test` (default: 4)
#   SERAC_KEEP_TMP=1     keep the temp dir (server logs, data) after the run
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

export PYTHONDONTWRITEBYTECODE=1
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

if [ -z "${CARGO_TARGET_DIR:-}" ]; then
    export CARGO_TARGET_DIR="$HOME/.cache/serac/target"
fi
mkdir -p "$CARGO_TARGET_DIR"

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

VENV="${SERAC_VENV:-$HOME/.cache/serac/venv}"
TEST_THREADS="${SERAC_TEST_THREADS:-4}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/serac-tests.XXXXXX")"
SERVER_PIDS=()

log() { printf '\n==> %s\n' "$*"; }

# shellcheck source=tests/lib/pg.sh
. "$ROOT/tests/lib/pg.sh"
# shellcheck source=tests/lib/s3.sh
. "$ROOT/tests/lib/s3.sh"

cleanup() {
    local pid
    for pid in "${SERVER_PIDS[@]:-}"; do
        if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            sleep 1
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    serac_pg_stop || true
    serac_s3_stop || true
    if [ "${SERAC_KEEP_TMP:-0}" = "1" ]; then
        echo "kept temp dir: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- bookkeeping
STAGE_NAMES=()
STAGE_RESULTS=()
record() { # record NAME pass|fail
    STAGE_NAMES+=("$1")
    STAGE_RESULTS+=("$2")
    if [ "$2" = pass ]; then log "stage $1: PASSED"; else log "stage $1: FAILED"; fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

http_status() { # http_status URL -> prints status code (000 when unreachable)
    if command -v curl >/dev/null 2>&1; then
        curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true
    else
        python3 - "$1" <<'EOF' 2>/dev/null || echo 000
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
EOF
    fi
}

show_log() { # show_log FILE [LINES]
    if [ -f "$1" ]; then
        echo "----- last ${2:-80} lines of $1 -----"
        tail -n "${2:-80}" "$1" || true
        echo "----- end of log -----"
    fi
}

# ------------------------------------------------------------------ postgres
log "starting throwaway PostgreSQL cluster"
PG_OK=1
if ! serac_pg_start; then
    PG_OK=0
    echo "could not start PostgreSQL; tests that need it will fail" >&2
fi

# ------------------------------------------------------------------------ s3
log "starting throwaway S3 with STS (SeaweedFS)"
if ! serac_s3_start; then
    echo "could not start SeaweedFS; tests that need S3 will fail" >&2
fi

# --------------------------------------------------------------------- build
LOCKED=()
if [ -f Cargo.lock ]; then LOCKED=(--locked); fi
# The test build has failure-injection hooks (reachable only from Rust tests, never over
# HTTP); building the binary with the same features compiles the crate once, not twice.
LOCKED+=(--features failpoints)

log "cargo build --bins ${LOCKED[*]} (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
BUILD_OK=1
if ! cargo build --bins "${LOCKED[@]}"; then
    BUILD_OK=0
fi
SERAC_BIN="$CARGO_TARGET_DIR/debug/serac"

# ---------------------------------------------------------------- cargo test
log "cargo test ${LOCKED[*]} -- --test-threads=$TEST_THREADS"
if [ "$BUILD_OK" = 1 ] && cargo test "${LOCKED[@]}" -- --test-threads="$TEST_THREADS"; then
    record "cargo-test" pass
else
    [ "$BUILD_OK" = 1 ] || echo "cargo build failed; see errors above" >&2
    record "cargo-test" fail
fi

# ---------------------------------------------------------------- python venv
REQUIREMENTS="$ROOT/tests/clients/requirements.txt"
REQ_STAMP="$(sha256sum "$REQUIREMENTS" | cut -c1-16)"
venv_ok() {
    [ -x "$VENV/bin/python" ] &&
        [ "$(cat "$VENV/.serac-requirements" 2>/dev/null)" = "$REQ_STAMP" ] &&
        "$VENV/bin/python" -c 'import pyiceberg.catalog.rest, pyarrow, pyiceberg_core, pytest, duckdb, schemathesis, yaml' >/dev/null 2>&1
}

log "preparing Python venv at $VENV"
VENV_OK=1
if ! venv_ok; then
    {
        if [ ! -x "$VENV/bin/python" ]; then
            rm -rf "$VENV"
            mkdir -p "$(dirname "$VENV")"
            python3 -m venv "$VENV"
        fi &&
            "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip </dev/null &&
            "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade \
                -r "$REQUIREMENTS" </dev/null &&
            echo "$REQ_STAMP" >"$VENV/.serac-requirements" &&
            venv_ok
    } || VENV_OK=0
fi
if [ "$VENV_OK" = 1 ]; then
    "$VENV/bin/python" -c 'import pyiceberg, pyarrow; print("pyiceberg", pyiceberg.__version__, "/ pyarrow", pyarrow.__version__)'
else
    echo "could not prepare the Python venv at $VENV" >&2
fi

# ----------------------------------------------------------------- spark
# Prepared once here so that setup errors show early (the Spark tests run it too).
log "preparing Spark (tests/clients/spark_setup.sh)"
if [ "$VENV_OK" = 1 ]; then
    SERAC_PYTHON="$VENV/bin/python" bash tests/clients/spark_setup.sh >/dev/null ||
        echo "Spark setup failed; the Spark tests will fail" >&2
fi

# ------------------------------------------------------ client stages (PyIceberg, DuckDB, Spark)
SERVER_PID=""

stop_server() { # stop_server LOGFILE -> 0 if it exited within 15 s of SIGTERM
    local pid="$SERVER_PID" i
    SERVER_PID=""
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for i in $(seq 1 150); do
        if ! kill -0 "$pid" 2>/dev/null; then
            wait "$pid" 2>/dev/null || true
            return 0
        fi
        sleep 0.1
    done
    echo "serac (pid $pid) did not exit within 15 s of SIGTERM; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    show_log "$1" 40
    return 1
}

# The test OpenID Connect issuer of the authenticated server (tests sign its tokens).
OIDC_ISSUER="https://idp.test/realms/serac-clients"
OIDC_AUDIENCE="serac-clients"

run_pyiceberg_stage() { # run_pyiceberg_stage sqlite|postgres
    local backend="$1"
    local dir="$WORK/$backend"
    local data_dir="$dir/data"
    local server_log="$dir/serac.log"
    mkdir -p "$data_dir"

    if [ "$BUILD_OK" != 1 ] || [ ! -x "$SERAC_BIN" ]; then
        echo "serac binary not available ($SERAC_BIN); skipping" >&2
        return 1
    fi
    if [ "$VENV_OK" != 1 ]; then
        echo "Python venv not available; skipping" >&2
        return 1
    fi

    # Small plan tasks, so that the clients' scan-planning tests also see split plans; caps
    # far below the defaults (but above what the clients' tests need), so that the contract
    # test's generated requests meet them too.
    local args=(serve --data-dir "$data_dir" --scan-files-per-task 4
        --max-properties 200 --max-commit-updates 200 --max-transaction-changes 20
        --max-metadata-bytes 8388608)
    if [ "$backend" = postgres ]; then
        if [ "$PG_OK" != 1 ]; then
            echo "PostgreSQL not running; skipping" >&2
            return 1
        fi
        local db="serac_e2e_$$_$RANDOM"
        if ! "$SERAC_PG_BINDIR/createdb" -h 127.0.0.1 -p "$SERAC_PG_PORT" -U postgres "$db"; then
            echo "createdb $db failed" >&2
            return 1
        fi
        args+=(--database-url "postgres://postgres@127.0.0.1:${SERAC_PG_PORT}/${db}")
    fi

    local port status="000" i
    port="$(free_port)"
    args+=(--bind "127.0.0.1:$port")
    echo "+ serac ${args[*]}"
    # Flags decide everything; ignore SERAC_* settings from the caller's environment.
    env -u SERAC_DATABASE_URL -u SERAC_WAREHOUSE_LOCATION -u SERAC_DEFAULT_WAREHOUSE \
        "$SERAC_BIN" --log-level "${SERAC_TEST_LOG_LEVEL:-info,tower_http=debug}" "${args[@]}" >"$server_log" 2>&1 </dev/null &
    SERVER_PID=$!
    SERVER_PIDS+=("$SERVER_PID")

    for i in $(seq 1 100); do
        status="$(http_status "http://127.0.0.1:$port/v1/config")"
        [ "$status" = 200 ] && break
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "serac exited before becoming ready" >&2
            break
        fi
        sleep 0.2
    done
    if [ "$status" != 200 ]; then
        echo "serac did not answer GET /v1/config with 200 (last status: $status)" >&2
        show_log "$server_log"
        stop_server "$server_log" || true
        return 1
    fi
    echo "serac ($backend) ready on port $port"

    # A second server, with authentication on, for the clients' OAuth2 flows
    # (tests/clients/test_auth.py, and the secured catalog of test_spark.py), and bearer JWTs
    # of a test OpenID Connect issuer whose test-only keys are in tests/fixtures/oidc.
    local auth_dir="$dir/auth" auth_port auth_db_args=() auth_pid
    mkdir -p "$auth_dir"
    if [ "$backend" = postgres ]; then
        local auth_db="serac_auth_$$_$RANDOM"
        "$SERAC_PG_BINDIR/createdb" -h 127.0.0.1 -p "$SERAC_PG_PORT" -U postgres "$auth_db" || return 1
        auth_db_args=(--database-url "postgres://postgres@127.0.0.1:${SERAC_PG_PORT}/${auth_db}")
    fi
    auth_port="$(free_port)"
    env -u SERAC_DATABASE_URL -u SERAC_WAREHOUSE_LOCATION -u SERAC_DEFAULT_WAREHOUSE \
        SERAC_BOOTSTRAP_CLIENT_ID=clients-admin SERAC_BOOTSTRAP_CLIENT_SECRET=clients-admin-secret \
        "$SERAC_BIN" --log-level info serve --data-dir "$auth_dir/data" "${auth_db_args[@]}" \
        --auth oauth2 --bind "127.0.0.1:$auth_port" \
        --oidc-issuer "$OIDC_ISSUER" --oidc-audience "$OIDC_AUDIENCE" \
        --oidc-jwks-file "$ROOT/tests/fixtures/oidc/jwks.json" --oidc-principal-claim preferred_username \
        >"$auth_dir/serac.log" 2>&1 </dev/null &
    auth_pid=$!
    SERVER_PIDS+=("$auth_pid")
    for i in $(seq 1 100); do
        [ "$(http_status "http://127.0.0.1:$auth_port/health")" = 200 ] && break
        sleep 0.2
    done

    local rc=0
    SERAC_URI="http://127.0.0.1:$port" SERAC_BACKEND="$backend" \
        SERAC_AUTH_URI="http://127.0.0.1:$auth_port" SERAC_AUTH_CREDENTIAL="clients-admin:clients-admin-secret" \
        SERAC_AUTH_OIDC_ISSUER="$OIDC_ISSUER" SERAC_AUTH_OIDC_AUDIENCE="$OIDC_AUDIENCE" \
        "$VENV/bin/python" -m pytest -q -p no:cacheprovider -rs --tb=short tests/clients </dev/null || rc=$?
    if [ "$rc" != 0 ]; then
        show_log "$server_log"
        tail -n 40 "$auth_dir/serac.log" >&2 || true
    fi
    kill -TERM "$auth_pid" 2>/dev/null || true
    if ! stop_server "$server_log"; then
        rc=1
    fi
    return "$rc"
}

for backend in sqlite postgres; do
    log "stage clients-$backend"
    if run_pyiceberg_stage "$backend"; then
        record "clients-$backend" pass
    else
        record "clients-$backend" fail
    fi
done

# -------------------------------------------------------------------- compat
# PyIceberg's own integration suite (downloaded from PyPI, adapted at run time; its venv and
# downloads are cached under $HOME/.cache/serac/compat). About a minute and a half when cached.
log "stage compat (tests/compat/pyiceberg.sh --quick)"
if [ "$BUILD_OK" = 1 ] && [ -x "$SERAC_BIN" ] &&
    SERAC_BIN="$SERAC_BIN" bash tests/compat/pyiceberg.sh --quick </dev/null; then
    record "compat" pass
else
    [ "$BUILD_OK" = 1 ] || echo "serac binary not available; skipping" >&2
    record "compat" fail
fi

# -------------------------------------------------------------------- compat-rust
# iceberg-rust's REST catalog tests (the crate package from crates.io, built once into
# $HOME/.cache/serac/compat-target: minutes when cold, seconds when warm).
log "stage compat-rust (tests/compat/iceberg_rust.sh, both backends)"
if [ "$BUILD_OK" = 1 ] && [ -x "$SERAC_BIN" ] &&
    SERAC_BIN="$SERAC_BIN" bash tests/compat/iceberg_rust.sh --backend sqlite </dev/null &&
    SERAC_BIN="$SERAC_BIN" bash tests/compat/iceberg_rust.sh --backend postgres </dev/null; then
    record "compat-rust" pass
else
    [ "$BUILD_OK" = 1 ] || echo "serac binary not available; skipping" >&2
    record "compat-rust" fail
fi

# -------------------------------------------------------------------- deploy
# About a minute when its tools are cached (see tests/deploy/run.sh and deployments/README.md).
log "stage deploy (tests/deploy/run.sh)"
if [ "$BUILD_OK" = 1 ] && [ -x "$SERAC_BIN" ] &&
    SERAC_BIN="$SERAC_BIN" bash tests/deploy/run.sh </dev/null; then
    record "deploy" pass
else
    [ "$BUILD_OK" = 1 ] || echo "serac binary not available; skipping" >&2
    record "deploy" fail
fi

# -------------------------------------------------------------------- summary
passed=0
failed=0
log "summary"
for i in "${!STAGE_NAMES[@]}"; do
    printf '  %-20s %s\n' "${STAGE_NAMES[$i]}" "${STAGE_RESULTS[$i]}"
    if [ "${STAGE_RESULTS[$i]}" = pass ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
