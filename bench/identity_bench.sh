#!/usr/bin/env bash
# Identity-merge benchmark (docs/identity_bench.md). One run, same links for every method:
#   1. comparison scale (~2.5M links): cdp.merge_identities end to end (fresh, median of REPEATS),
#      pgr_connectedComponents (median of REPEATS), plain-SQL min-label propagation (capped at LP_SECONDS,
#      the rest extrapolated and labelled so), planted-trap checks;
#   2. a small graph where label propagation finishes: its rounds and components checked against pgRouting;
#   3. full scale (10M records / ~16M links): cdp full run with the backend's peak RSS, trap checks, an
#      incremental run adding 1% new observations, then a full rebuild whose partition must equal it.
# Usage: bash bench/identity_bench.sh
#   env: COMPARE_RECORDS (1550000) FULL_RECORDS (10000000, 0 = skip) REPEATS (3) LP_SECONDS (300)
#        SMALL_RECORDS (20000) SMALL_CHAIN (100) CHAIN (10000) PGR_FULL (0; 1 = pgRouting at full scale too)
#        CDP_MEMORY (4GB: maintenance_work_mem, pg_cdp's memory limit; the peak actually used is reported)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

COMPARE_RECORDS=${COMPARE_RECORDS:-1550000}
FULL_RECORDS=${FULL_RECORDS:-10000000}
REPEATS=${REPEATS:-3}
LP_SECONDS=${LP_SECONDS:-300}
SMALL_RECORDS=${SMALL_RECORDS:-20000}
SMALL_CHAIN=${SMALL_CHAIN:-100}
CHAIN=${CHAIN:-10000}
PGR_FULL=${PGR_FULL:-0}
CDP_MEMORY=${CDP_MEMORY:-4GB}                # maintenance_work_mem: pg_cdp's memory limit for the run
OUT="$CDP_STATE/identity_bench"             # logs of this run
mkdir -p "$OUT"

# pgRouting (and PostGIS, which its control file requires) must be inside the private server copy in
# .cdp/install; that copy is made once, so if it predates the packages, drop its stamp and cdp_build
# copies the server again.
cdp_install_packages "postgresql-$PG_MAJOR-pgrouting" "postgresql-$PG_MAJOR-postgis-3"
if [ -d "$CDP_INSTALL" ] &&
   [ ! -f "$CDP_INSTALL/usr/share/postgresql/$PG_MAJOR/extension/pgrouting.control" ]; then
  log "private server copy lacks pgRouting: refreshing it"
  rm -f "$CDP_INSTALL/.source-version"
fi
cdp_build
cdp_cluster_start

