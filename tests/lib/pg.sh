# shellcheck shell=bash
# Throwaway PostgreSQL cluster for Serac's tests and benchmarks.
#
# Source this file (do not execute it), then:
#
#   serac_pg_start   # creates + starts a private cluster, exports:
#                    #   SERAC_TEST_PG_URL  postgres://postgres@127.0.0.1:PORT/postgres
#                    #   SERAC_PG_BINDIR    directory holding initdb, pg_ctl, createdb, ...
#                    #   SERAC_PG_PORT      TCP port (127.0.0.1 only)
#                    #   SERAC_PG_DATA      data directory of the cluster
#   serac_pg_stop    # stops the cluster and deletes its files (safe to call twice)
#   serac_pg_pause   # stops the server but keeps the cluster (an outage)
#   serac_pg_resume  # starts it again on the same port
#
# pause/resume (and stop) work from another shell when _SERAC_PG_TMP and
# SERAC_PG_BINDIR are exported as serac_pg_start left them.
#
# The cluster uses trust authentication, listens only on 127.0.0.1 on a free
# port, keeps its unix socket inside its own temp dir and is tuned for tests
# (fsync off, many connections). When running as root, initdb/pg_ctl are run
# as the unprivileged `postgres` OS user (created if missing).

_serac_pg_log() { echo "[pg] $*" >&2; }

# Locate a directory holding initdb/pg_ctl/postgres; print it.
_serac_pg_find_bindir() {
    local d
    local candidates=()
    if [ -n "${SERAC_PG_BINDIR:-}" ]; then candidates+=("$SERAC_PG_BINDIR"); fi
    if command -v pg_config >/dev/null 2>&1; then
        d="$(pg_config --bindir 2>/dev/null || true)"
        if [ -n "$d" ]; then candidates+=("$d"); fi
    fi
    # Debian/Ubuntu keep server binaries in versioned dirs; newest first.
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r); do
        candidates+=("$d")
    done
    if command -v initdb >/dev/null 2>&1; then
        candidates+=("$(dirname "$(readlink -f "$(command -v initdb)")")")
    fi
    for d in "${candidates[@]}"; do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
            echo "$d"
            return 0
        fi
    done
    return 1
}

_serac_pg_install() {
    _serac_pg_log "PostgreSQL server binaries not found; installing with apt-get"
    if ! command -v apt-get >/dev/null 2>&1; then
        _serac_pg_log "apt-get not available; install PostgreSQL (initdb, pg_ctl) manually"
        return 1
    fi
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo -n"; fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get update -qq </dev/null >&2 || return 1
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        postgresql postgresql-client </dev/null >&2 || return 1
}

# Run a command as the OS user that owns the cluster.
_serac_pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        if command -v runuser >/dev/null 2>&1; then
            runuser -u postgres -- "$@"
        else
            # su needs a single command string; quote every argument.
            su -s /bin/sh postgres -c "$(printf '%q ' "$@")"
        fi
    else
        "$@"
    fi
}

_serac_pg_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

serac_pg_start() {
    if [ -n "${_SERAC_PG_TMP:-}" ] && [ -d "${_SERAC_PG_TMP}" ]; then
        _serac_pg_log "cluster already running on port ${SERAC_PG_PORT:-?}"
        return 0
    fi

    local bindir
    if ! bindir="$(_serac_pg_find_bindir)"; then
        _serac_pg_install || return 1
        bindir="$(_serac_pg_find_bindir)" || {
            _serac_pg_log "initdb still not found after installing postgresql"
            return 1
        }
    fi

    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        _serac_pg_log "creating OS user 'postgres'"
        if command -v useradd >/dev/null 2>&1; then
            useradd --system --no-create-home --shell /bin/sh postgres
        else
            adduser --system --no-create-home --shell /bin/sh --group postgres
        fi || return 1
    fi

    # Keep the path short (unix socket paths are limited to ~100 bytes) and,
    # as root, somewhere the postgres user can reach.
    local base="${TMPDIR:-/tmp}"
    if [ "$(id -u)" -eq 0 ] || [ "${#base}" -gt 60 ]; then base=/tmp; fi
    local tmp
    tmp="$(mktemp -d "$base/serac-pg.XXXXXX")" || return 1
    chmod 755 "$tmp"
    mkdir -p "$tmp/data" "$tmp/sock"
    if [ "$(id -u)" -eq 0 ]; then
        chown -R postgres: "$tmp"
    fi
    _SERAC_PG_TMP="$tmp"

    local port
    port="$(_serac_pg_free_port)" || { serac_pg_stop; return 1; }

    if ! _serac_pg_as_owner "$bindir/initdb" -D "$tmp/data" -U postgres \
        --auth=trust --encoding=UTF8 --locale=C --no-sync >"$tmp/initdb.log" 2>&1; then
        _serac_pg_log "initdb failed:"
        cat "$tmp/initdb.log" >&2
        serac_pg_stop
        return 1
    fi

    cat >>"$tmp/data/postgresql.conf" <<EOF

# --- serac test settings ---
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$tmp/sock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 300
shared_buffers = 128MB
logging_collector = off
EOF

    if ! _serac_pg_as_owner "$bindir/pg_ctl" -D "$tmp/data" -l "$tmp/postgres.log" \
        -w -t 60 start >"$tmp/pg_ctl.log" 2>&1; then
        _serac_pg_log "pg_ctl start failed:"
        cat "$tmp/pg_ctl.log" "$tmp/postgres.log" >&2 2>/dev/null || true
        serac_pg_stop
        return 1
    fi

    export SERAC_PG_BINDIR="$bindir"
    export SERAC_PG_PORT="$port"
    export SERAC_PG_DATA="$tmp/data"
    export SERAC_TEST_PG_URL="postgres://postgres@127.0.0.1:${port}/postgres"
    _serac_pg_log "PostgreSQL $("$bindir/postgres" --version 2>/dev/null | sed "s/^postgres //") running at $SERAC_TEST_PG_URL"
}

serac_pg_pause() {
    _serac_pg_as_owner "$SERAC_PG_BINDIR/pg_ctl" -D "$_SERAC_PG_TMP/data" -m fast -w stop \
        >/dev/null
}

serac_pg_resume() {
    _serac_pg_as_owner "$SERAC_PG_BINDIR/pg_ctl" -D "$_SERAC_PG_TMP/data" \
        -l "$_SERAC_PG_TMP/postgres.log" -w -t 60 start >/dev/null
}

serac_pg_stop() {
    local tmp="${_SERAC_PG_TMP:-}"
    if [ -z "$tmp" ]; then
        return 0
    fi
    if [ -f "$tmp/data/postmaster.pid" ]; then
        local bindir="${SERAC_PG_BINDIR:-}"
        if [ -z "$bindir" ]; then bindir="$(_serac_pg_find_bindir 2>/dev/null || true)"; fi
        if [ -n "$bindir" ]; then
            _serac_pg_as_owner "$bindir/pg_ctl" -D "$tmp/data" -m immediate -w stop \
                >/dev/null 2>&1 || true
        fi
        # Last resort: kill the postmaster we started (by its pid file).
        if [ -f "$tmp/data/postmaster.pid" ]; then
            local pid
            pid="$(head -n1 "$tmp/data/postmaster.pid" 2>/dev/null || true)"
            if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
        fi
    fi
    rm -rf "$tmp"
    unset _SERAC_PG_TMP SERAC_TEST_PG_URL SERAC_PG_PORT SERAC_PG_DATA
    return 0
}
