#!/usr/bin/env bash
# Benchmark of cdp.rfm (issue 2, item 7) — not a test. Prints, from one run, the medians of:
#   floor : plain per-customer aggregation, every aggregate consumed (the issue's query);
#   ntile : the classic SQL — per-customer stats, then three ntile(5) windows, r, f and m consumed;
#   rfm   : cdp.rfm(...) with all of its columns consumed;
# and the ratios rfm/floor (target <= 1.0) and ntile/rfm (target >= 3), plus an exactness check of
# cdp.rfm's monetary totals against SQL's numeric sums.
#   bash bench/rfm_bench.sh            # N=5 rounds, 1,000,000 customers (generated once into schema bench)
#   N=9 CUSTOMERS=200000 bash bench/rfm_bench.sh
# Rounds interleave the three queries so background load hits them alike. Settings for every query:
# the server's defaults, except maintenance_work_mem = 1GB (cdp.rfm's memory limit; the SQL queries do not use it).
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
N=${N:-5}
CUSTOMERS=${CUSTOMERS:-1000000}
AS_OF="2026-07-01 00:00+00"

cdp_install_packages
cdp_build
cdp_cluster_start
export PGDATABASE=postgres
psql -qX -v ON_ERROR_STOP=1 -c 'SET client_min_messages = warning' -c 'CREATE EXTENSION IF NOT EXISTS pg_cdp'

have=$(psql -qXAt -c "SELECT count(DISTINCT customer_id) FROM bench.orders" 2>/dev/null || echo 0)
if [ "$have" != "$CUSTOMERS" ]; then
  log "generating the shop: $CUSTOMERS customers (bench/generate_shop.sql)"
  psql -qX -v customers="$CUSTOMERS" -v repeat_lambda=1.5 -v schema=bench -f "$CDP_ROOT/bench/generate_shop.sql"
fi
psql -qX -c 'VACUUM ANALYZE bench.orders'

SETTINGS="SET maintenance_work_mem = '1GB';"  # also set inside time_query
FLOOR="SELECT count(*), sum(n), max(mx), sum(s) FROM (SELECT customer_id, max(ordered_at) mx, count(*) n, sum(amount) s
  FROM bench.orders GROUP BY customer_id) x"
NTILE="SELECT count(*), sum(r), sum(f), sum(m) FROM (
  SELECT customer_id, ntile(5) OVER (ORDER BY last_order_at) r, ntile(5) OVER (ORDER BY frequency) f,
         ntile(5) OVER (ORDER BY monetary) m
    FROM (SELECT customer_id, max(ordered_at) FILTER (WHERE amount > 0) last_order_at,
                 count(*) FILTER (WHERE amount > 0) frequency, sum(amount) monetary
            FROM bench.orders WHERE ordered_at <= '$AS_OF'
           GROUP BY customer_id HAVING count(*) FILTER (WHERE amount > 0) > 0) s) x"
RFM="SELECT count(*), sum(length(customer_key)), sum(recency_days), sum(frequency), sum(monetary),
       sum(r), sum(f), sum(m), count(segment)
  FROM cdp.rfm('bench.orders', 'customer_id', 'ordered_at', 'amount', '$AS_OF')"

# Prints "wall_ms cpu_ms" of one query: psql's \timing, and the CPU time (user + system) its backend
# spent on it, from /proc (10 ms resolution). CPU time hardly moves when other jobs share the machine,
# so it is printed next to the wall-clock medians.
time_query() {
  psql -qX -v ON_ERROR_STOP=1 -v query="$1" <<'PSQL' | awk '/^cpu/ { c[n++] = $2 } /^Time:/ { w = $2 } END { printf "%s %d\n", w, (c[1] - c[0]) * 10 }'
SET maintenance_work_mem = '1GB';
SELECT pg_backend_pid() AS pid \gset
\setenv CDP_PID :pid
\! awk '{ print "cpu", $14 + $15 }' /proc/$CDP_PID/stat
\timing on
:query;
\timing off
\! awk '{ print "cpu", $14 + $15 }' /proc/$CDP_PID/stat
PSQL
}
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

