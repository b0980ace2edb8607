#!/usr/bin/env bash
# Serac load benchmark, one command:
#
#   ./benches/run.sh [--sqlite] [--pg-fast] [LOAD-GENERATOR ARGS...]
#
# 1. builds `serac` (release) and the load generator (benches/load.rs);
# 2. PostgreSQL backend (default): starts a throwaway cluster (tests/lib/pg.sh),
#    switches it back to realistic durability (fsync, synchronous_commit and
#    full_page_writes on; pg.sh turns them off for tests) and creates a
#    database; with --sqlite the embedded SQLite backend is used instead;
#    with --seed-scale the database is first filled by benches/seed.sh;
# 3. starts `serac serve` on a free port with its data in a temp dir and
#    waits for GET /v1/config = 200;
# 4. runs the load generator against it, with --server-pid so that it
#    reports the server's memory (RSS sampled every 0.5 s, after each row,
#    peak, VmHWM, idle and at the end); every argument not listed here is
#    passed through, e.g. --duration 5 --concurrency 1,16,64 --json
#    (see `cargo bench --bench load -- --help`);
# 5. stops everything, also on failure or Ctrl-C.
#
# Options of this script:
#   --sqlite     benchmark the embedded SQLite backend instead of PostgreSQL
#   --pg-fast    keep pg.sh's test settings (fsync=off, ...) instead of
#                turning durability back on
#   --seed-scale NAMESPACES,TABLES[,LIST]
#                PostgreSQL only: before the server starts, seed the database
#                with NAMESPACES namespaces and TABLES tables (benches/seed.sh,
#                e.g. 100000,1000000) plus the namespace seed_list holding LIST
#                tables (default 1000), which the list-tables scenario lists
#   --auth       run the server with --auth oauth2 (a bootstrap admin) and send every
#                request with a bearer token: an admin's JWT, or with --auth-principal
#                a non-admin principal's API key holding read/write/create on the
#                warehouse through a role; --auth-principal-jwt: that principal's JWT
#                (client credentials) instead of an API key; the scenario `token`
#                measures POST /v1/oauth/tokens
#   --s3 MODE    run the scenarios against an S3 warehouse instead of the default
#                file:// one: starts SeaweedFS with STS (tests/lib/s3.sh), creates the
#                warehouse `lake` with a storage profile in credential-mode MODE (vended,
#                static, remote-signing or none) and passes --prefix lake to the load
#                generator; every load then carries the table's storage credentials
#   --tmpfs      keep the server's data dir (SQLite file, file:// warehouse) on a tmpfs
#                mounted for the run (needs root). On a journal-less ext4, as on the
#                benchmark machine, creating a file scans the inodes deleted in the last
#                minutes; each commit creates a metadata file, so on disk the commit
#                figures depend on what was deleted before the run (a previous run's
#                cleanup). A tmpfs measures the server alone.
#   -h, --help   show this help
#
# Environment knobs (all optional):
#   CARGO_TARGET_DIR   build dir (default: $HOME/.cache/serac/target, shared with tests/run.sh)
#   SERAC_KEEP_TMP=1   keep the temp dir (server log, data) after the run
#   SERAC_BENCH_BIN    a serac binary to benchmark instead of building one (before/after runs)
#   SERAC_BENCH_LOG_LEVEL  server log level (default info: one JSON line per request,
#                      as in production; warn leaves the access log out)
#   SERAC_*            other server settings (e.g. SERAC_DB_MAX_CONNECTIONS=32)
#                      are read by `serac serve` from the environment
#
# Exit status: that of the load generator (non-zero on setup failure or lost
# commits), or non-zero if building or starting the server failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'; }

BACKEND=postgres
PG_FAST=0
TMPFS=0
SEED_SCALE=""
LOAD_ARGS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --sqlite) BACKEND=sqlite ;;
        --pg-fast) PG_FAST=1 ;;
        --tmpfs) TMPFS=1 ;;
        --auth) AUTH=1 ;;
        --auth-principal) AUTH=1; AUTH_PRINCIPAL=1 ;;
        --auth-principal-jwt) AUTH=1; AUTH_PRINCIPAL=1; AUTH_PRINCIPAL_JWT=1 ;;
        --s3)
            [ $# -ge 2 ] || { echo "--s3 needs a credential mode (vended, static, remote-signing, none)" >&2; exit 2; }
            S3_MODE="$2"; shift ;;
        --seed-scale)
            [ $# -ge 2 ] || { echo "--seed-scale needs NAMESPACES,TABLES[,LIST]" >&2; exit 2; }
            SEED_SCALE="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        *) LOAD_ARGS+=("$1") ;;
    esac
    shift
done

AUTH="${AUTH:-0}"; AUTH_PRINCIPAL="${AUTH_PRINCIPAL:-0}"; S3_MODE="${S3_MODE:-}"
case "$S3_MODE" in
    ""|vended|static|remote-signing|none) ;;
    *) echo "--s3: unknown credential mode '$S3_MODE' (vended, static, remote-signing, none)" >&2; exit 2 ;;
