#!/usr/bin/env bash
# The container contract, checked on a running server:
#   - it runs as user and group 65532, with no capabilities and no way to gain privileges;
#   - its root file system is read-only; the one writable place is the data volume, where the
#     embedded SQLite database and the default warehouse land;
#   - it is configured by SERAC_* environment variables alone (`serac serve`, no flags);
#   - `serac healthcheck` (the image's HEALTHCHECK) passes;
#   - on SIGTERM it reports unready while it still answers, then exits 0;
#   - a second start on the same volume finds the data.
#
#   bash tests/deploy/contract.sh binary PATH/TO/serac   the binary, made to run that way:
#        unshare (private mount namespace, root remounted read-only, the volume bound
#        writable) and setpriv (uid/gid 65532, no capabilities, no_new_privs), env -i
#   bash tests/deploy/contract.sh image IMAGE            the image, with podman run
#        --read-only --user 65532:65532 --cap-drop ALL (tests/deploy/podman.sh)
set -euo pipefail

MODE="$1"
TARGET="$2"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=tests/deploy/podman.sh
. "$ROOT/tests/deploy/podman.sh"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/serac-contract.XXXXXX")"
chmod 755 "$WORK"
DATA="$WORK/data"
mkdir -p "$DATA"
chown 65532:65532 "$DATA"
CONTAINER="serac-contract-$$"
PID=""
PASSED=0
FAILED=0

