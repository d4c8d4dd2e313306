#!/usr/bin/env bash
# Crash hunt (not part of scripts/test.sh: it is random and slow): SQLsmith sends random queries that call
# pg_cdp's functions with random arguments against a database holding a small sample shop. Passes when the
# server never crashed (no backend "terminated by signal" in the log) and still answers.
#   bash test/fuzz/sqlsmith.sh [queries=20000] [seed=1]
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
queries=${1:-20000}
seed=${2:-1}

cdp_install_packages sqlsmith
cdp_build
cdp_cluster_start
trap cdp_cluster_stop EXIT

psql -qX -v ON_ERROR_STOP=1 -d postgres -c 'DROP DATABASE IF EXISTS cdp_fuzz' -c 'CREATE DATABASE cdp_fuzz'
psql -qX -v ON_ERROR_STOP=1 -d cdp_fuzz -c 'CREATE EXTENSION pg_cdp' >/dev/null
psql -qX -v ON_ERROR_STOP=1 -d cdp_fuzz -v customers=300 -v repeat_lambda=2.5 -v schema=shop \
  -f "$CDP_ROOT/bench/generate_shop.sql" >/dev/null

log_lines_before=$(wc -l <"$CDP_RUN/server.log")
log "sqlsmith: $queries queries, seed $seed"
# statement_timeout keeps a pathological random query from stalling the run.
PGOPTIONS='-c statement_timeout=2s' sqlsmith --target="host=$PGHOST port=$PGPORT user=postgres dbname=cdp_fuzz" \
  --seed="$seed" --max-queries="$queries" --exclude-catalog >"$CDP_STATE/sqlsmith.out" 2>&1 || true
tail -n 5 "$CDP_STATE/sqlsmith.out"

crashes=$(tail -n +"$log_lines_before" "$CDP_RUN/server.log" | grep -cE 'terminated by signal|was terminated by exception' || true)
if [ "$crashes" != 0 ] || ! psql -qXAt -d cdp_fuzz -c 'SELECT 1' >/dev/null; then
  tail -n +"$log_lines_before" "$CDP_RUN/server.log" | grep -B5 -A5 'terminated by' | head -60
  echo "sqlsmith: FAILED ($crashes backend crashes)"
  exit 1
fi
echo "sqlsmith: 1 passed, 0 failed ($queries random queries, no backend crash)"