esac
if [ -z "${CARGO_TARGET_DIR:-}" ]; then
    export CARGO_TARGET_DIR="$HOME/.cache/serac/target"
fi
mkdir -p "$CARGO_TARGET_DIR"
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi

log() { printf '==> %s\n' "$*" >&2; }

SEED_ARGS=()
if [ -n "$SEED_SCALE" ]; then
    if [ "$BACKEND" != postgres ]; then
        echo "--seed-scale seeds PostgreSQL only" >&2
        exit 2
    fi
    IFS=, read -r seed_ns seed_tables seed_list extra <<<"$SEED_SCALE"
    if ! [[ "$seed_ns" =~ ^[0-9]+$ && "$seed_tables" =~ ^[0-9]+$ && "${seed_list:-1000}" =~ ^[0-9]+$ ]] || [ -n "${extra:-}" ]; then
        echo "--seed-scale NAMESPACES,TABLES[,LIST]: got '$SEED_SCALE'" >&2
        exit 2
    fi
    SEED_ARGS=(--namespaces "$seed_ns" --tables "$seed_tables" --list-tables "${seed_list:-1000}")
fi

# The connections scenario holds thousands of sockets in both processes: give the server
# and the load generator the hard open-file limit (the load generator checks it too).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ------------------------------------------------------------------ build
log "building serac (release) and the load generator"
if [ -n "${SERAC_BENCH_BIN:-}" ]; then
    # Another build of serac (for example the previous commit's, for a before/after).
    SERAC_BIN="$SERAC_BENCH_BIN"
else
    cargo build --release --bin serac
    SERAC_BIN="$CARGO_TARGET_DIR/release/serac"
fi
cargo bench --bench load --no-run
if [ ! -x "$SERAC_BIN" ]; then
    echo "serac binary not found at $SERAC_BIN" >&2
    exit 1
fi

# ------------------------------------------------------------------ cleanup
WORK="$(mktemp -d "${TMPDIR:-/tmp}/serac-bench.XXXXXX")"
SERAC_PID=""
PG_STARTED=0
S3_STARTED=0
TMPFS_MOUNTED=0

