# understudy — a small image for running many replicas (see deploy/ and README
# "Running many replicas"). Build: docker build -t understudy .
FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so a change to src/ does not rebuild them.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && for b in translate reload responses_store; do echo 'fn main() {}' > benches/$b.rs; done \
    && cargo build --release --locked && rm -rf src benches
COPY src ./src
COPY benches ./benches
RUN touch src/main.rs src/lib.rs && cargo build --release --locked \
    && strip target/release/understudy

FROM debian:bookworm-slim
# ca-certificates for upstream HTTPS; curl for the HEALTHCHECK.
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin understudy
COPY --from=build /src/target/release/understudy /usr/local/bin/understudy
COPY deploy/proxy.toml /etc/understudy/proxy.toml
USER 10001
EXPOSE 8080
ENV UNDERSTUDY_CONFIG=/etc/understudy/proxy.toml
HEALTHCHECK --interval=10s --timeout=2s --start-period=5s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/understudy"]
