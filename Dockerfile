# syntax=docker/dockerfile:1
#
# The worker as a static binary on distroless: no shell, no package manager,
# runs as the numeric nonroot user 65532 (what the Helm chart's restricted
# security context expects). Build with `make image`, or:
#   docker build --build-arg VERSION=v1.2.3 --build-arg COMMIT=$(git rev-parse HEAD) -t codearts-recover-worker:v1.2.3 .
# Pin both base images by digest in your registry mirror for reproducible
# builds (FROM image:tag@sha256:…).

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first: this layer stays cached until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download -x
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
ARG COMMIT=unknown
# Static (no cgo), reproducible (-trimpath), without the demo pieces (-tags
# nodemo: no embedded nats-server, no simulator, so scanners see neither),
# stamped with version and commit
# (.git is not in the build context, so the toolchain cannot stamp them).
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -tags nodemo -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION} -X github.com/codearts-recover-worker/codearts-recover-worker/internal/buildinfo.Commit=${COMMIT}" \
      -o /out/worker ./cmd/worker

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="codearts-recover-worker" \
      org.opencontainers.image.description="Recovers Huawei Cloud CodeArts Build jobs from a NATS JetStream queue" \
      org.opencontainers.image.source="https://github.com/codearts-recover-worker/codearts-recover-worker" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
COPY --from=build /out/worker /worker
# Numeric, so Kubernetes can verify runAsNonRoot without resolving a name.
USER 65532:65532
# /healthz, /readyz and /metrics (--http-addr).
EXPOSE 8080
ENTRYPOINT ["/worker"]
CMD ["run"]
