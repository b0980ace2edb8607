# shellcheck shell=bash
# Starting and stopping the Serac the compatibility suites run against. Source it after
# defining ROOT, WORK, log and die; then:
#
#   compat_start_serac BACKEND DB_PREFIX LOG_LEVEL   # sqlite|postgres; sets PORT, URI, SERVER_PID
#   compat_stop_serac                                # in the caller's EXIT trap
#
# On postgres it uses the cluster of $SERAC_TEST_PG_URL (with SERAC_PG_BINDIR and
# SERAC_PG_PORT, as tests/lib/pg.sh exports them) or starts a throwaway one.

SERVER_PID=""
PG_STARTED=0

compat_start_serac() {
    local backend="$1" db_prefix="$2" log_level="$3" db
    PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
    URI="http://127.0.0.1:$PORT"
    mkdir -p "$WORK/data"
    local args=(serve --data-dir "$WORK/data" --bind "127.0.0.1:$PORT")
    if [ "$backend" = postgres ]; then
        if [ -z "${SERAC_TEST_PG_URL:-}" ] || [ -z "${SERAC_PG_BINDIR:-}" ] || [ -z "${SERAC_PG_PORT:-}" ]; then
            # shellcheck source=tests/lib/pg.sh
            . "$ROOT/tests/lib/pg.sh"
            serac_pg_start || die "could not start PostgreSQL"
            PG_STARTED=1
        fi
        db="${db_prefix}_$$_$RANDOM"
        "$SERAC_PG_BINDIR/createdb" -h 127.0.0.1 -p "$SERAC_PG_PORT" -U postgres "$db" || die "createdb $db failed"
        args+=(--database-url "postgres://postgres@127.0.0.1:$SERAC_PG_PORT/$db")
    fi
    log "serac ${args[*]}"
    env -u SERAC_DATABASE_URL -u DATABASE_URL -u SERAC_WAREHOUSE_LOCATION -u SERAC_DEFAULT_WAREHOUSE \
        "$SERAC_BIN" --log-level "$log_level" "${args[@]}" >"$WORK/serac.log" 2>&1 </dev/null &
    SERVER_PID=$!
    for _ in $(seq 1 150); do
        if python3 -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)" \
            "$URI/v1/config" 2>/dev/null; then
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.2
    done
    tail -n 40 "$WORK/serac.log" >&2 || true
    die "serac did not answer GET /v1/config"
}

compat_stop_serac() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "$PG_STARTED" = 1 ]; then serac_pg_stop || true; fi
}
