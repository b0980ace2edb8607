# Serac's container image.
#
#   podman build -t serac .            (or docker build; BuildKit is not required)
#   podman run --read-only -p 8181:8181 -v serac-data:/var/lib/serac serac
#
# Two stages: a Rust toolchain image builds the release binary (dependencies in a layer of
# their own, rebuilt only when Cargo.toml, Cargo.lock or vendor/ change), then the binary alone
# goes onto a minimal runtime image with glibc and no shell. Both base images are build
# arguments, so that a build without a registry can use images made locally
# (tests/deploy/image.sh does).
#
# At run time: user 65532 (numeric, not root), configuration from SERAC_* environment variables
# only, a read-only root file system is fine: the one writable place is the volume
# /var/lib/serac (the embedded SQLite database and the default file:// warehouse; with
# PostgreSQL and an object-store warehouse it may stay empty).
ARG BUILDER_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${BUILDER_IMAGE} AS builder
WORKDIR /build

# 1. Dependencies only: a stub crate with the real manifest, lock file and patched crates.
COPY Cargo.toml Cargo.lock ./
COPY vendor ./vendor
RUN mkdir -p src benches \
    && echo 'fn main() {}' > src/main.rs \
    && echo '' > src/lib.rs \
    && echo 'fn main() {}' > benches/load.rs \
    && cargo build --release --locked --bin serac \
    && rm -rf target/release/.fingerprint/serac-* target/release/deps/serac-* \
        target/release/deps/libserac-* target/release/serac

# 2. The source (the stub's fingerprints are gone, so cargo builds the crate whatever the
# files' times).
COPY migrations ./migrations
COPY src ./src
RUN cargo build --release --locked --bin serac \
    && mkdir -p /out/var/lib/serac \
    && cp target/release/serac /out/serac

FROM ${RUNTIME_IMAGE}
COPY --from=builder /out/serac /usr/local/bin/serac
COPY --from=builder --chown=65532:65532 /out/var/lib/serac /var/lib/serac
USER 65532:65532
ENV SERAC_BIND=0.0.0.0:8181 \
    SERAC_DATA_DIR=/var/lib/serac \
    SERAC_LOG_FORMAT=json
VOLUME ["/var/lib/serac"]
EXPOSE 8181
# No shell or curl in the image: the binary checks itself (GET /health on SERAC_BIND).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/serac", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/serac"]
CMD ["serve"]
