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

log "timing: medians of $RUNS runs (one warm-up run each)"
# Wall clock, and the CPU time of the backend process (from /proc; robust when other jobs share the
# machine). For a serial plan the backend does all the work, so CPU time is the cost of the query; for
# a parallel plan only wall clock counts.
export RUNS FLOOR LIFECYCLE LIFECYCLE_FILTER SERIAL PARALLEL FORCED
python3 - <<'PY'
import os, subprocess, time

runs = int(os.environ["RUNS"])
def one_line(sql):
    return " ".join(sql.split()).rstrip(";")
queries = {
    "floor": os.environ["FLOOR"],
    "lifecycle": "SELECT count(*), sum(customers), max(max_gap) FROM (" + os.environ["LIFECYCLE"] + ") s",
    "lifecycle_filter": os.environ["LIFECYCLE_FILTER"],
}
settings = {"serial": os.environ["SERIAL"], "parallel": os.environ["PARALLEL"], "forced": os.environ["FORCED"]}
plan = [("floor", "parallel"), ("floor", "serial"), ("lifecycle", "parallel"), ("lifecycle", "serial"),
        ("lifecycle", "forced"), ("lifecycle_filter", "serial")]

def session(setting):
    p = subprocess.Popen(["psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, bufsize=1)
    for statement in setting.split(";"):
        if statement.strip():
            name, value = statement.replace("SET", "", 1).split("=")
            run(p, "SELECT set_config('%s', '%s', false)" % (name.strip(), value.strip()))
    pid = int(run(p, "SELECT pg_backend_pid()"))
    return p, pid

def run(p, sql):
    p.stdin.write(one_line(sql) + ";\n")
    p.stdin.flush()
    return p.stdout.readline().strip()

def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2

results = {}
for query, setting in plan:
    p, pid = session(settings[setting])
    run(p, queries[query])  # warm-up
    walls, cpus = [], []
    for _ in range(runs):
        c0, t0 = cpu_seconds(pid), time.monotonic()
        run(p, queries[query])
        walls.append(time.monotonic() - t0)
        cpus.append(cpu_seconds(pid) - c0)
    p.stdin.close()
    p.wait()
    results[(query, setting)] = (median(walls) * 1000, median(cpus) * 1000)

load = open("/proc/loadavg").read().split()[:3]
model = [l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")][:1]
print("machine: %d cores, %s, load average %s" % (os.cpu_count(), model[0] if model else "?", " ".join(load)))
print("%-44s %10s %10s" % ("query", "wall ms", "cpu ms"))
for (query, setting), (wall, cpu) in results.items():
    print("%-44s %10.0f %10.0f" % (query + ", " + setting, wall, cpu))
f_wall, f_cpu = results[("floor", "serial")]
l_wall, l_cpu = results[("lifecycle", "serial")]
print("lifecycle / floor, serial, backend CPU : %.2f (target <= 1.5)" % (l_cpu / f_cpu))
print("lifecycle / floor, serial, wall clock  : %.2f" % (l_wall / f_wall))
print("lifecycle / floor, parallel on, wall   : %.2f" % (results[("lifecycle", "parallel")][0] / results[("floor", "parallel")][0]))
print("lifecycle FILTER form / floor, CPU     : %.2f" % (results[("lifecycle_filter", "serial")][1] / f_cpu))
print("lifecycle parallel on / off, wall      : %.2f (target < 1; the planner's plan is shown above)" % (results[("lifecycle", "parallel")][0] / l_wall))
print("lifecycle forced parallel / off, wall  : %.2f" % (results[("lifecycle", "forced")][0] / l_wall))
PY
