# syntax=docker/dockerfile:1
# The shop API as a container image: a static binary on an empty base, no shell.
#
#   docker build -t shop-api .        (or: buildah bud --format docker -t shop-api .)
#
# Runs as a non-root numeric user and with a read-only root filesystem. Production gives it
# DATABASE_URL/REDIS_URL/JWT_SECRET; in embedded mode it writes its SQLite file to
# SQLITE_PATH=/data/shop.db, so mount a volume or tmpfs on /data when the root is read-only.
# deploy/Containerfile.local builds the same final stage from a binary built on the host.

ARG GO_VERSION=1.26.8

FROM docker.io/library/golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags='-s -w' -o /out/shop-api . \
 && mkdir -p /out/data

FROM scratch
# TLS to a managed PostgreSQL or Redis (sslmode=verify-full, rediss://) needs the CA bundle.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/shop-api /shop-api
COPY --from=build --chown=65532:65532 /out/data /data
ENV PORT=8080 SQLITE_PATH=/data/shop.db
USER 65532:65532
EXPOSE 8080
# `healthcheck` GETs http://127.0.0.1:$PORT/healthz and exits 0 on 200 (no shell or curl here).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 CMD ["/shop-api", "healthcheck"]
ENTRYPOINT ["/shop-api"]
