# shellcheck shell=bash
# podman on this kind of machine. Source it, then use `serac_podman ARGS...` like `podman`.
#
# Two allowances, both only for the command they wrap:
# - crun refuses cgroup v1 and v2 mounted side by side with controllers in v2 ("cgroups in
#   hybrid mode not supported"): the command runs in a private mount namespace where the v2
#   hierarchy is unmounted, with --cgroups=disabled for containers;
# - crun cannot raise RLIMIT_NOFILE/NPROC to podman's defaults ("setrlimit: Operation not
#   permitted"): limits below the machine's are given explicitly.

serac_podman_install() {
    if command -v podman >/dev/null 2>&1 && command -v crun >/dev/null 2>&1; then
        return 0
    fi
    serac_apt_install podman crun uidmap fuse-overlayfs
}

# apt-get install, updating the package lists first when that is what it takes.
serac_apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" \
        </dev/null >&2 && return 0
    DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null >&2
}

serac_podman() {
    local sub="$1"
    shift
    local extra=()
    case "$sub" in
    run | create)
        extra=(--cgroups=disabled --ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
        ;;
    build)
        extra=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
        ;;
    esac
    unshare --mount --propagation private -- sh -c '
        if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi
        exec podman "$@"' podman "$sub" "${extra[@]}" "$@"
}
