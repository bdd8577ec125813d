#!/usr/bin/env bash
# build-image.sh builds container images as OCI archives, without a container
# engine: static binaries (CGO_ENABLED=0) plus a few files, assembled into a
# single base-less layer by deploy/image/mkoci.
#
#   scripts/build-image.sh            # kmsd + kmsctl        -> bin/kms-image.tar
#   scripts/build-image.sh mariadb    # bundled MariaDB       -> bin/kms-mariadb-image.tar
#   scripts/build-image.sh all        # both
#
# Load an archive with `ctr -n k8s.io images import bin/kms-image.tar`,
# `docker load -i bin/kms-image.tar` or `podman load -i ...`.
#
# The kms image: /kmsd (entrypoint) and /kmsctl, user 65532:65532, port
# 9876/tcp, KMS_DATA_DIR=/data (a 0700 directory owned by 65532, a volume),
# /tmp, a minimal /etc/passwd and /etc/group, CA certificates (for TLS to an
# external database). No shell, no package manager, no libc.
#
# The MariaDB image is made from this machine's Debian package (apt-get
# install mariadb-server): mariadbd, the shared libraries ldd lists, the
# bootstrap SQL scripts, messages and charsets, and /mariadb-init (a static
# Go program that initialises the data directory; see its package comment).
#
# Environment:
#   IMAGE          kms image reference   (default ghcr.io/ppmlkms/kms:<appVersion of the chart>)
#   MARIADB_IMAGE  MariaDB image reference (default ghcr.io/ppmlkms/kms-mariadb:<mariadbd version>)
#   OUT_DIR        where archives go (default bin)
#   KMSD_BIN, KMSCTL_BIN  use these static binaries instead of building them
#   VERSION        version stamped into kmsctl (default: git describe, else the chart appVersion)
#   SOURCE_DATE_EPOCH  timestamp of every file and of the image (default 0: reproducible)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

what=${1:-kms}
case $what in kms | mariadb | all) ;; *) echo "usage: $0 [kms|mariadb|all]" >&2; exit 2 ;; esac
OUT_DIR=${OUT_DIR:-bin}
APP_VERSION=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' deploy/helm/kms/Chart.yaml)
VERSION=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo "$APP_VERSION")}
IMAGE=${IMAGE:-ghcr.io/ppmlkms/kms:$APP_VERSION}
GOARCH=${GOARCH:-amd64}
mkdir -p "$OUT_DIR"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkoci() { go run ./deploy/image/mkoci -arch "$GOARCH" "$@"; }

# etc_files UID NAME: a minimal passwd and group (root and the service user)
etc_files() {
	printf 'root:x:0:0:root:/root:/sbin/nologin\n%s:x:%s:%s:%s:/nonexistent:/sbin/nologin\n' "$2" "$1" "$1" "$2" >"$work/passwd"
	printf 'root:x:0:\n%s:x:%s:\n' "$2" "$1" >"$work/group"
}

