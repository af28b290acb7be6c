# syntax=docker/dockerfile:1
#
# agentd: build the release binary, then copy only it into a slim runtime image. The SQL
# migrations are embedded in the binary at compile time, so nothing else is needed at run time.
#
#   docker build -t agentd .
#   docker run -p 8080:8080 -v agentd-data:/var/lib/agentd agentd

FROM rust:1-slim-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the crate registry and compiled dependencies between builds, so a
# code change does not recompile every dependency. The binary is copied out of the cached
# target directory because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && cp target/release/agentd /usr/local/bin/agentd

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 agentd \
    && useradd --system --uid 10001 --gid agentd --home-dir /var/lib/agentd \
       --shell /usr/sbin/nologin agentd \
    && mkdir -p /var/lib/agentd \
    && chown agentd:agentd /var/lib/agentd
COPY --from=builder /usr/local/bin/agentd /usr/local/bin/agentd

USER 10001:10001
WORKDIR /var/lib/agentd
ENV HOST=0.0.0.0 \
    PORT=8080 \
    DATABASE_URL="sqlite:///var/lib/agentd/agentd.db?mode=rwc"
EXPOSE 8080
# No HEALTHCHECK: the image has no HTTP client. Probe GET /health and GET /health/ready from
# the orchestrator, or see docker-compose.yml for a check that uses bash's /dev/tcp.
ENTRYPOINT ["/usr/local/bin/agentd"]
CMD ["serve"]
