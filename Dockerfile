# consentgate container image: a static binary on an empty (scratch) base.
#
#   docker build --build-arg VERSION=$(git describe --tags) -t consentgate .
#   docker run --rm -p 8080:8080 --read-only \
#     -e CONSENTGATE_COOKIELESS_SECRET="$(openssl rand -base64 32)" \
#     -v consentgate-spool:/var/lib/consentgate consentgate
#
# Runs as uid/gid 65532 with a read-only root filesystem: the only
# writable path it needs is the spool volume. No HEALTHCHECK: probes
# belong to the orchestrator (GET /healthz and /readyz on port 8080).
# The embedded default config applies; mount a file and pass
# `serve --config /etc/consentgate/config.yaml`, or set CONSENTGATE_* vars.

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/consentgate ./cmd/consentgate
RUN mkdir -p /out/spool/spool

FROM scratch
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# The spool directory, owned by the runtime user (a named volume inherits it).
COPY --from=build --chown=65532:65532 /out/spool /var/lib/consentgate
COPY --from=build /out/consentgate /consentgate
USER 65532:65532
ENV CONSENTGATE_DELIVERY_SPOOL_DIR=/var/lib/consentgate/spool
VOLUME ["/var/lib/consentgate"]
# 8080: tag hits, scripts, /healthz, /readyz. 9090: /metrics and /debug/*,
# on 127.0.0.1 unless CONSENTGATE_ADMIN_LISTEN=:9090 (then protect it).
EXPOSE 8080 9090
ENTRYPOINT ["/consentgate"]
CMD ["serve"]
