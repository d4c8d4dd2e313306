#!/usr/bin/env bash
# Benchmark of cdp.lifecycle() on the 1,000,000-customer shop (bench/generate_shop.sql, schema bench):
#   floor     : per-customer max/count/sum in plain SQL, every aggregate consumed (the RFM benchmark's floor)
#   lifecycle : GROUP BY customer with cdp.lifecycle(), every field of the result consumed
# each with parallelism on (the planner's choice, up to 2 workers) and off, and the lifecycle query once more
# with a parallel plan forced (parallel scan and sort in 2 workers); medians of RUNS runs, wall clock.
# Prints lifecycle / floor (target <= 1.5) and parallel / serial for lifecycle (target < 1).
# The other helpers' builds share the machine: the load average is printed with the figures.
# Usage: bash bench/lifecycle_bench.sh        (RUNS=5 by default; uses the throwaway cluster of scripts/lib.sh)
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
RUNS=${RUNS:-5}

cdp_install_packages
cdp_build
cdp_cluster_start
export PGDATABASE=postgres
psql -qX -v ON_ERROR_STOP=1 -c 'CREATE EXTENSION IF NOT EXISTS pg_cdp'
if [ "$(psql -XAt -c "SELECT to_regclass('bench.orders') IS NOT NULL")" != t ] ||
   [ "$(psql -XAt -c "SELECT count(DISTINCT customer_id) FROM bench.orders")" != 1000000 ]; then
  log "generating the 1,000,000-customer shop (schema bench)"
  psql -qX -v ON_ERROR_STOP=1 -v customers=1000000 -v repeat_lambda=1.5 -v schema=bench \
    -f "$CDP_ROOT/bench/generate_shop.sql" >/dev/null
fi
psql -qX -c 'VACUUM ANALYZE bench.orders'

FLOOR="SELECT count(*), sum(n), max(mx), sum(s) FROM (SELECT customer_id, max(ordered_at) mx, count(*) n, sum(amount) s
  FROM bench.orders GROUP BY customer_id) x"
# The dashboard's stage summary: one row per stage, every field of cdp.lifecycle() consumed by an aggregate.
LIFECYCLE="SELECT stage, count(*) AS customers, sum(orders) AS orders, sum(order_days) AS order_days,
  min(first_order_at) AS first_order, max(last_order_at) AS last_order, sum(days_since_last_order) AS silent_days,
  max(overdue_ratio) AS max_ratio, sum(cadence_days) AS cadence, max(expected_next_order_at) AS expected,
  min(stage_since) AS since, max(typical_gap_days) AS max_gap
  FROM (SELECT (cdp.lifecycle(ordered_at, amount, '2026-07-01 00:00+00')).* FROM bench.orders GROUP BY customer_id) x
  GROUP BY stage ORDER BY stage"
# The same fields consumed with one count(*) FILTER per stage (18 aggregates instead of 11).
LIFECYCLE_FILTER="SELECT count(*) FILTER (WHERE stage = 'prospect') AS prospect, count(*) FILTER (WHERE stage = 'new') AS new,
  count(*) FILTER (WHERE stage = 'active') AS active, count(*) FILTER (WHERE stage = 'loyal') AS loyal,
  count(*) FILTER (WHERE stage = 'reactivated') AS reactivated, count(*) FILTER (WHERE stage = 'at_risk') AS at_risk,
  count(*) FILTER (WHERE stage = 'lapsed') AS lapsed, count(*) FILTER (WHERE stage = 'churned') AS churned,
  sum(orders) AS orders, sum(order_days) AS order_days, min(first_order_at) AS first, max(last_order_at) AS last,
  sum(days_since_last_order) AS silent, max(typical_gap_days) AS gap, sum(cadence_days) AS cadence,
  max(expected_next_order_at) AS expected, sum(overdue_ratio) AS ratio, min(stage_since) AS since
  FROM (SELECT (cdp.lifecycle(ordered_at, amount, '2026-07-01 00:00+00')).* FROM bench.orders GROUP BY customer_id) x"

# Median wall time in ms of RUNS runs of a query under the given settings (one warm-up run first).
median_ms() {
  local settings=$1 query=$2 i times=()
  for i in $(seq 0 "$RUNS"); do
    local t
    t=$(psql -qXAt -v ON_ERROR_STOP=1 <<SQL | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -1
$settings
\timing on
$query;
SQL
)
    [ "$i" -gt 0 ] && times+=("$t")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'
}

SERIAL="SET max_parallel_workers_per_gather = 0;"
PARALLEL="SET max_parallel_workers_per_gather = 2;"
# With ~2 orders per customer the planner never chooses a parallel plan for GROUP BY customer on its own
# (partial aggregation cannot shrink 2 rows per group); this forces a parallel scan and sort.
FORCED="SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_hashagg = off; SET enable_sort = on;"

log "plans"
for s in "$PARALLEL" "$SERIAL" "$FORCED"; do
  psql -qXAt -c "$s" -c "EXPLAIN (COSTS OFF) $LIFECYCLE" | grep -E 'Aggregate|Gather|Scan' | sed 's/^/  /'
  echo
done
log "result (parallel and serial must match)"
a=$(psql -qXAt -c "$PARALLEL" -c "$LIFECYCLE"); b=$(psql -qXAt -c "$SERIAL" -c "$LIFECYCLE")
echo "$a" | sed 's/^/  /'
[ "$a" = "$b" ] && echo "  parallel = serial" || { echo "  MISMATCH: serial $b"; exit 1; }

log "timing: medians of $RUNS runs"
floor_parallel=$(median_ms "$PARALLEL" "$FLOOR")
floor_serial=$(median_ms "$SERIAL" "$FLOOR")
lifecycle_parallel=$(median_ms "$PARALLEL" "$LIFECYCLE")
lifecycle_serial=$(median_ms "$SERIAL" "$LIFECYCLE")
lifecycle_forced=$(median_ms "$FORCED" "$LIFECYCLE")
lifecycle_filter=$(median_ms "$SERIAL" "$LIFECYCLE_FILTER")
floor_best=$(printf '%s\n%s\n' "$floor_parallel" "$floor_serial" | sort -n | head -1)

echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-34s %10s ms\n' "floor, parallel on" "$floor_parallel" "floor, parallel off" "$floor_serial" \
  "cdp.lifecycle, parallel on" "$lifecycle_parallel" "cdp.lifecycle, parallel off" "$lifecycle_serial" \
  "cdp.lifecycle, parallel forced" "$lifecycle_forced" "cdp.lifecycle FILTER form, off" "$lifecycle_filter"
awk -v lp="$lifecycle_parallel" -v ls="$lifecycle_serial" -v fp="$floor_parallel" -v fs="$floor_serial" \
    -v lf="$lifecycle_forced" -v lff="$lifecycle_filter" 'BEGIN {
  printf "lifecycle / floor, parallel on : %.2f (target <= 1.5)\n", lp / fp
  printf "lifecycle / floor, parallel off: %.2f\n", ls / fs
  printf "lifecycle parallel / serial    : %.2f (target < 1; the planner chose the plan shown above)\n", lp / ls
  printf "lifecycle forced parallel / serial: %.2f\n", lf / ls
  printf "lifecycle FILTER form / floor, parallel off: %.2f\n", lff / fs
}'
