#!/usr/bin/env bash
# Benchmark of cdp.refresh_profiles and cdp.segment_summary on the 1,000,000-customer shop
# (bench/generate_shop.sql), measured in one run against the plain-SQL floor of the RFM benchmark:
#   floor   = SELECT count(*), sum(n), max(mx), sum(s) FROM (SELECT customer_id, max(ordered_at) mx,
#             count(*) n, sum(amount) s FROM bench.orders GROUP BY customer_id) x
#   refresh = CALL cdp.refresh_profiles('2026-07-01') (orders attributed by customer column, shop zone UTC)
#   summary = SELECT * FROM cdp.segment_summary (1,000,000-profile snapshot)
# Targets (issue 5): refresh / floor <= 2; summary <= refresh / 20. Prints medians of RUNS runs.
#   bench/profiles_bench.sh            # 1,000,000 customers, 5 runs of the floor, 3 of refresh
#   CUSTOMERS=100000 RUNS=3 bench/profiles_bench.sh
#   PERSON_MATCH=identity_map bench/profiles_bench.sh   # orders attributed through cdp.identity_map
#     (each order an identity record of source 'order' carrying its customer_id; merged first, not timed)
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

CUSTOMERS=${CUSTOMERS:-1000000}
RUNS=${RUNS:-3}
FLOOR_RUNS=${FLOOR_RUNS:-5}
DB=${BENCH_DB:-cdp_bench}
PERSON_MATCH=${PERSON_MATCH:-customer}

cdp_install_packages
cdp_build
cdp_cluster_start

psql -qX -d postgres -tc "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1 \
  || psql -qX -d postgres -c "CREATE DATABASE $DB"
export PGDATABASE=$DB
psql -qX -v ON_ERROR_STOP=1 -c "DROP EXTENSION IF EXISTS pg_cdp CASCADE" -c "CREATE EXTENSION pg_cdp" 2>/dev/null
have=0  # (a CASE around the count would still fail to parse without the table)
if [ "$(psql -qAtX -c "SELECT to_regclass('bench.orders') IS NOT NULL")" = t ]; then
  have=$(psql -qAtX -c "SELECT count(DISTINCT customer_id) FROM bench.orders")
fi
if [ "$have" != "$CUSTOMERS" ]; then
  log "generating bench.orders with $CUSTOMERS customers"
  psql -qX -v customers="$CUSTOMERS" -v repeat_lambda=1.5 -v schema=bench -f "$CDP_ROOT/bench/generate_shop.sql" >/dev/null
fi
psql -qX -c "VACUUM ANALYZE bench.orders"

log "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), PostgreSQL $(psql -qAtX -c 'SHOW server_version')"
psql -qAtX -c "SELECT format('shop: %s orders, %s customers', count(*), count(DISTINCT customer_id)) FROM bench.orders"

# Each measurement runs in a fresh session; milliseconds come from clock_timestamp() around the statement.
measure() {  # $1 = statement; prints elapsed milliseconds
  psql -qAtX -v ON_ERROR_STOP=1 <<SQL | tail -1
CREATE TEMP TABLE t (started timestamptz);
INSERT INTO t VALUES (clock_timestamp());
$1;
SELECT round(extract(epoch FROM clock_timestamp() - started) * 1000) FROM t;
SQL
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

FLOOR_SQL="SELECT count(*), sum(n), max(mx), sum(s) FROM (SELECT customer_id, max(ordered_at) mx, count(*) n, sum(amount) s FROM bench.orders GROUP BY customer_id) x"
if [ "$PERSON_MATCH" = identity_map ]; then
  log "identity merge over one observation per order (not timed)"
  psql -qX -v ON_ERROR_STOP=1 <<'SQL'
CREATE OR REPLACE VIEW bench.order_observations AS
SELECT 'order'::text AS source, order_id::text AS source_key, 'customer_id'::text AS id_type,
       customer_id::text AS id_value, ordered_at AS observed_at
  FROM bench.orders;
SET client_min_messages = warning;
SET maintenance_work_mem = '2GB';
CALL cdp.merge_identities('bench.order_observations', true);
SQL
  psql -qX -c "SELECT cdp.configure_orders('bench.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', person_source => 'order', shop_time_zone => 'UTC')" >/dev/null
else
  psql -qX -c "SELECT cdp.configure_orders('bench.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', shop_time_zone => 'UTC')" >/dev/null
fi

log "warm-up"
measure "$FLOOR_SQL" >/dev/null
measure "CALL cdp.refresh_profiles('2026-06-30 00:00+00')" >/dev/null

floor_ms=(); refresh_ms=(); summary_ms=()
for i in $(seq "$FLOOR_RUNS"); do floor_ms+=("$(measure "$FLOOR_SQL")"); done
for i in $(seq "$RUNS"); do
  # a new snapshot each run (as a daily schedule writes); the history grows by one snapshot per run
  refresh_ms+=("$(measure "CALL cdp.refresh_profiles('2026-07-01 00:00+00'::timestamptz - interval '$i minutes')")")
  summary_ms+=("$(measure "SELECT * FROM cdp.segment_summary")")
  summary_ms+=("$(measure "SELECT * FROM cdp.lifecycle_summary")")
done
floor=$(printf '%s\n' "${floor_ms[@]}" | median)
refresh=$(printf '%s\n' "${refresh_ms[@]}" | median)
summary=$(printf '%s\n' "${summary_ms[@]}" | median)
profiles=$(psql -qAtX -c "SELECT persons FROM cdp.profile_snapshot_list ORDER BY as_of DESC LIMIT 1")
replace_ms=$(measure "CALL cdp.refresh_profiles('2026-07-01 00:00+00'::timestamptz - interval '1 minutes')")

log "results (median ms; floor runs: ${floor_ms[*]}; refresh runs: ${refresh_ms[*]}; summary runs: ${summary_ms[*]})"
awk -v f="$floor" -v r="$refresh" -v s="$summary" -v p="$profiles" -v m="$PERSON_MATCH" 'BEGIN {
  printf "profiles in the snapshot      %d\n", p
  printf "floor (plain GROUP BY)        %8.0f ms\n", f
  printf "cdp.refresh_profiles (" m ") %8.0f ms   refresh / floor = %.2f   (target <= 2)\n", r, r / f
  printf "segment/lifecycle_summary     %8.0f ms   summary / refresh = 1/%.0f (target <= 1/20)\n", s, r / (s > 0 ? s : 1)
}'
echo "refresh replacing an existing snapshot: $replace_ms ms (includes deleting the old one)"

