# collabd container image: a static binary on distroless, as a non-root user,
# data in the /data volume. Build and run:
#
#   docker build -t collabd --build-arg VERSION=$(git describe --tags --always) --build-arg REVISION=$(git rev-parse HEAD) .
#   docker run -p 8080:8080 -v collabd-data:/data -e COLLABD_AUTH_SECRET=... collabd
#
# See README.md ("Container") and compose.yaml. cmd/collabd/docker_test.go
# runs this file's `go build` line (the image itself is not built by make test).

ARG GO_VERSION=1.26

# ---- build: the static binary ------------------------------------------------
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first: this layer is cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=
RUN CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags="-s -w -X main.buildVersion=${VERSION} -X main.buildRevision=${REVISION}" -o /out/collabd ./cmd/collabd
# The data directory, owned by the runtime user (distroless "nonroot", 65532).
RUN mkdir -p /out/data

# ---- run: distroless static (no shell, no package manager, CA certificates and tzdata only)
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/collabd /usr/local/bin/collabd
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
# Listen on every interface of the container; without COLLABD_AUTH_SECRET the
# server refuses to start on a non-loopback address (pass
# COLLABD_INSECURE_NO_AUTH=true only for a local try-out).
ENV COLLABD_ADDR=0.0.0.0:8080 \
    COLLABD_DATA=/data
VOLUME ["/data"]
EXPOSE 8080
# No curl in the image: the binary does its own health check (GET /healthz).
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/collabd", "healthcheck", "--quiet"]
# SIGTERM (docker stop) makes serve close sessions with a retry hint and flush every document.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/collabd"]
CMD ["serve"]