build_kms() {
	local t0=$SECONDS
	echo "== kms image $IMAGE (kmsd, kmsctl; version $VERSION)"
	local cmd prebuilt
	for cmd in kmsd kmsctl; do
		prebuilt=$([ $cmd = kmsd ] && echo "${KMSD_BIN:-}" || echo "${KMSCTL_BIN:-}")
		if [ -n "$prebuilt" ]; then
			cp "$prebuilt" "$work/$cmd"
		else
			CGO_ENABLED=0 GOOS=linux GOARCH=$GOARCH go build -trimpath -buildvcs=false \
				-ldflags "-s -w -X main.version=$VERSION" -o "$work/$cmd" "./cmd/$cmd"
		fi
		# no libc in the image: a dynamic binary would not start
		if ldd "$work/$cmd" >/dev/null 2>&1; then
			echo "build-image.sh: $cmd is dynamically linked; build it with CGO_ENABLED=0" >&2
			exit 1
		fi
	done
	etc_files 65532 nonroot
	local ca=()
	for f in /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt; do
		if [ -f "$f" ]; then ca=(-file "/etc/ssl/certs/ca-certificates.crt=$f:0644"); break; fi
	done
	[ ${#ca[@]} -gt 0 ] || echo "warning: no CA bundle found; the image will trust no public CA" >&2
	mkoci -o "$OUT_DIR/kms-image.tar" -ref "$IMAGE" \
		-entrypoint '["/kmsd"]' -user 65532:65532 -workdir /data -port 9876/tcp -volume /data \
		-env PATH=/ -env KMS_DATA_DIR=/data -env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
		-label org.opencontainers.image.title=kms \
		-label "org.opencontainers.image.description=kmsd, a BigDL-compatible key management server, and kmsctl" \
		-label org.opencontainers.image.source=https://github.com/ppmlkms/kms \
		-label "org.opencontainers.image.version=$VERSION" \
		-file "/kmsd=$work/kmsd:0755" -file "/kmsctl=$work/kmsctl:0755" \
		-file "/etc/passwd=$work/passwd:0644" -file "/etc/group=$work/group:0644" "${ca[@]}" \
		-dir /data:0700:65532:65532 -dir /tmp:1777
	echo "   $(du -h "$OUT_DIR/kms-image.tar" | cut -f1) in $((SECONDS - t0))s"
}

build_mariadb() {
	local t0=$SECONDS mariadbd=/usr/sbin/mariadbd share=/usr/share/mysql
	if [ ! -x $mariadbd ] || [ ! -f $share/mysql_system_tables.sql ]; then
		echo "build-image.sh: the MariaDB image is made from Debian's mariadb-server package; apt-get install mariadb-server" >&2
		exit 1
	fi
	local version
	version=$($mariadbd --version | sed -n 's/.*Ver \([0-9.]*\)-MariaDB.*/\1/p')
	MARIADB_IMAGE=${MARIADB_IMAGE:-ghcr.io/ppmlkms/kms-mariadb:$version}
	echo "== MariaDB image $MARIADB_IMAGE (mariadbd $version from this machine's Debian package)"
	CGO_ENABLED=0 GOOS=linux GOARCH=$GOARCH go build -trimpath -buildvcs=false -ldflags "-s -w" \
		-o "$work/mariadb-init" ./deploy/image/mariadb-init
	etc_files 65532 mysql
	local args=(-file "/mariadb-init=$work/mariadb-init:0755" -file "/usr/sbin/mariadbd=$mariadbd:0755"
		-file "/etc/passwd=$work/passwd:0644" -file "/etc/group=$work/group:0644")
	# shared libraries, at the paths ldd resolves them to (the loader too)
	local lib
	for lib in $(ldd $mariadbd | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u); do
		args+=(-file "$lib=$lib")
	done
	# what mariadbd reads at start and at bootstrap
	local f
	for f in mysql_system_tables.sql mysql_performance_tables.sql mysql_system_tables_data.sql \
		maria_add_gis_sp_bootstrap.sql mysql_sys_schema.sql english/errmsg.sys; do
		args+=(-file "$share/$f=$share/$f:0644")
	done
	for f in "$share"/charsets/*; do args+=(-file "$f=$f:0644"); done
	mkoci -o "$OUT_DIR/kms-mariadb-image.tar" -ref "$MARIADB_IMAGE" \
		-entrypoint '["/mariadb-init"]' -user 65532:65532 -workdir / -port 3306/tcp -volume /var/lib/mysql \
		-env PATH=/usr/sbin -env LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu \
		-label org.opencontainers.image.title=kms-mariadb \
		-label "org.opencontainers.image.description=MariaDB $version from Debian, for the kms Helm chart" \
		-label "org.opencontainers.image.version=$version" \
		"${args[@]}" -dir /var/lib/mysql:0700:65532:65532 -dir /run/mysqld:0755:65532:65532 -dir /tmp:1777
	echo "   $(du -h "$OUT_DIR/kms-mariadb-image.tar" | cut -f1) in $((SECONDS - t0))s"
}

case $what in
kms) build_kms ;;
mariadb) build_mariadb ;;
all) build_kms; build_mariadb ;;
esac
