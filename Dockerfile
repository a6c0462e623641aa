# wsrelay: a multi-stage build. The first stage compiles the release binary; the final image is
# debian-slim with that binary alone, run as an unprivileged user.
#
#   docker build -t wsrelay .
#   docker run --rm -p 8080:8080 -p 9090:9090 \
#     -v "$PWD/wsrelay.toml:/etc/wsrelay/wsrelay.toml:ro" wsrelay
#
# Reload the configuration without a restart: `docker kill --signal HUP <container>`, or
# `POST /reload` on the admin listener. `docker stop` sends SIGTERM: the drain (see README,
# "Running many instances"); give it `--time` of at least drain_delay + drain_window +
# shutdown_timeout.

FROM rust:1-bookworm AS build
WORKDIR /src
# The whole workspace: every member's manifest must be present for cargo to resolve it.
COPY Cargo.toml Cargo.lock ./
COPY crates crates
COPY src src
COPY benches benches
COPY examples examples
COPY tests tests
RUN cargo build --release --locked --bin wsrelay \
    && install -m 0755 target/release/wsrelay /usr/local/bin/wsrelay

FROM debian:bookworm-slim
# CA certificates: wss:// upstreams verified against the system's roots.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin wsrelay
COPY --from=build /usr/local/bin/wsrelay /usr/local/bin/wsrelay
COPY examples/wsrelay.toml /etc/wsrelay/wsrelay.toml
USER 10001:10001
EXPOSE 8080 9090
# Validate the file first: a bad configuration fails the container at once with its diagnostics.
ENTRYPOINT ["/usr/local/bin/wsrelay"]
CMD ["--config", "/etc/wsrelay/wsrelay.toml"]
