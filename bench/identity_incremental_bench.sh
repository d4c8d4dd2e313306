#!/usr/bin/env bash
# Incremental identity runs against full runs, on the same data in one session (docs/identity.md, section 9):
#   bash bench/identity_incremental_bench.sh [records] [generator]
# generator: bench/identity_generate.sql (the identity benchmark's generator: ~1.6 identifiers per record,
# planted people, junk, hubs, conflicts, a long chain, and a ~1% later increment). Prints, for one increment:
# the fresh full run, the incremental run (subgraph), the same increment re-resolving everything (what
# incremental runs did before: forced here by a rules change that matches nothing, rolled back), and a full
# rebuild afterwards, whose result must equal the incremental one (map, identifier rows, totals).
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
records=${1:-2000000}
generator=${2:-$CDP_ROOT/bench/identity_generate.sql}
[ -f "$generator" ] || { echo "generator $generator not found" >&2; exit 1; }
db=cdp_identity_incremental_bench
schema=bi
cdp_cluster_start
"$CDP_BIN/psql" -X -q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
sql() { "$CDP_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }
log "generating $records records"
sql -v records="$records" -v schema=$schema -f "$generator" >/dev/null
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
sql -At <<EOF2 2>&1 | grep -v '^NOTICE:  merge_identities: [rsw]'
SET client_min_messages = notice;
SET maintenance_work_mem = '4GB';
CREATE EXTENSION pg_cdp;
UPDATE cdp.identity_settings SET default_phone_region = 'GB';
CREATE FUNCTION pg_temp.timed(statement text) RETURNS double precision LANGUAGE plpgsql AS \$\$
DECLARE t timestamptz := clock_timestamp();
BEGIN EXECUTE statement; RETURN round(extract(epoch FROM clock_timestamp() - t)::numeric, 2); END \$\$;
SELECT 'full run (fresh): ' || pg_temp.timed(\$\$CALL cdp.merge_identities('$schema.observations')\$\$) || ' s';
INSERT INTO $schema.observations SELECT * FROM $schema.observations_increment;
SELECT 'increment: ' || count(*) || ' observations (' || round(100.0 * count(*) / (SELECT count(*) FROM $schema.observations), 2) || '%)' FROM $schema.observations_increment;
BEGIN;
INSERT INTO cdp.identifier_blocklist (id_type, value) VALUES ('email', 'rules-change@nowhere.invalid');
SELECT 'incremental, re-resolving everything (before): ' || pg_temp.timed(\$\$CALL cdp.merge_identities('$schema.observations')\$\$) || ' s';
ROLLBACK;
SELECT 'incremental (subgraph): ' || pg_temp.timed(\$\$CALL cdp.merge_identities('$schema.observations')\$\$) || ' s';
SELECT 'incremental run: links ' || links || ', resolved_links ' || resolved_links || ', phases ' || phase_ms FROM cdp.merge_runs ORDER BY run_id DESC LIMIT 1;
CREATE TEMP TABLE map_inc AS SELECT * FROM cdp.identity_map;
CREATE TEMP TABLE identifiers_inc AS SELECT * FROM cdp.person_identifiers;
SELECT 'full rebuild after it: ' || pg_temp.timed(\$\$CALL cdp.merge_identities('$schema.observations', true)\$\$) || ' s';
SELECT 'full rebuild == incremental: map differences ' ||
       (SELECT count(*) FROM map_inc i FULL JOIN cdp.identity_map f USING (source, source_key) WHERE i.person_id IS DISTINCT FROM f.person_id) ||
       ', identifier row differences ' ||
       (SELECT count(*) FROM (SELECT * FROM identifiers_inc EXCEPT SELECT * FROM cdp.person_identifiers
                              UNION ALL SELECT * FROM cdp.person_identifiers EXCEPT SELECT * FROM identifiers_inc) d) ||
       ', rebuild merges/splits/new persons ' || merges || '/' || splits || '/' || new_persons
  FROM cdp.merge_runs ORDER BY run_id DESC LIMIT 1;
EOF2
"$CDP_BIN/psql" -X -q -c "DROP DATABASE $db"
