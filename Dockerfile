# One image for every Loupe process: `loupe` (cloud services, setup Jobs, the vizier's PEM and connector) and
# `px`. Built once, in a Rust stage; the runtime stage is Debian slim with only CA certificates, running as the
# unprivileged user 65532 (the PEM's DaemonSet runs it as root with BPF and perf capabilities only).
#
#   buildah bud -t loupe:dev .      # or: podman build / docker build
#
# The committed BPF object (crates/bpf/obj) is used as it is: no clang is needed here.
ARG RUST_VERSION=1.95
FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p loupe-server -p loupe-cli --bins \
    && install -D -m 0755 target/release/loupe /out/loupe \
    && install -D -m 0755 target/release/px /out/px

FROM docker.io/library/debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 loupe \
    && useradd --system --uid 65532 --gid 65532 --home-dir /var/lib/loupe --no-create-home loupe \
    && install -d -o 65532 -g 65532 -m 0700 /var/lib/loupe
COPY --from=build /out/loupe /out/px /usr/local/bin/
USER 65532:65532
ENV LOUPE_DATA_DIR=/var/lib/loupe
VOLUME ["/var/lib/loupe"]
ENTRYPOINT ["/usr/local/bin/loupe"]
CMD ["--help"]