log "warming up"
for q in "$FLOOR" "$NTILE" "$RFM"; do time_query "$q" >/dev/null; done
log "timing $N rounds"
floor_ms=() ntile_ms=() rfm_ms=() floor_cpu=() ntile_cpu=() rfm_cpu=()
for round in $(seq 1 "$N"); do
  read -r w c < <(time_query "$FLOOR"); floor_ms+=("$w"); floor_cpu+=("$c")
  read -r w c < <(time_query "$NTILE"); ntile_ms+=("$w"); ntile_cpu+=("$c")
  read -r w c < <(time_query "$RFM"); rfm_ms+=("$w"); rfm_cpu+=("$c")
  echo "round $round (wall / cpu ms): floor ${floor_ms[-1]} / ${floor_cpu[-1]}, ntile ${ntile_ms[-1]} / ${ntile_cpu[-1]}," \
       "cdp.rfm ${rfm_ms[-1]} / ${rfm_cpu[-1]}"
done
floor=$(printf '%s\n' "${floor_ms[@]}" | median)
ntile=$(printf '%s\n' "${ntile_ms[@]}" | median)
rfm=$(printf '%s\n' "${rfm_ms[@]}" | median)
floor_c=$(printf '%s\n' "${floor_cpu[@]}" | median)
ntile_c=$(printf '%s\n' "${ntile_cpu[@]}" | median)
rfm_c=$(printf '%s\n' "${rfm_cpu[@]}" | median)

log "exactness: cdp.rfm monetary vs SQL numeric sums (customers with a positive order up to as_of)"
psql -qX -v ON_ERROR_STOP=1 -c "$SETTINGS" -c "
WITH sql AS (SELECT customer_id::text AS customer_key, sum(amount) AS monetary FROM bench.orders
              WHERE ordered_at <= '$AS_OF' GROUP BY customer_id HAVING count(*) FILTER (WHERE amount > 0) > 0),
     rfm AS (SELECT customer_key, monetary FROM cdp.rfm('bench.orders', 'customer_id', 'ordered_at', 'amount', '$AS_OF'))
SELECT (SELECT count(*) FROM sql) AS sql_customers, (SELECT count(*) FROM rfm) AS rfm_customers,
       (SELECT sum(monetary) FROM sql) AS sql_total, (SELECT sum(monetary) FROM rfm) AS rfm_total,
       (SELECT count(*) FROM sql FULL JOIN rfm USING (customer_key)
         WHERE sql.monetary IS DISTINCT FROM rfm.monetary) AS customers_differing"

echo
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/^Mem:/ {print $2}') GB RAM"
echo "data: $(psql -qXAt -c "SELECT count(*) || ' order rows, ' || count(DISTINCT customer_id) || ' customers' FROM bench.orders")"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf 'wall-clock median of %d rounds: floor %.0f ms, ntile SQL %.0f ms, cdp.rfm %.0f ms\n' "$N" "$floor" "$ntile" "$rfm"
awk -v f="$floor" -v n="$ntile" -v r="$rfm" 'BEGIN {
  printf "  cdp.rfm / floor = %.2f (target <= 1.0)   ntile / cdp.rfm = %.2f (target >= 3)\n", r / f, n / r }'
printf 'backend CPU median of %d rounds: floor %.0f ms, ntile SQL %.0f ms, cdp.rfm %.0f ms\n' "$N" "$floor_c" "$ntile_c" "$rfm_c"
awk -v f="$floor_c" -v n="$ntile_c" -v r="$rfm_c" 'BEGIN {
  printf "  cdp.rfm / floor = %.2f (target <= 1.0)   ntile / cdp.rfm = %.2f (target >= 3)\n", r / f, n / r }'
