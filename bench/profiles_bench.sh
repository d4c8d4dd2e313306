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

# Each measurement runs in a fresh session and prints "wall_ms cpu_ms": psql's \timing, and the CPU time
# (user + system) its backend spent on the statement, from /proc (10 ms resolution). CPU time hardly
# moves when other jobs share the machine, so it is printed next to the wall-clock medians.
# maintenance_work_mem is the refresh's memory limit (MWM=, default 1GB: ~200 bytes per person).
MWM=${MWM:-1GB}
measure() {
  psql -qX -v ON_ERROR_STOP=1 -v query="$1" <<PSQL | awk '/^cpu/ { c[n++] = $2 } /^Time:/ { w = $2 } END { printf "%.0f %d\n", w, (c[1] - c[0]) * 10 }'
SET maintenance_work_mem = '$MWM';
SELECT pg_backend_pid() AS pid \gset
\setenv CDP_PID :pid
\! awk '{ print "cpu", \$14 + \$15 }' /proc/\$CDP_PID/stat
\timing on
:query;
\timing off
\! awk '{ print "cpu", \$14 + \$15 }' /proc/\$CDP_PID/stat
PSQL
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

# Interleaved rounds (floor, refresh, summaries), so that the other jobs' load hits all alike.
floor_ms=(); floor_cpu=(); refresh_ms=(); refresh_cpu=(); summary_ms=()
rounds=$(( FLOOR_RUNS > RUNS ? FLOOR_RUNS : RUNS ))
for i in $(seq "$rounds"); do
  if [ "$i" -le "$FLOOR_RUNS" ]; then read -r w c < <(measure "$FLOOR_SQL"); floor_ms+=("$w"); floor_cpu+=("$c"); fi
  if [ "$i" -le "$RUNS" ]; then
    # a new snapshot each run (as a daily schedule writes); the history grows by one snapshot per run
    read -r w c < <(measure "CALL cdp.refresh_profiles('2026-07-01 00:00+00'::timestamptz - interval '$i minutes')")
    refresh_ms+=("$w"); refresh_cpu+=("$c")
    read -r w c < <(measure "SELECT * FROM cdp.segment_summary"); summary_ms+=("$w")
    read -r w c < <(measure "SELECT * FROM cdp.lifecycle_summary"); summary_ms+=("$w")
  fi
  echo "round $i (wall / cpu ms): floor ${floor_ms[-1]:-} / ${floor_cpu[-1]:-}, refresh ${refresh_ms[-1]:-} / ${refresh_cpu[-1]:-}"
done
floor=$(printf '%s\n' "${floor_ms[@]}" | median)
floor_c=$(printf '%s\n' "${floor_cpu[@]}" | median)
refresh=$(printf '%s\n' "${refresh_ms[@]}" | median)
refresh_c=$(printf '%s\n' "${refresh_cpu[@]}" | median)
summary=$(printf '%s\n' "${summary_ms[@]}" | median)
profiles=$(psql -qAtX -c "SELECT persons FROM cdp.profile_snapshot_list ORDER BY as_of DESC LIMIT 1")
read -r replace_ms replace_cpu < <(measure "CALL cdp.refresh_profiles('2026-07-01 00:00+00'::timestamptz - interval '1 minutes')")
memory=$(psql -qAtX -v ON_ERROR_STOP=1 <<PSQL 2>&1 | sed -n 's/.*refresh_profiles: \(.*\)/\1/p' | head -1
SET maintenance_work_mem = '$MWM';
SET client_min_messages = debug1;
CALL cdp.refresh_profiles('2026-07-01 00:00+00'::timestamptz - interval '1 minutes');
PSQL
)

log "results (medians; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "floor runs (wall ms): ${floor_ms[*]}; refresh runs: ${refresh_ms[*]}; summary runs: ${summary_ms[*]}"
awk -v f="$floor" -v r="$refresh" -v fc="$floor_c" -v rc="$refresh_c" -v s="$summary" -v p="$profiles" -v m="$PERSON_MATCH" 'BEGIN {
  printf "profiles in the snapshot      %d\n", p
  printf "floor (plain GROUP BY)        %8.0f ms wall  %8.0f ms backend CPU\n", f, fc
  printf "cdp.refresh_profiles (" m ") %8.0f ms wall  %8.0f ms backend CPU\n", r, rc
  printf "  refresh / floor = %.2f wall, %.2f CPU   (target <= 2)\n", r / f, rc / fc
  printf "segment/lifecycle_summary     %8.0f ms   summary / refresh = 1/%.0f (target <= 1/20)\n", s, r / (s > 0 ? s : 1)
}'
echo "refresh replacing an existing snapshot: $replace_ms ms wall, $replace_cpu ms CPU (includes deleting the old one)"
echo "refresh phases (SET client_min_messages = debug1): $memory"