cleanup() {
    if [ -n "$SERAC_PID" ] && kill -0 "$SERAC_PID" 2>/dev/null; then
        kill -TERM "$SERAC_PID" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$SERAC_PID" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL "$SERAC_PID" 2>/dev/null || true
        wait "$SERAC_PID" 2>/dev/null || true
    fi
    if [ "$PG_STARTED" = 1 ]; then
        serac_pg_stop || true
    fi
    if [ "$S3_STARTED" = 1 ]; then
        serac_s3_stop || true
    fi
    if [ "$TMPFS_MOUNTED" = 1 ]; then
        umount "$WORK/data" || true
    fi
    if [ "${SERAC_KEEP_TMP:-0}" = "1" ]; then
        echo "kept temp dir: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

http_status() { # http_status URL -> status code, 000 when unreachable
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" 2>/dev/null || true
}

# ------------------------------------------------------------------ database
SERVE_DB_ARGS=()
LABEL=""
# Only the explicit flag below decides the backend.
unset SERAC_DATABASE_URL DATABASE_URL || true

if [ "$BACKEND" = postgres ]; then
    if [ ! -f "$ROOT/tests/lib/pg.sh" ]; then
        echo "tests/lib/pg.sh is missing" >&2
        exit 1
    fi
    # shellcheck source=tests/lib/pg.sh
    . "$ROOT/tests/lib/pg.sh"
    log "starting a throwaway PostgreSQL cluster"
    PG_STARTED=1
    serac_pg_start
    PSQL="$SERAC_PG_BINDIR/psql"
    [ -x "$PSQL" ] || PSQL="$(command -v psql)"
    psql_q() { "$PSQL" "$SERAC_TEST_PG_URL" -v ON_ERROR_STOP=1 -qAtX "$@"; }
    psql_q -c "CREATE DATABASE serac_bench" >/dev/null
    DB_URL="postgres://postgres@127.0.0.1:${SERAC_PG_PORT}/serac_bench"

    if [ "${#SEED_ARGS[@]}" -gt 0 ]; then
        # Seeded before durability is turned on (a bulk load; the CHECKPOINT below writes
        # it all out before the server starts).
        log "seeding: ${SEED_ARGS[*]}"
        mkdir -p "$WORK/data"
        seeded="$(PSQL="$PSQL" "$ROOT/benches/seed.sh" --database-url "$DB_URL" "${SEED_ARGS[@]}" \
            --serac "$SERAC_BIN" --warehouse-location "file://$WORK/data/warehouse")"
        log "$seeded"
        # seeded namespaces=N tables=T list_tables=L insert_s=S analyze_s=S db_bytes=B
        declare -A seed=()
        for kv in ${seeded#seeded }; do seed[${kv%%=*}]="${kv#*=}"; done
        LOAD_ARGS=(--list-namespace seed_list
            --note "seeded ${seed[namespaces]} namespaces and ${seed[tables]} tables (+ seed_list with ${seed[list_tables]}) by SQL in ${seed[insert_s]} s, VACUUM ANALYZE ${seed[analyze_s]} s; database size $((seed[db_bytes] / 1048576)) MiB"
            "${LOAD_ARGS[@]}")
    fi

    if [ "$PG_FAST" = 1 ]; then
        want=off
    else
        want=on
        # pg.sh tunes the cluster for tests (no fsync); a benchmark of a
        # catalog, whose whole job is durable commits, needs the real thing.
        # ALTER SYSTEM (postgresql.auto.conf) overrides postgresql.conf.
        psql_q -c "ALTER SYSTEM SET fsync = on" \
               -c "ALTER SYSTEM SET synchronous_commit = on" \
               -c "ALTER SYSTEM SET full_page_writes = on" \
               -c "SELECT pg_reload_conf()" >/dev/null
        for _ in $(seq 1 50); do
            [ "$(psql_q -c 'SHOW fsync')" = on ] && break
            sleep 0.1
        done
    fi
    # Nothing the setup wrote (the seed above) is left for a checkpoint during the run.
    psql_q -c "CHECKPOINT" >/dev/null
    settings="$(psql_q -F ' ' -c "SELECT string_agg(name || '=' || setting, ' ' ORDER BY name) FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'full_page_writes')")"
    if [ "$want" = on ] && [ "$(psql_q -c 'SHOW fsync')" != on ]; then
        echo "could not turn fsync on ($settings)" >&2
        exit 1
    fi
    version="$(psql_q -c 'SHOW server_version' | cut -d' ' -f1)"
    SERVE_DB_ARGS=(--database-url "$DB_URL")
    LABEL="backend: PostgreSQL $version ($settings)"
else
    LABEL="backend: embedded SQLite"
fi
log "$LABEL"

# ------------------------------------------------------------------ server
PORT="$(free_port)"
URI="http://127.0.0.1:$PORT"
mkdir -p "$WORK/data"
if [ "$TMPFS" = 1 ]; then
    mount -t tmpfs -o "size=${SERAC_BENCH_TMPFS_SIZE:-8g}" serac-bench "$WORK/data"
    TMPFS_MOUNTED=1
    log "server data dir on a tmpfs ($WORK/data)"
fi
log "starting serac on $URI (log: $WORK/serac.log)"
AUTH_ARGS=()
if [ "$AUTH" = 1 ]; then
    AUTH_ARGS=(--auth oauth2)
    export SERAC_BOOTSTRAP_CLIENT_ID=bench-admin SERAC_BOOTSTRAP_CLIENT_SECRET=bench-admin-secret-0123
fi
"$SERAC_BIN" serve --bind "127.0.0.1:$PORT" "${SERVE_DB_ARGS[@]}" "${AUTH_ARGS[@]}" \
    --data-dir "$WORK/data" --log-format json --log-level "${SERAC_BENCH_LOG_LEVEL:-info}" \
    >"$WORK/serac.log" 2>&1 &
SERAC_PID=$!

ready=0
for _ in $(seq 1 300); do
    if [ "$(http_status "$URI/v1/config")" = 200 ]; then ready=1; break; fi
    if ! kill -0 "$SERAC_PID" 2>/dev/null; then break; fi
    sleep 0.2
done
if [ "$ready" != 1 ]; then
    echo "serac did not become ready (GET /v1/config != 200); its log:" >&2
    tail -n 50 "$WORK/serac.log" >&2 || true
    exit 1
fi

if [ "$AUTH" = 1 ]; then
    admin_token="$(curl -sf -X POST "$URI/v1/oauth/tokens" \
        -d grant_type=client_credentials -d client_id=bench-admin -d client_secret=bench-admin-secret-0123 |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
    token="$admin_token"
    if [ "$AUTH_PRINCIPAL" = 1 ]; then
        # A principal without admin, in a role that holds read, write and create on the
        # warehouse: every request reads its grants.
        api() { curl -sf -X "$1" -H "Authorization: Bearer $admin_token" -H 'content-type: application/json' "$URI/management/v1/$2" ${3:+-d "$3"}; }
        user="$(api POST principals '{"name": "bench-user"}')"
        api POST roles '{"name": "bench"}' >/dev/null
        api PUT roles/bench/members/bench-user >/dev/null
        for p in read write create; do
            api POST roles/bench/grants "{\"privilege\": \"$p\", \"warehouse\": \"default\"}" >/dev/null
        done
        if [ "${AUTH_PRINCIPAL_JWT:-0}" = 1 ]; then
            # Its own token, by the client credentials flow (what Spark and PyIceberg do).
            user_id="$(echo "$user" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client-id"])')"
            user_secret="$(echo "$user" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client-secret"])')"
            token="$(curl -sf -X POST "$URI/v1/oauth/tokens" -d grant_type=client_credentials \
                -d client_id="$user_id" -d client_secret="$user_secret" |
                python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
        else
            token="$(api POST principals/bench-user/api-keys '{}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')"
        fi
    fi
    LOAD_ARGS=(--token "$token" --client-credentials bench-admin:bench-admin-secret-0123 "${LOAD_ARGS[@]}")
    kind="admin JWT"
    [ "$AUTH_PRINCIPAL" = 1 ] && kind="API key of a principal with grants"
    [ "${AUTH_PRINCIPAL_JWT:-0}" = 1 ] && kind="JWT of a principal with grants"
    LABEL="$LABEL, --auth oauth2 ($kind)"
