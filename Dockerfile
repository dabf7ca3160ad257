# syntax=docker/dockerfile:1
# unamentis-agent container image: glibc runtime (NVML is dlopen'ed from the
# driver the NVIDIA container toolkit mounts; a static musl binary cannot
# dlopen), non-root by default. Build: docker build -t unamentis-agent .
# For reproducible builds pin both bases by digest, e.g.
#   --build-arg RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot@sha256:<digest>
ARG BUILD_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${BUILD_IMAGE} AS build
WORKDIR /src
# The slim Rust image has gcc and libc6-dev, all aws-lc-sys (TLS) needs.
COPY Cargo.toml Cargo.lock ./
COPY src ./src
RUN cargo build --release --locked \
    && install -D -m 0755 target/release/unamentis-agent /out/usr/local/bin/unamentis-agent

FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="unamentis-agent" \
      org.opencontainers.image.description="OpenTelemetry-native host agent for a local AI server stack: host, service, GPU, power and idle metrics over OTLP" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=build /out/ /
# The NVIDIA container toolkit mounts libnvidia-ml.so only when asked to.
ENV PATH=/usr/local/bin:/usr/bin:/bin \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=utility
# distroless "nonroot". RAPL energy (root-only since Linux 5.10) and the
# port owners of other users' processes need root: see README "Kubernetes".
USER 65532:65532
EXPOSE 8767
ENTRYPOINT ["unamentis-agent", "run"]
