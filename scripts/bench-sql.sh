#!/usr/bin/env bash
# bench-sql.sh: GET and durable POST /dataKey throughput of kmsd on each
# store (SQLite, MariaDB, PostgreSQL) with 1, 2 and 3 replicas sharing the
# database, for docs/benchmarks.md (issue 4). Loopback only, bounded.
#
# Each replica is a kmsd process with the same root key; one kmsbench per
# replica drives it with 32/N keep-alive connections (so 32 in total), all
# at the same time; the figures are the sums. Everything shares the same 2
# CPUs, so more replicas do not add CPU: the table shows what sharing the
# database costs, not horizontal scaling.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=/dev/null
source scripts/ci-databases.sh >/dev/null
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/kmsd" ./cmd/kmsd
go build -o "$work/kmsbench" ./cmd/kmsbench
export ROOT_KEY=$(head -c 32 /dev/urandom | base64)
dur=${BENCH_DURATION:-8s}

fresh_store() { # prints kmsd's -store for a fresh database of backend $1
	local name=kms_bench_$RANDOM$RANDOM
	case $1 in
	sqlite) echo "sqlite:$work/$name.db" ;;
	mysql)
		mysql -uroot -h127.0.0.1 -e "CREATE DATABASE $name"
		echo "mysql://root@tcp(127.0.0.1:3306)/$name" ;;
	postgres)
		psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $name"
		echo "postgres://postgres@127.0.0.1:5432/$name?sslmode=disable" ;;
	esac
}

run() { # backend replicas
	local store; store=$(fresh_store "$1")
	local urls=() i
	pids=()
	for i in $(seq 1 "$2"); do
		local port=$((19100 + i)) dir="$work/r$i-$RANDOM"
		"$work/kmsd" -addr "127.0.0.1:$port" -data-dir "$dir" -store "$store" -root-key-env ROOT_KEY \
			-access-log=false -audit-log off -log-level warn >"$work/kmsd$i.log" 2>&1 &
		pids+=($!)
		urls+=("https://127.0.0.1:$port")
	done
	for u in "${urls[@]}"; do
		for _ in $(seq 1 100); do curl -skf "$u/readyz" >/dev/null && break; sleep 0.1; done
	done
	local conns=$((32 / $2)) outs=()
	for i in "${!urls[@]}"; do
		"$work/kmsbench" -url "${urls[$i]}" -insecure -conns "$conns" -scenario get,post \
			-duration "$dur" -warmup 2s >"$work/out$i.md" 2>"$work/err$i.log" &
		outs+=($!)
	done
	local ok=0
	for p in "${outs[@]}"; do wait "$p" || ok=1; done
	if [ "$ok" != 0 ]; then grep -hiE "warning|error|failed|status" "$work"/out*.md "$work"/err*.log | head -8 >&2 || true; fi
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait "${pids[@]}" 2>/dev/null || true
	local get post
	get=$(cat "$work"/out*.md | awk -F'|' '$5 ~ /GET \/dataKey/ {gsub(/[ ,]/,"",$6); s+=$6} END {print s+0}')
	post=$(cat "$work"/out*.md | awk -F'|' '$5 ~ /POST \/dataKey/ {gsub(/[ ,]/,"",$6); s+=$6} END {print s+0}')
	rm -f "$work"/out*.md
	local note=""
	[ "$ok" = 0 ] || note=" (a load run reported errors: see kmsbench output)"
	printf '| %s | %d | %s | %s |%s\n' "$1" "$2" "$get" "$post" "$note"
	if [ "$1" = mysql ]; then mysql -uroot -h127.0.0.1 -e "DROP DATABASE ${store##*/}" || true; fi
	if [ "$1" = postgres ]; then db=${store##*/}; psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE ${db%%\?*} WITH (FORCE)" || true; fi
}

echo "| store | replicas | GET /dataKey req/s | durable POST /dataKey req/s |"
echo "|---|--:|--:|--:|"
if [ $# -gt 0 ]; then run "$1" "$2"; exit; fi
run sqlite 1
for b in mysql postgres; do
	for n in 1 2 3; do run "$b" "$n"; done
done
