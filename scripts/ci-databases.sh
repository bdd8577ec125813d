#!/usr/bin/env bash
# ci-databases.sh starts the local MariaDB and PostgreSQL servers if they are
# not running, waits (bounded) until they answer, makes sure each has a
# database named "test", and gives the DSNs that the store tests read:
#
#   source scripts/ci-databases.sh    # sets and exports KMS_TEST_MYSQL_DSN, KMS_TEST_POSTGRES_DSN
#   eval "$(scripts/ci-databases.sh)" # the same, from a script that runs it
#
# It is idempotent: running servers are left alone, and DSNs already set in
# the environment are kept. A server that cannot be started leaves its DSN
# unset (its tests then skip with a message), the script says so on stderr
# and returns (or exits) 1, which stops a caller running under set -e; use
# "source scripts/ci-databases.sh || true" to go on without that server.
# KMS_DB_WAIT bounds the wait for each server, in seconds (default 60).
#
# Local servers: MariaDB on 127.0.0.1:3306 as root with no password,
# PostgreSQL on 127.0.0.1:5432 with trust authentication as postgres.

_kms_db_log() { echo "ci-databases: $*" >&2; }

# _kms_db_wait CMD... runs CMD every 0.5 s until it succeeds, for at most
# KMS_DB_WAIT seconds (default 60).
_kms_db_wait() {
	local tries=$(( ${KMS_DB_WAIT:-60} * 2 ))
	while (( tries-- > 0 )); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	return 1
}

_kms_mysql_up() { mysql -uroot -h127.0.0.1 -P3306 --connect-timeout=2 -e 'SELECT 1'; }
_kms_pg_up() { psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -Atqc 'SELECT 1'; }

_kms_start_mariadb() {
	_kms_mysql_up >/dev/null 2>&1 && return 0
	if ! command -v mariadbd >/dev/null 2>&1 && [[ ! -x /usr/sbin/mariadbd ]]; then
		_kms_db_log "MariaDB is not installed (apt-get install mariadb-server)"
		return 1
	fi
	_kms_db_log "starting MariaDB"
	if [[ ! -d /run/mysqld ]]; then
		mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null
	fi
	start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
	if ! _kms_db_wait _kms_mysql_up; then
		_kms_db_log "MariaDB did not answer on 127.0.0.1:3306"
		return 1
	fi
}

_kms_start_postgres() {
	_kms_pg_up >/dev/null 2>&1 && return 0
	local version
	version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1)
	if [[ -z $version ]]; then
		_kms_db_log "PostgreSQL is not installed (apt-get install postgresql)"
		return 1
	fi
	_kms_db_log "starting PostgreSQL $version"
	pg_ctlcluster --skip-systemctl-redirect "$version" main start
	if ! _kms_db_wait _kms_pg_up; then
		_kms_db_log "PostgreSQL did not answer on 127.0.0.1:5432"
		return 1
	fi
}

_kms_databases() {
	local failed=0
	if _kms_start_mariadb && mysql -uroot -h127.0.0.1 -P3306 -e 'CREATE DATABASE IF NOT EXISTS test'; then
		export KMS_TEST_MYSQL_DSN="${KMS_TEST_MYSQL_DSN:-root@tcp(127.0.0.1:3306)/test}"
	else
		failed=1
	fi
	if _kms_start_postgres; then
		if [[ $(psql -h 127.0.0.1 -U postgres -d postgres -Atqc "SELECT 1 FROM pg_database WHERE datname = 'test'") != 1 ]]; then
			createdb -h 127.0.0.1 -U postgres test || failed=1
		fi
		export KMS_TEST_POSTGRES_DSN="${KMS_TEST_POSTGRES_DSN:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
	else
		failed=1
	fi
	return $failed
}

if (return 0 2>/dev/null); then
	# Sourced: set the variables in the caller's shell.
	_kms_databases || { _kms_db_log "some database is unavailable; its tests will skip"; return 1; }
else
	set -u
	status=0
	_kms_databases || status=1
	for var in KMS_TEST_MYSQL_DSN KMS_TEST_POSTGRES_DSN; do
		# Single-quoted for the shell, a ' written as '\''.
		[[ -n ${!var:-} ]] && printf "export %s='%s'\n" "$var" "${!var//\'/\'\\\'\'}"
	done
	exit $status
fi
