# One image holding the three service binaries; docker-compose.yml picks the
# binary per service. Stages:
#   planner  - computes the dependency recipe (cargo-chef) from the manifests
#   builder  - builds dependencies first (a cached layer that only changes with
#              Cargo.toml/Cargo.lock), then the workspace's service binaries
#   runtime  - a small Debian image, non-root user, just the binaries
# No sqlx offline data is needed: the services use runtime-checked queries.
# `COPY . .` copies the build context .dockerignore lets through: the
# manifests and the workspace's members, nothing else (no target/, no .infra/,
# no .tools/, no settings files).
# No `# syntax=` line: the engine's built-in Dockerfile frontend reads this
# file, so building needs no frontend image from a registry.

FROM rust:1.95-bookworm AS chef
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# librdkafka is built from source by rdkafka-sys with its own configure and
# make; its SASL/SCRAM needs OpenSSL (rdkafka's `ssl` feature, found through
# pkg-config).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json \
    -p order-service -p invoicing-service -p shipping-service
COPY . .
RUN cargo build --release --locked \
    -p order-service -p invoicing-service -p shipping-service

FROM debian:bookworm-slim AS runtime
# libssl3: the services link Debian's OpenSSL (librdkafka's SASL/SCRAM).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home app
COPY --from=builder /app/target/release/order-service \
                    /app/target/release/invoicing-service \
                    /app/target/release/shipping-service \
                    /usr/local/bin/
USER 10001
