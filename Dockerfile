# syntax=docker/dockerfile:1
#
# Seawall in a small image: built with the release profile (fat LTO, one codegen unit) in the
# official Rust image, run from distroless (glibc, libgcc, no shell) as a non-root user.
#
#   docker build -t seawall --build-arg SEAWALL_GIT_REVISION=$(git rev-parse --short=12 HEAD) .
#   docker run --rm -p 8080:8080 -p 9090:9090 \
#     -v "$PWD/seawall.yaml:/etc/seawall/seawall.yaml:ro" \
#     -e SEAWALL_CLIENT_TOKEN -e SEAWALL_ADMIN_TOKEN -e ANTHROPIC_API_KEY \
#     --stop-timeout 45 seawall
#
# The mounted configuration must listen on 0.0.0.0 (`server.listen`, `admin.listen`) to be
# reachable from outside the container; `seawall check` then requires an `auth` section.
# Secrets come from the environment, as everywhere: the `*_env` keys name the variables.

# The toolchain CI builds with (the crates declare 1.89 as their minimum).
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The revision `seawall --version` reports (the build context has no .git).
ARG SEAWALL_GIT_REVISION=""
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    SEAWALL_GIT_REVISION="${SEAWALL_GIT_REVISION}" \
    cargo build --locked --release -p seawall \
    && install -D -m 0755 target/release/seawall /out/seawall

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/seawall /usr/local/bin/seawall
# distroless's `nonroot` user (uid and gid 65532): no root inside the container.
USER 65532:65532
# The gateway (server.listen) and the admin listener (admin.listen: /metrics, /readyz, /ui).
EXPOSE 8080 9090
# `seawall ready` asks the admin listener's /readyz (no shell or curl in this image).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/seawall", "ready", "-c", "/etc/seawall/seawall.yaml"]
# SIGTERM drains within server.shutdown_grace (30 s by default): stop with a longer timeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/seawall"]
CMD ["run", "-c", "/etc/seawall/seawall.yaml", "--log-format", "json"]
