# Multi-stage build: compile in the Rust image, run from a small non-root image.
FROM rust:1.95-bookworm AS build
WORKDIR /src
# aws-lc-sys (the one crypto library) builds C code: cmake is not needed, a C compiler is.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cargo.toml declares the benches, and cargo refuses a manifest whose targets are missing.
COPY benches ./benches
RUN cargo build --release --locked --bin portcullis

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/portcullis /usr/local/bin/portcullis
# The demo config and its dev-only keys, so `docker run IMAGE demo` works; mount your own
# config at /etc/portcullis/config.yaml for real use.
COPY config /etc/portcullis/config
COPY certs /etc/portcullis/certs
WORKDIR /etc/portcullis
USER nonroot:nonroot
EXPOSE 8080 8443
ENTRYPOINT ["/usr/local/bin/portcullis"]
CMD ["run", "--config", "/etc/portcullis/config.yaml"]
