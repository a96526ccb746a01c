# One image holding the three service binaries; docker-compose.yml picks the
# binary per service. Stages:
#   builder  - builds the workspace's service binaries, with cargo's registry
#              and target directory in BuildKit cache mounts: they outlive the
#              build on this engine, so a change to the sources recompiles
#              only the crates it touches, and no dependency layer has to be
#              cooked first (cargo-chef cost 157 s to install and compiled the
#              dependencies in a separate, less parallel pass)
#   runtime  - a small Debian image, non-root user, just the binaries
# No sqlx offline data is needed: the services use runtime-checked queries.
# `COPY . .` copies the build context .dockerignore lets through: the
# manifests and the workspace's members, nothing else (no target/, no .infra/,
# no .tools/, no settings files).
# No `# syntax=` line: the engine's built-in Dockerfile frontend reads this
# file (`RUN --mount` included, since Docker 20.10), so building needs no
# frontend image from a registry. Cache mounts need BuildKit: Compose v2
# builds with it, and `DOCKER_BUILDKIT=1 docker build` does.

FROM rust:1.95-bookworm AS builder
# librdkafka is built from source by rdkafka-sys with its own configure and
# make; its SASL/SCRAM needs OpenSSL (rdkafka's `ssl` feature, found through
# pkg-config).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
# The binaries are copied out of the cached target directory, which is not
# part of the image.
RUN --mount=type=cache,id=orderflow-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=orderflow-target,target=/app/target \
    cargo build --release --locked \
      -p order-service -p invoicing-service -p shipping-service \
 && install -D -t /app/bin target/release/order-service \
       target/release/invoicing-service target/release/shipping-service

FROM debian:bookworm-slim AS runtime
# libssl3: the services link Debian's OpenSSL (librdkafka's SASL/SCRAM).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home app
COPY --from=builder /app/bin/order-service \
                    /app/bin/invoicing-service \
                    /app/bin/shipping-service \
                    /usr/local/bin/
USER 10001
