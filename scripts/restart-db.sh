#!/usr/bin/env bash
# restart-db.sh mysql|postgres [down-seconds]: stops the local database
# server, keeps it down for down-seconds (default 3), and starts it again,
# waiting until it answers. Used by the replica fault tests
# (cmd/kmsd/replicas_test.go) in the serial phase of scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
down=${2:-3}
case ${1:-} in
mysql)
	mysqladmin -uroot -h127.0.0.1 -P3306 shutdown
	sleep "$down"
	;;
postgres)
	version=$(ls /etc/postgresql | sort -V | tail -n1)
	pg_ctlcluster --skip-systemctl-redirect "$version" main stop -m fast
	sleep "$down"
	;;
*)
	echo "usage: $0 mysql|postgres [down-seconds]" >&2
	exit 2
	;;
esac
# shellcheck source=/dev/null
source scripts/ci-databases.sh >/dev/null
