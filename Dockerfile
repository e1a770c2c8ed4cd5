# Multi-stage build: compile with the full toolchain, ship a small non-root image.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY migrations ./migrations
COPY sql ./sql
RUN cargo build --release --locked && strip target/release/ecp-inventory

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home ecp
COPY --from=build /src/target/release/ecp-inventory /usr/local/bin/ecp-inventory
COPY sql /usr/share/ecp-inventory/sql
COPY deploy/readonly_role.sql /usr/share/ecp-inventory/readonly_role.sql
USER 10001
ENTRYPOINT ["/usr/local/bin/ecp-inventory"]
CMD ["--help"]