ok() { PASSED=$((PASSED + 1)); echo "  ok   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "  FAIL $*"; }
expect() { # expect NAME COMMAND...
    local name="$1"
    shift
    if "$@"; then ok "$name"; else fail "$name"; fi
}

status_of() { curl -s -o /dev/null -m 5 -w '%{http_code}' "$1" 2>/dev/null || true; }

cleanup() {
    if [ "$MODE" = image ]; then
        serac_podman rm -f -t 0 "$CONTAINER" >/dev/null 2>&1 || true
    elif [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -KILL "$PID" 2>/dev/null || true
    fi
    [ "${SERAC_KEEP_TMP:-0}" = 1 ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
SETTINGS=(SERAC_BIND="127.0.0.1:$PORT" SERAC_SHUTDOWN_DELAY=3s SERAC_DRAIN_TIMEOUT=10s
    SERAC_LOG_FORMAT=json)

if [ "$MODE" = binary ]; then
    mkdir -p "$WORK/bin"
    cp "$TARGET" "$WORK/bin/serac"
    chmod 755 "$WORK/bin" "$WORK/bin/serac"
    SERAC="$WORK/bin/serac"
    VOLUME="$DATA"
fi
VOLUME="${VOLUME:-/var/lib/serac}"

start() { # start: the server in the background; sets PID (the server's process on this host)
    if [ "$MODE" = binary ]; then
        # The volume is bound onto itself first, so that it stays writable when the root is
        # remounted read-only (only in this mount namespace).
        unshare --mount --propagation private -- sh -c '
            mount --bind "$1" "$1" && mount -o remount,bind,ro / && shift && exec "$@"' \
            sh "$DATA" setpriv --reuid 65532 --regid 65532 --clear-groups --no-new-privs \
            --inh-caps=-all --bounding-set=-all \
            env -i "${SETTINGS[@]}" SERAC_DATA_DIR="$DATA" "$SERAC" serve \
            >>"$WORK/serac.log" 2>&1 </dev/null &
        PID=$!
    else
        serac_podman rm -f -t 0 "$CONTAINER" >/dev/null 2>&1 || true
        local envs=() s
        for s in "${SETTINGS[@]}"; do envs+=(-e "$s"); done
        # podman schedules the image's periodic health checks with systemd, which this machine
        # does not run (it logs "unable to get systemd connection"); `podman healthcheck run`
        # below runs the check itself.
        serac_podman run -d --name "$CONTAINER" --network host --read-only \
            --user 65532:65532 --cap-drop ALL --security-opt no-new-privileges \
            -v "$DATA:/var/lib/serac" "${envs[@]}" "$TARGET" >/dev/null
        PID="$(serac_podman inspect --format '{{.State.Pid}}' "$CONTAINER")"
    fi
    local i
    for i in $(seq 1 150); do
        [ "$(status_of "$BASE/ready")" = 200 ] && return 0
        sleep 0.2
    done
    echo "the server did not become ready" >&2
    server_log
    return 1
}

server_log() {
    if [ "$MODE" = binary ]; then tail -n 30 "$WORK/serac.log" >&2 || true; else serac_podman logs --tail 30 "$CONTAINER" >&2 || true; fi
}

proc_field() { awk -v k="$2:" '$1 == k { $1 = ""; print substr($0, 2) }' "/proc/$1/status"; }

# Options of the mount at MOUNTPOINT as the process sees it (mountinfo field 6).
mount_options() { awk -v m="$2" '$5 == m { print $6 }' "/proc/$1/mountinfo" | tail -n 1; }

echo "container contract ($MODE: $TARGET)"
if [ "$MODE" = image ]; then
    user="$(serac_podman image inspect --format '{{.Config.User}}' "$TARGET")"
    expect "the image's user is numeric and not root ($user)" test "$user" = "65532:65532"
    entry="$(serac_podman image inspect --format '{{json .Config.Entrypoint}} {{json .Config.Cmd}}' "$TARGET")"
    expect "entrypoint and command are serac serve ($entry)" \
        test "$entry" = '["/usr/local/bin/serac"] ["serve"]'
    shell_out="$(serac_podman run --rm --entrypoint /bin/sh "$TARGET" -c true 2>&1 || true)"
    expect "the image has no shell" grep -qi '/bin/sh.*\(not found\|no such file\)' <<<"$shell_out"
    migrate_out="$(serac_podman run --rm --network host --read-only --user 65532:65532 \
        --cap-drop ALL -v "$DATA:/var/lib/serac" "$TARGET" migrate 2>&1 || true)"
    expect "serac migrate runs in the image (the Job's command)" \
        grep -q "migrations are up to date" <<<"$migrate_out"
fi

start
expect "uid is 65532 ($(proc_field "$PID" Uid))" test "$(proc_field "$PID" Uid | tr -s '\t ' ' ')" = "65532 65532 65532 65532"
expect "gid is 65532 ($(proc_field "$PID" Gid))" test "$(proc_field "$PID" Gid | tr -s '\t ' ' ')" = "65532 65532 65532 65532"
groups="$(proc_field "$PID" Groups | tr -d ' ')"
expect "no supplementary group but 65532 (${groups:-none})" sh -c "test -z '$groups' || test '$groups' = 65532"
expect "no effective capabilities" test "$(proc_field "$PID" CapEff)" = 0000000000000000
expect "no_new_privs is set" test "$(proc_field "$PID" NoNewPrivs)" = 1
cmdline="$(tr '\0' ' ' <"/proc/$PID/cmdline")"
expect "started as 'serac serve', no flags ($cmdline)" \
    sh -c "echo '$cmdline' | grep -Eq '^[^ ]*serac serve $'"
root_opts="$(mount_options "$PID" /)"
expect "root file system is read-only ($root_opts)" sh -c "echo '$root_opts' | grep -Eq '(^|,)ro(,|$)'"
vol_opts="$(mount_options "$PID" "$VOLUME")"
expect "the volume is writable ($vol_opts)" sh -c "echo '$vol_opts' | grep -Eq '(^|,)rw(,|$)'"

expect "GET /health 200" test "$(status_of "$BASE/health")" = 200
code="$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -d '{"namespace":["contract"]}' "$BASE/v1/namespaces")"
expect "create a namespace ($code)" test "$code" = 200
code="$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    -d '{"name":"t","schema":{"type":"struct","schema-id":0,"fields":[{"id":1,"name":"id","required":true,"type":"long"}]}}' \
    "$BASE/v1/namespaces/contract/tables")"
expect "create a table ($code)" test "$code" = 200
expect "the database is on the volume, owned by 65532" \
    test "$(stat -c %u "$DATA/serac.db" 2>/dev/null)" = 65532
expect "the table's metadata is on the volume" \
    sh -c "ls '$DATA'/warehouse/contract/t-*/metadata/*.metadata.json >/dev/null 2>&1"

if [ "$MODE" = binary ]; then
    expect "serac healthcheck passes (exit 0)" env -i "${SETTINGS[@]}" "$SERAC" healthcheck
else
    expect "podman healthcheck run (the image's HEALTHCHECK) passes" \
        serac_podman healthcheck run "$CONTAINER"
fi

# SIGTERM: unready at once while it still answers, then a clean exit.
kill -TERM "$PID"
ready_after=""
for i in $(seq 1 100); do
    ready_after="$(status_of "$BASE/ready")"
    [ "$ready_after" = 503 ] && break
    sleep 0.05
done
expect "after SIGTERM /ready answers 503 ($ready_after)" test "$ready_after" = 503
expect "after SIGTERM /health still answers during the delay" test "$(status_of "$BASE/health")" = 200
if [ "$MODE" = binary ]; then
    rc=0
    wait "$PID" || rc=$?
else
    rc="$(serac_podman wait "$CONTAINER" | tail -n 1)"
fi
expect "exit status 0 after the drain ($rc)" test "$rc" = 0
logs="$(if [ "$MODE" = binary ]; then cat "$WORK/serac.log"; else serac_podman logs "$CONTAINER" 2>&1; fi)"
expect "the log says it stopped" grep -q '"serac stopped"' <<<"$logs"
expect "the log lines are JSON (SERAC_LOG_FORMAT from the environment)" \
    sh -c "printf '%s\n' \"\$1\" | head -n 1 | python3 -c 'import json,sys; json.loads(sys.stdin.readline())'" sh "$logs"

# The data outlives the process.
start
expect "after a restart on the same volume the namespace is there" \
    test "$(status_of "$BASE/v1/namespaces/contract")" = 200
kill -TERM "$PID"
if [ "$MODE" = binary ]; then wait "$PID" || true; else serac_podman wait "$CONTAINER" >/dev/null || true; fi

echo "contract ($MODE): $PASSED checks passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
