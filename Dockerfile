# syntax=docker/dockerfile:1
# The kms image for users with a container engine:
#
#   docker build -t ghcr.io/ppmlkms/kms:0.1.0 --build-arg VERSION=0.1.0 .
#
# It is the image scripts/build-image.sh assembles without an engine (and
# deploy/image/archive_test.go inspects): static kmsd and kmsctl on an empty
# base, user 65532, port 9876, state in the /data volume, CA certificates
# for TLS to an external database, no shell.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ENV CGO_ENABLED=0
RUN go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" -o /out/kmsd ./cmd/kmsd && \
    go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${VERSION}" -o /out/kmsctl ./cmd/kmsctl && \
    mkdir -p /out/etc/ssl/certs /out/data /out/tmp && \
    cp /etc/ssl/certs/ca-certificates.crt /out/etc/ssl/certs/ && \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' >/out/etc/passwd && \
    printf 'root:x:0:\nnonroot:x:65532:\n' >/out/etc/group && \
    chown 65532:65532 /out/data && chmod 0700 /out/data && chmod 1777 /out/tmp

FROM scratch
COPY --from=build /out/ /
ARG VERSION=dev
LABEL org.opencontainers.image.title="kms" \
      org.opencontainers.image.description="kmsd, a BigDL-compatible key management server, and kmsctl" \
      org.opencontainers.image.source="https://github.com/ppmlkms/kms" \
      org.opencontainers.image.version="${VERSION}"
ENV PATH=/ KMS_DATA_DIR=/data SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /data
USER 65532:65532
EXPOSE 9876/tcp
VOLUME ["/data"]
ENTRYPOINT ["/kmsd"]
