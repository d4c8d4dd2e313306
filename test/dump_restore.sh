#!/usr/bin/env bash
# pg_dump / restore round trip of everything pg_cdp keeps as the user's data: every table and sequence the
# extension registers with pg_extension_config_dump (identity rules and results, RFM segment maps, lifecycle
# policies, profile configuration and snapshots). It edits shipped and user rows of every config table,
# dumps with the server's own pg_dump, restores into a fresh database, and compares each registered
# object's full content between the two; then checks that a merge run after the restore behaves as before.
# Assumes the cluster of scripts/lib.sh is running (scripts/test.sh calls this after installcheck).
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

src_db=cdp_dump_source
dst_db=cdp_dump_restored
passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1${2:+: $2}"; failed=$((failed + 1)); }
sql() { local db=$1; shift; "$CDP_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }

log "dump/restore of pg_cdp's config tables"
for db in "$src_db" "$dst_db"; do
  sql postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
done

sql "$src_db" >/dev/null <<'EOF'
SET client_min_messages = warning;
CREATE EXTENSION pg_cdp;

-- Identity rules: edit shipped rows, delete (= disable) shipped rows, add user rows.
UPDATE cdp.identifier_types SET hub_threshold = 1000 WHERE id_type = 'email';
UPDATE cdp.identifier_types SET description = 'loyalty card' WHERE id_type = 'loyalty_id';
DELETE FROM cdp.identifier_types WHERE id_type = 'device_id';
INSERT INTO cdp.identifier_types (id_type, normaliser, max_per_person, priority, hub_threshold, description)
VALUES ('member_no', 'lower', 1, 95, NULL, 'our membership number');
UPDATE cdp.identifier_blocklist SET reason = 'our placeholder' WHERE id_type IS NULL AND value = 'none';
DELETE FROM cdp.identifier_blocklist WHERE id_type = 'email' AND value = 'a@a.com';
INSERT INTO cdp.identifier_blocklist (id_type, value, match, reason) VALUES
  ('email', 'info@%', 'like', 'role address'), ('member_no', '000', 'exact', 'placeholder'),
  (NULL, 'unset', 'exact', 'placeholder');
UPDATE cdp.identity_settings SET default_phone_region = 'GB';

-- RFM: shipped maps are read-only; copy one and edit the copy.
SELECT cdp.rfm_copy_segment_map('default', 'our_map');
UPDATE cdp.rfm_segment_rules SET segment = 'VIP' WHERE segment_map = 'our_map' AND r = 5 AND f = 5;
DELETE FROM cdp.rfm_segment_rules WHERE segment_map = 'our_map' AND r = 1 AND f = 1 AND m = 1;

-- Lifecycle: a user policy.
INSERT INTO cdp.lifecycle_policies (policy, one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor,
                                    loyal_min_order_days, min_gaps_for_own_cadence, description)
VALUES ('weekly_grocer', 14, 1.5, 2.5, 5, 6, 2, 'groceries: customers come back within two weeks');

-- Identity results and erasure state.
CREATE TABLE public.obs (source text, source_key text, id_type text, id_value text, observed_at timestamptz);
INSERT INTO public.obs
SELECT 'shop', 'o' || g, 'email', 'person' || (g % 40) || '@mail.com', timestamptz '2024-01-01' + g * interval '1 hour'
  FROM generate_series(1, 120) g
UNION ALL
SELECT 'web', 's' || g, 'anonymous_id', 'ck' || (g % 60), timestamptz '2024-01-01' + g * interval '1 hour'
  FROM generate_series(1, 120) g
UNION ALL
SELECT 'web', 's' || g, 'email', 'person' || (g % 40) || '@mail.com', timestamptz '2024-01-01' + g * interval '1 hour'
  FROM generate_series(1, 120, 3) g
UNION ALL
SELECT 'crm', 'c' || g, 'member_no', 'M' || g, timestamptz '2024-01-02' FROM generate_series(1, 30) g
UNION ALL
SELECT 'crm', 'c' || g, 'phone', '020 7946 0' || lpad(g::text, 3, '0'), timestamptz '2024-01-02' FROM generate_series(1, 30) g;
CALL cdp.merge_identities('public.obs');
CALL cdp.forget_identifier('email', 'person7@mail.com');

-- Profiles: orders configuration (and the table it names), when the profiles capability is present.
CREATE TABLE public.orders (order_id bigint, customer_id text, ordered_at timestamptz, amount numeric(12,2));
INSERT INTO public.orders SELECT g, (g % 25)::text, timestamptz '2024-01-01' + g * interval '1 day', 10 + g % 7
  FROM generate_series(1, 100) g;
DO $$
BEGIN
  IF to_regprocedure('cdp.configure_orders(regclass, text, text, text, text, text, text, text, text, text, text, integer)') IS NOT NULL THEN
    PERFORM cdp.configure_orders('public.orders', 'order_id', 'customer_id', 'ordered_at', 'amount',
                                 shop_time_zone => 'Europe/Berlin', segment_map => 'our_map',
                                 lifecycle_policy => 'weekly_grocer');
  END IF;
END $$;
EOF

# Every registered object must have something to compare: the editing above must have left user rows.
required="cdp.identifier_types cdp.identifier_blocklist cdp.identity_settings cdp.rfm_segment_rules cdp.lifecycle_policies"
registered=$(sql "$src_db" -At -c "
  SELECT c.oid::regclass FROM pg_extension e, unnest(e.extconfig) AS x(oid) JOIN pg_class c ON c.oid = x.oid
   WHERE e.extname = 'pg_cdp' ORDER BY 1::text")
for table in $required; do
  if grep -qx "$table" <<<"$registered"; then pass "$table is registered for pg_dump"; else fail "$table is registered for pg_dump"; fi
done

dump="$CDP_STATE/dump_restore.sql"
if "$CDP_BIN/pg_dump" -d "$src_db" >"$dump" &&
   sql "$dst_db" -f "$dump" >"$CDP_STATE/dump_restore.log" 2>&1; then
  pass "pg_dump | psql restore"
else
  fail "pg_dump | psql restore" "$(tail -5 "$CDP_STATE/dump_restore.log")"
fi

# Full content, every column (builtin and shipped rows too), in a total order.
for object in $registered; do
  kind=$(sql "$src_db" -At -c "SELECT relkind FROM pg_class WHERE oid = '$object'::regclass")
  if [ "$kind" = S ]; then
    query="SELECT last_value, is_called FROM $object"
  else
    query="SELECT t::text FROM ONLY $object t ORDER BY 1"
  fi
  before=$(sql "$src_db" -At -c "$query")
  after=$(sql "$dst_db" -At -c "$query" 2>&1 || true)
  rows=$(grep -c . <<<"$before" || true)
  if [ "$before" = "$after" ]; then
    pass "$object ($rows rows)"
  else
    fail "$object" "$(diff <(echo "$before") <(echo "$after") | head -5 | tr '\n' ' ')"
  fi
done

# The restored rules and state behave as the original: the same next run gives the same result
# (disabled device_id refused, member_no linked, the erased email not re-linked, new ids not reused).
next_run="
SET client_min_messages = warning;
INSERT INTO public.obs VALUES ('shop', 'o500', 'email', 'person7@mail.com', '2024-02-01'),
  ('shop', 'o500', 'member_no', 'm3', '2024-02-01'), ('shop', 'o501', 'email', 'info@shop.com', '2024-02-01'),
  ('shop', 'o502', 'email', 'a@a.com', '2024-02-01'), ('shop', 'o503', 'email', 'a@a.com', '2024-02-01'),
  ('shop', 'o504', 'phone', '+44 20 7946 0001', '2024-02-01'), ('shop', 'o505', 'email', 'new@mail.com', '2024-02-01');
CALL cdp.merge_identities('public.obs');
SELECT m.source, m.source_key, m.person_id FROM cdp.identity_map m ORDER BY 1, 2;
SELECT id_type, id_value, person_id, status, reason FROM cdp.person_identifiers ORDER BY 1, 2;
SELECT run_id, new_observations, records, persons, new_persons, merges, splits FROM cdp.merge_runs ORDER BY 1;
INSERT INTO public.obs VALUES ('shop', 'o506', 'device_id', 'tv-1', '2024-02-02');
DO \$\$ BEGIN CALL cdp.merge_identities('public.obs'); RAISE EXCEPTION 'device_id was accepted';
EXCEPTION WHEN invalid_parameter_value THEN RAISE WARNING 'refused: %', SQLERRM; END \$\$;"
before=$(sql "$src_db" -At <<<"$next_run" 2>&1 || true)
after=$(sql "$dst_db" -At <<<"$next_run" 2>&1 || true)
if [ "$before" = "$after" ] && grep -q "refused: .*device_id" <<<"$before"; then
  pass "next merge run after restore"
else
  fail "next merge run after restore" "$(diff <(echo "$before") <(echo "$after") | head -5 | tr '\n' ' ')"
fi

[ "$failed" = 0 ] && for db in "$src_db" "$dst_db"; do sql postgres -c "DROP DATABASE $db"; done
echo "dump_restore: $passed passed, $failed failed"
[ "$failed" = 0 ]