export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"
psql_q() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
sql() { psql_q -At -c "$1"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) print ""; else if (NR % 2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
secs() { awk -v ms="$1" 'BEGIN {printf "%.2f", ms / 1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.1f", a / b; else print "n/a"}'; }

machine() {
  echo "machine: nproc=$(nproc), $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/^Mem:/ {print $2}') GB RAM,"\
       "$(sql 'SELECT version()' | cut -d, -f1), load average: $(cut -d' ' -f1-3 /proc/loadavg)"
}

HAVE_CDP=0
sql "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS pg_cdp" >/dev/null
if [ "$(sql "SELECT count(*) FROM pg_proc WHERE oid::regprocedure::text LIKE 'cdp.merge_identities(%'")" != 0 ]; then
  HAVE_CDP=1
else
  log "cdp.merge_identities is not in this build: the cdp part is skipped (competitors still run)"
fi
sql "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS pgrouting CASCADE" >/dev/null

# A fresh pg_cdp (no earlier results) with phone numbers read as GB: the generator writes UK numbers,
# some in national form ("020 7946 0958").
cdp_reset() {
  sql "SET client_min_messages = warning; DROP EXTENSION IF EXISTS pg_cdp CASCADE; CREATE EXTENSION pg_cdp;
       UPDATE cdp.identity_settings SET default_phone_region = 'GB';" >/dev/null
}

# cdp_run <label> <schema> <full_rebuild>: one CALL in its own session; prints "<ms> <peak_rss_kB>"; the log
# also holds the backend's CPU time (cpu_ms: user + system of the session, almost all of it the CALL;
# parallel index-build workers not included), which moves little when other jobs share the machine.
# The backend's VmHWM (peak resident set, which also counts the shared buffers it touched) is read from
# /proc while the session is still open, after the CALL.
cdp_run() {
  local label=$1 schema=$2 full=$3 log="$OUT/cdp_$1.log"
  sync  # the previous run's writes reach the disk first, so no run pays for another's writeback
  psql_q -At >"$log" 2>&1 <<SQL
SET statement_timeout = '20min';
SET maintenance_work_mem = '$CDP_MEMORY';
SELECT pg_backend_pid() AS pid \gset
\setenv CDP_PID :pid
\! grep VmHWM /proc/\$CDP_PID/status | awk '{print "rss_before_kb=" \$2}'
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
CALL cdp.merge_identities('$schema.observations', $full);
SELECT 'ms=' || round((extract(epoch FROM clock_timestamp()) - :t0) * 1000);
\! grep VmHWM /proc/\$CDP_PID/status | awk '{print "rss_peak_kb=" \$2}'
\! awk -v hz=\$(getconf CLK_TCK) '{print "cpu_ms=" int((\$14 + \$15) * 1000 / hz)}' /proc/\$CDP_PID/stat
SELECT 'run=' || row_to_json(r) FROM (SELECT run_id, observations_read, new_observations, links, records, identifiers,
       persons, merges, splits, cut_links, excluded, jitter, memory_bytes, phase_ms
  FROM cdp.merge_runs ORDER BY run_id DESC LIMIT 1) r;
SQL
  local rc=$?
  [ $rc = 0 ] || { cat "$log" >&2; return $rc; }
  echo "$(sed -n 's/^ms=//p' "$log") $(sed -n 's/^rss_peak_kb=//p' "$log")"
}

cpu_of() { secs "$(sed -n 's/^cpu_ms=//p' "$OUT/cdp_$1.log")"; }  # backend CPU seconds of a cdp_run

# pgRouting's connected components over the links, written to a table like cdp writes its map.
pgr_run() {
  local schema=$1 t0 t1
  sql "DROP TABLE IF EXISTS $schema.pgr_result" >/dev/null
  sync
  t0=$(now_ms)
  sql "SET statement_timeout = '30min';
       CREATE TABLE $schema.pgr_result AS SELECT node, component
         FROM pgr_connectedComponents('SELECT id, source, target, cost, reverse_cost FROM $schema.edges')" >/dev/null
  t1=$(now_ms)
  echo $((t1 - t0))
}

generate() {  # generate <schema> <records> <chain> [no_links]
  local t0 t1
  log "generating $2 records into $1 (chain $3)"
  t0=$(now_ms)
  psql_q -v schema="$1" -v records="$2" -v chain="$3" -f bench/identity_generate.sql
  t1=$(now_ms); echo "generated in $(secs $((t1 - t0))) s"
  [ "${4:-}" = no_links ] && return 0
  sync
  t0=$(now_ms)
  psql_q -v schema="$1" -f bench/identity_links.sql
  t1=$(now_ms); LINKS_MS=$((t1 - t0))
  echo "links (integer edge table for pgRouting / label propagation) built in $(secs "$LINKS_MS") s"
}

checks() {  # checks <schema> <increment true|false> <label>
  psql_q -v schema="$1" -v increment="$2" -f bench/identity_checks.sql | tee "$OUT/checks_$3.log"
}

declare -A FIG
log "identity benchmark start"; machine | tee "$OUT/machine.txt"

# ---------------------------------------------------------------------------------------------------
# 1. Comparison scale
S=bench_identity
generate $S "$COMPARE_RECORDS" "$CHAIN"
FIG[cmp_links_ms]=$LINKS_MS
FIG[cmp_links]=$(sql "SELECT count(*) FROM $S.edges")
FIG[cmp_records]=$(sql "SELECT count(*) FROM $S.record_vertex")
FIG[cmp_values]=$(sql "SELECT count(*) FROM $S.value_vertex")

if [ $HAVE_CDP = 1 ]; then
  times=()
  for i in $(seq "$REPEATS"); do
    cdp_reset
    read -r ms rss < <(cdp_run "cmp_fresh_$i" $S true)
    echo "cdp.merge_identities full (fresh) run $i: $(secs "$ms") s ($(cpu_of "cmp_fresh_$i") s backend CPU), backend peak RSS $((rss / 1024)) MB"
    times+=("$ms")
  done
  FIG[cmp_cdp]=$(printf '%s\n' "${times[@]}" | median)
  FIG[cmp_cdp_all]="${times[*]}"
  sed -n 's/^run=//p' "$OUT/cdp_cmp_fresh_1.log"
  checks $S false cmp
  FIG[cmp_persons]=$(sql "SELECT count(DISTINCT person_id) FROM cdp.identity_map")
fi

times=()
for i in $(seq "$REPEATS"); do
  ms=$(pgr_run $S)
  echo "pgr_connectedComponents run $i: $(secs "$ms") s"
  times+=("$ms")
done
FIG[cmp_pgr]=$(printf '%s\n' "${times[@]}" | median)
FIG[cmp_pgr_all]="${times[*]}"
FIG[cmp_raw_components]=$(sql "SELECT count(DISTINCT p.component) FROM $S.pgr_result p
                                 JOIN $S.record_vertex r ON r.vertex = p.node")

log "label propagation at comparison scale, capped at $LP_SECONDS s"
psql_q -v schema=$S -v seconds="$LP_SECONDS" -c "SET statement_timeout = '$((LP_SECONDS + 900))s'" \
  -f bench/identity_label_propagation.sql
read -r lp_rounds lp_converged lp_ms lp_last < <(sql "
  SELECT count(*) FILTER (WHERE round > 0), bool_or(changed = 0), round(sum(ms)),
         round(min(ms) FILTER (WHERE round > 0 AND round > (SELECT max(round) FROM $S.lp_rounds) - 3))
    FROM $S.lp_rounds" | tr '|' ' ')
FIG[cmp_lp_rounds]=$lp_rounds; FIG[cmp_lp_ms]=$lp_ms; FIG[cmp_lp_converged]=$lp_converged
if [ "$lp_converged" = t ]; then
  FIG[cmp_lp_total]=$lp_ms; FIG[cmp_lp_kind]=measured
else
  # Rounds needed >= 2 * CHAIN (the chain's far end is 2*(CHAIN-1)+1 hops from its smallest vertex, plus
  # the round that changes nothing); each remaining round costs at least the cheapest of the last three.
  need=$((2 * CHAIN))
  FIG[cmp_lp_total]=$(awk -v ms="$lp_ms" -v done="$lp_rounds" -v need="$need" -v per="$lp_last" \
                        'BEGIN {printf "%d", ms + (need - done) * per}')
  FIG[cmp_lp_kind]="extrapolated: $lp_rounds of >= $need rounds run in $(secs "$lp_ms") s, rest at $(secs "$lp_last") s/round"
fi

# ---------------------------------------------------------------------------------------------------
# 2. Small graph: label propagation to the end, rounds and components against pgRouting.
SS=bench_identity_small
generate $SS "$SMALL_RECORDS" "$SMALL_CHAIN"
psql_q -v schema=$SS -v seconds=600 -c "SET statement_timeout = '900s'" -f bench/identity_label_propagation.sql
ms=$(pgr_run $SS)
read -r small_rounds small_conv small_ms < <(sql "SELECT count(*) FILTER (WHERE round > 0), bool_or(changed = 0), round(sum(ms)) FROM $SS.lp_rounds" | tr '|' ' ')
small_diff=$(sql "SELECT count(*) FROM $SS.lp_label l FULL JOIN $SS.pgr_result p USING (node)
                   WHERE l.label IS DISTINCT FROM p.component")
FIG[small]="$(sql "SELECT count(*) FROM $SS.edges") links: label propagation $small_rounds rounds in $(secs "$small_ms") s (expected $((2 * SMALL_CHAIN)) for chain $SMALL_CHAIN), pgRouting $(secs "$ms") s"
if [ "$small_conv" = t ] && [ "$small_rounds" = $((2 * SMALL_CHAIN)) ] && [ "$small_diff" = 0 ]; then
  echo "PASS small graph: label propagation converged in $small_rounds = 2 x chain rounds; labels equal pgRouting's components"
else
  echo "FAIL small graph: converged=$small_conv rounds=$small_rounds (expected $((2 * SMALL_CHAIN))), $small_diff vertices differ from pgRouting"
fi
if [ $HAVE_CDP = 1 ]; then
  cdp_reset
  read -r ms rss < <(cdp_run small $SS true)
  FIG[small]="${FIG[small]}, cdp $(secs "$ms") s"
  checks $SS false small
fi
sql "DROP SCHEMA $SS CASCADE" >/dev/null

# ---------------------------------------------------------------------------------------------------
# 3. Full scale: 10M records, full run with peak memory, incremental run, full rebuild = incremental.
if [ "$FULL_RECORDS" != 0 ]; then
  F=bench_identity
  if [ "$PGR_FULL" = 1 ]; then generate $F "$FULL_RECORDS" "$CHAIN"; else generate $F "$FULL_RECORDS" "$CHAIN" no_links; fi
  FIG[full_links]=$(sql "SELECT count(*) FROM $F.observations")
  FIG[full_records]=$(sql "SELECT count(*) FROM $F.truth WHERE NOT increment")
  FIG[full_inc_obs]=$(sql "SELECT count(*) FROM $F.observations_increment")
  if [ "$PGR_FULL" = 1 ]; then FIG[full_pgr]=$(pgr_run $F); sql "DROP TABLE $F.pgr_result" >/dev/null; fi
  sql "DROP TABLE IF EXISTS $F.pgr_result, $F.lp_label" >/dev/null
  if [ $HAVE_CDP = 1 ]; then
    cdp_reset
    read -r ms rss < <(cdp_run full_fresh $F true)
    FIG[full_cdp]=$ms; FIG[full_rss]=$rss
    echo "cdp full (fresh) at full scale: $(secs "$ms") s ($(cpu_of full_fresh) s backend CPU), peak RSS $((rss / 1024)) MB"
    sed -n 's/^run=//p' "$OUT/cdp_full_fresh.log"
    checks $F false full
    FIG[full_persons]=$(sql "SELECT count(DISTINCT person_id) FROM cdp.identity_map")

    # Between a shop's runs autovacuum processes the millions of rows the full run wrote (and analyzes
    # them, which the incremental run's plans need); here it is done at once instead of waited for.
    for t in identity_map person_identifiers persons identity_links; do sql "VACUUM ANALYZE cdp.$t" >/dev/null; done
    sql "INSERT INTO $F.observations SELECT * FROM $F.observations_increment; ANALYZE $F.observations" >/dev/null
    read -r ms rss < <(cdp_run full_incremental $F false)
    FIG[full_inc]=$ms
    echo "cdp incremental (+${FIG[full_inc_obs]} observations): $(secs "$ms") s ($(cpu_of full_incremental) s backend CPU)"
    sed -n 's/^run=//p' "$OUT/cdp_full_incremental.log"
    checks $F true full_incremental
    sql "DROP TABLE IF EXISTS $F.map_incremental;
         CREATE UNLOGGED TABLE $F.map_incremental AS SELECT source, source_key, person_id FROM cdp.identity_map" >/dev/null
    read -r ms rss < <(cdp_run full_rebuild $F true)
    FIG[full_rebuild]=$ms
    echo "cdp full rebuild over existing results: $(secs "$ms") s ($(cpu_of full_rebuild) s backend CPU)"
    read -r pairs pi pf missing < <(sql "SET work_mem = '512MB';
      SELECT count(DISTINCT (i.person_id, f.person_id)), count(DISTINCT i.person_id), count(DISTINCT f.person_id),
             count(*) FILTER (WHERE i.person_id IS NULL OR f.person_id IS NULL)
        FROM $F.map_incremental i FULL JOIN cdp.identity_map f USING (source, source_key)" | tr '|' ' ')
    if [ "$pairs" = "$pi" ] && [ "$pairs" = "$pf" ] && [ "$missing" = 0 ]; then
      echo "PASS incremental equals full rebuild: same partition of records ($pi persons)"
    else
      echo "FAIL incremental equals full rebuild: $pi vs $pf persons, $pairs pairs, $missing records in one only"
    fi
    FIG[full_same_ids]=$(sql "SELECT count(*) FILTER (WHERE i.person_id <> f.person_id)
                               FROM $F.map_incremental i JOIN cdp.identity_map f USING (source, source_key)")
  fi
fi

# ---------------------------------------------------------------------------------------------------
log "results"
machine
cat <<EOF
comparison scale: ${FIG[cmp_records]} records, ${FIG[cmp_values]} distinct raw identifier values, ${FIG[cmp_links]} links
  raw-graph components over records (pgRouting): ${FIG[cmp_raw_components]}; cdp persons: ${FIG[cmp_persons]:-n/a}
EOF
printf '  %-52s %12s %10s\n' "method (same ${FIG[cmp_links]} links)" "seconds" "cdp faster"
if [ $HAVE_CDP = 1 ]; then
  printf '  %-52s %12s %10s\n' "cdp.merge_identities (end to end, median)" "$(secs "${FIG[cmp_cdp]}")" "1.0x"
  printf '  %-52s %12s %10s\n' "pgr_connectedComponents (median)" "$(secs "${FIG[cmp_pgr]}")" "$(ratio "${FIG[cmp_pgr]}" "${FIG[cmp_cdp]}")x"
  printf '  %-52s %12s %10s\n' "SQL min-label propagation" "$(secs "${FIG[cmp_lp_total]}")" "$(ratio "${FIG[cmp_lp_total]}" "${FIG[cmp_cdp]}")x"
  printf '  %-52s %12s %10s\n' "pgRouting + building its integer edge table" "$(secs $((FIG[cmp_pgr] + FIG[cmp_links_ms])))" \
    "$(ratio $((FIG[cmp_pgr] + FIG[cmp_links_ms])) "${FIG[cmp_cdp]}")x"
else
  printf '  %-52s %12s %10s\n' "cdp.merge_identities" "not built" "-"
  printf '  %-52s %12s %10s\n' "pgr_connectedComponents (median)" "$(secs "${FIG[cmp_pgr]}")" "-"
  printf '  %-52s %12s %10s\n' "SQL min-label propagation" "$(secs "${FIG[cmp_lp_total]}")" "-"
fi
echo "  label propagation: ${FIG[cmp_lp_kind]}"
echo "  integer edge table (vertex numbering + edges, given to pgRouting and label propagation, not charged above): $(secs "${FIG[cmp_links_ms]}") s"
echo "  all runs (ms): cdp ${FIG[cmp_cdp_all]:-n/a}; pgRouting ${FIG[cmp_pgr_all]}"
echo "small graph: ${FIG[small]}"
if [ "$FULL_RECORDS" != 0 ] && [ $HAVE_CDP = 1 ]; then
  echo "full scale: ${FIG[full_records]} records, ${FIG[full_links]} links (observations); cdp persons ${FIG[full_persons]}"
  echo "  cdp full run (fresh):              $(secs "${FIG[full_cdp]}") s   (target <= 60 s)"
  echo "  backend peak RSS (VmHWM):          $((FIG[full_rss] / 1024)) MB = $(awk -v k="${FIG[full_rss]}" -v l="${FIG[full_links]}" 'BEGIN {printf "%.1f", k * 1024 / l}') bytes/link   (target <= 100)"
  echo "  incremental (+${FIG[full_inc_obs]} observations): $(secs "${FIG[full_inc]}") s = $(awk -v a="${FIG[full_inc]}" -v b="${FIG[full_cdp]}" 'BEGIN {printf "%.1f", 100 * a / b}')% of the full run   (target <= 10%)"
  echo "  full rebuild over existing results: $(secs "${FIG[full_rebuild]}") s; records whose person id differs between incremental and rebuild: ${FIG[full_same_ids]}"
  [ -n "${FIG[full_pgr]:-}" ] && echo "  pgr_connectedComponents at full scale: $(secs "${FIG[full_pgr]}") s"
fi
echo "logs: $OUT"
