# Multi-stage build: compile with the full toolchain, run on a slim Debian with
# only libpq (SQLite is bundled, TLS is rustls). Not built in CI here (no Docker
# engine on the CI machine); kept consistent with scripts/serve and the README.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends libpq-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY config config
COPY benches benches
RUN cargo build --release --locked --bin keepword

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/keepword --create-home keepword
COPY --from=build /src/target/release/keepword /usr/local/bin/keepword
COPY config /etc/keepword
WORKDIR /var/lib/keepword
USER keepword
ENV KEEPWORD_BIND=0.0.0.0:8080 \
    KEEPWORD_CONTRACT=/etc/keepword/contract.toml \
    KEEPWORD_DATABASE_URL=sqlite:///var/lib/keepword/data/keepword.db
EXPOSE 8080
VOLUME ["/var/lib/keepword/data"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD ["keepword", "healthcheck", "--url", "http://127.0.0.1:8080/healthz"]
CMD ["keepword", "serve", "--config", "/etc/keepword/keepword.toml"]