fi

if [ -n "$S3_MODE" ]; then
    # shellcheck source=tests/lib/s3.sh
    . "$ROOT/tests/lib/s3.sh"
    log "starting SeaweedFS (S3 with STS)"
    S3_STARTED=1
    serac_s3_start >"$WORK/s3.log" 2>&1 || { cat "$WORK/s3.log" >&2; exit 1; }
    profile="$(S3_MODE="$S3_MODE" python3 -c '
import json, os
e = os.environ
p = {"type": "s3", "endpoint": e["SERAC_TEST_S3_ENDPOINT"], "region": "us-east-1",
     "path-style-access": True, "access-key-id": e["SERAC_TEST_S3_ACCESS_KEY_ID"],
     "secret-access-key": e["SERAC_TEST_S3_SECRET_ACCESS_KEY"], "credential-mode": e["S3_MODE"]}
if e["S3_MODE"] == "vended":
    p["sts"] = {"role-arn": e["SERAC_TEST_S3_ROLE_ARN"], "session-duration": "1h"}
print(json.dumps({"name": "lake", "location": "s3://%s/bench" % e["SERAC_TEST_S3_BUCKET"], "storage": p}))
')"
    auth_header=()
    if [ "$AUTH" = 1 ]; then auth_header=(-H "Authorization: Bearer $admin_token"); fi
    if ! curl -sf -X POST "${auth_header[@]}" -H 'content-type: application/json' \
        "$URI/management/v1/warehouses" -d "$profile" >/dev/null; then
        echo "could not create the S3 warehouse:" >&2
        curl -s -X POST "${auth_header[@]}" -H 'content-type: application/json' \
            "$URI/management/v1/warehouses" -d "$profile" >&2 || true
        exit 1
    fi
    if [ "$AUTH_PRINCIPAL" = 1 ]; then
        for p in read write create; do
            api POST roles/bench/grants "{\"privilege\": \"$p\", \"warehouse\": \"lake\"}" >/dev/null
        done
    fi
    LOAD_ARGS=(--prefix lake "${LOAD_ARGS[@]}")
    LABEL="$LABEL, S3 warehouse (SeaweedFS, credential-mode $S3_MODE)"
fi

# ------------------------------------------------------------------ load
log "running the load generator"
rc=0
MEM_ARGS=()
if [ -r "/proc/$SERAC_PID/status" ]; then MEM_ARGS=(--server-pid "$SERAC_PID"); fi
cargo bench --bench load -q -- --uri "$URI" --label "$LABEL" "${MEM_ARGS[@]}" "${LOAD_ARGS[@]}" || rc=$?
if [ "$rc" != 0 ]; then
    echo "load generator exited with $rc; last lines of the server log:" >&2
    tail -n 30 "$WORK/serac.log" >&2 || true
elif [ -s "$WORK/serac.log" ]; then
    echo "(server log: $(wc -l <"$WORK/serac.log") line(s), $(grep -c -E '"level":"(WARN|ERROR)"' "$WORK/serac.log" || true) at warn level or above; SERAC_KEEP_TMP=1 keeps them)" >&2
fi
exit "$rc"
