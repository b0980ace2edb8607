#!/usr/bin/env bash
# Builds Serac's image (the repository's Dockerfile) with podman, on base images assembled
# here instead of pulled from a registry:
#   builder: a Debian 12 root file system made by debootstrap (gcc, libc6-dev, certificates)
#            plus this machine's Rust toolchain (rustc and cargo, no docs);
#   runtime: glibc, libgcc and CA certificates from that root file system and a `nonroot`
#            user 65532: what gcr.io/distroless/cc-debian12 holds, minus its extras.
# Prints the image's name and size. The debootstrap tree is cached under
# $HOME/.cache/serac/deploy/.
#
#   bash tests/deploy/image.sh [TAG]        (default TAG: localhost/serac:test)
#
# podman on this kind of machine needs two allowances (tests/deploy/podman.sh): a private
# mount namespace without the cgroup v2 hierarchy (crun refuses the hybrid layout the kernel
# has here) and explicit resource limits (crun cannot raise RLIMIT_NOFILE/NPROC to podman's
# defaults).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
TAG="${1:-localhost/serac:test}"
CACHE="$HOME/.cache/serac/deploy"
BUILDER_BASE=localhost/serac-builder-base:bookworm
RUNTIME_BASE=localhost/serac-runtime-base:bookworm
# shellcheck source=tests/deploy/podman.sh
. "$ROOT/tests/deploy/podman.sh"

log() { printf '[image] %s\n' "$*" >&2; }

serac_podman_install || exit 1
if ! command -v debootstrap >/dev/null 2>&1; then
    serac_apt_install debootstrap || exit 1
fi
mkdir -p "$CACHE"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/serac-image.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# --- the Debian root file system (cached as a tarball) --------------------------------------
ROOTFS_TAR="$CACHE/bookworm-rootfs.tar"
if [ ! -s "$ROOTFS_TAR" ]; then
    log "debootstrap bookworm (minbase, gcc, libc6-dev, ca-certificates)"
    debootstrap --variant=minbase --include=gcc,libc6-dev,ca-certificates bookworm \
        "$WORK/rootfs" >"$WORK/debootstrap.log" 2>&1 || {
        tail -20 "$WORK/debootstrap.log" >&2
        exit 1
    }
    rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"*
    tar -C "$WORK/rootfs" -cf "$ROOTFS_TAR.tmp" . && mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
    rm -rf "$WORK/rootfs"
fi

# --- builder base: the root file system and the Rust toolchain ------------------------------
if ! serac_podman image exists "$BUILDER_BASE"; then
    log "assembling $BUILDER_BASE"
    ctx="$WORK/builder"
    mkdir -p "$ctx/rust"
    cp "$ROOTFS_TAR" "$ctx/rootfs.tar"
    sysroot="$(rustc --print sysroot)"
    cp -a "$sysroot/bin" "$sysroot/lib" "$sysroot/libexec" "$ctx/rust/"
    # This machine's trust store: package registries may be reached through a proxy whose
    # certificate authority only the machine's store holds (cargo fetches crates in the build).
    cp -L "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$ctx/ca-certificates.crt"
    cat >"$ctx/Containerfile" <<'EOC'
FROM scratch
ADD rootfs.tar /
COPY rust /usr/local/rust
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CARGO_HOME=/usr/local/cargo
EOC
    serac_podman build -q -t "$BUILDER_BASE" "$ctx" >/dev/null
    rm -rf "$ctx"
fi

# --- runtime base: glibc, libgcc, certificates, a nonroot user ------------------------------
if ! serac_podman image exists "$RUNTIME_BASE"; then
    log "assembling $RUNTIME_BASE"
    ctx="$WORK/runtime"
    mkdir -p "$ctx/root/etc/ssl/certs" "$ctx/root/tmp" "$ctx/root/lib64" \
        "$ctx/root/lib/x86_64-linux-gnu" "$ctx/root/home/nonroot"
    mkdir -p "$ctx/rootfs" && tar -C "$ctx/rootfs" -xf "$ROOTFS_TAR" \
        ./usr/lib/x86_64-linux-gnu ./usr/lib64 ./etc/ssl/certs
    for lib in libc.so.6 libm.so.6 libgcc_s.so.1 libpthread.so.0 libdl.so.2 librt.so.1; do
        cp -L "$ctx/rootfs/usr/lib/x86_64-linux-gnu/$lib" "$ctx/root/lib/x86_64-linux-gnu/"
    done
    cp -L "$ctx/rootfs/usr/lib64/ld-linux-x86-64.so.2" "$ctx/root/lib64/"
    cp -L "$ctx/rootfs/etc/ssl/certs/ca-certificates.crt" "$ctx/root/etc/ssl/certs/"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$ctx/root/etc/passwd"
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$ctx/root/etc/group"
    printf 'hosts: files dns\n' >"$ctx/root/etc/nsswitch.conf"
    chmod 1777 "$ctx/root/tmp"
    chown 65532:65532 "$ctx/root/home/nonroot"
    cat >"$ctx/Containerfile" <<'EOC'
FROM scratch
COPY root/ /
USER 65532:65532
EOC
    serac_podman build -q -t "$RUNTIME_BASE" "$ctx" >/dev/null
    rm -rf "$ctx"
fi

# --- the image ------------------------------------------------------------------------------
log "building $TAG from the Dockerfile (cargo downloads crates; a cold build takes minutes)"
serac_podman build --format docker --network host \
    --build-arg BUILDER_IMAGE="$BUILDER_BASE" --build-arg RUNTIME_IMAGE="$RUNTIME_BASE" \
    -t "$TAG" "$ROOT" >&2
size="$(serac_podman image inspect --format '{{.Size}}' "$TAG")"
log "$TAG: $size bytes ($((size / 1024 / 1024)) MiB)"
echo "$TAG $size"
