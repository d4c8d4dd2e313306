#!/usr/bin/env bash
# Equivalence check of cdp.refresh_profiles between two builds (manual; not part of scripts/test.sh).
#   test/profiles_equivalence.sh save      # with the old build installed: store its snapshots as the baseline
#   test/profiles_equivalence.sh compare   # with the new build installed: the same refreshes, compared
# Each run builds a fresh database ($EQ_DB) with the same deterministic datasets, merges identities the
# same way, and runs the same refreshes (every person-attribution mode, UTC and non-UTC shop zones,
# timestamptz/timestamp/date order times, integer and numeric amounts of mixed scales, refunds, zero and
# NULL amounts, orders after as_of, unattributed orders, DST edges, long histories, other bins, segment
# maps and lifecycle policies, a currency column). Every snapshot row (as text, so numeric scales and
# float digits count), every cdp.profile_refreshes row (without the timings) and every group total goes
# into a table of the database $EQ_KEEP_DB; compare checks both directions with EXCEPT ALL.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"

mode=${1:?usage: test/profiles_equivalence.sh save|compare}
EQ_DB=${EQ_DB:-cdp_profiles_eq}
EQ_KEEP_DB=${EQ_KEEP_DB:-cdp_profiles_eq_keep}
EQ_CUSTOMERS=${EQ_CUSTOMERS:-20000}
case "$mode" in save) table=baseline ;; compare) table=current ;; *) echo "save or compare" >&2; exit 2 ;; esac

cdp_cluster_start
sql() { psql -X -q -v ON_ERROR_STOP=1 "$@"; }
sql -d postgres -c "DROP DATABASE IF EXISTS $EQ_DB" -c "CREATE DATABASE $EQ_DB"
psql -qAtX -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$EQ_KEEP_DB'" | grep -q 1 \
  || sql -d postgres -c "CREATE DATABASE $EQ_KEEP_DB"

log "datasets"
sql -d "$EQ_DB" >/dev/null <<SQL
SET client_min_messages = warning;
CREATE EXTENSION pg_cdp;
\set customers 12000
\set repeat_lambda 2.5
\set schema shop
\ir $CDP_ROOT/bench/generate_shop.sql
\ir $CDP_ROOT/demo/06_sample_identities.sql
\set customers $EQ_CUSTOMERS
\set repeat_lambda 1.5
\set schema eqbench
\ir $CDP_ROOT/bench/generate_shop.sql

-- Edge cases, text customer keys, numeric amounts of any scale.
SELECT setseed(0.17);
CREATE SCHEMA edge;
CREATE TABLE edge.orders (order_id bigint, customer text, ordered_at timestamptz, amount numeric, currency text);
INSERT INTO edge.orders VALUES
  -- weekly buyer, two orders on one day, a refund
  (1, 'a', '2026-05-06 10:00+00', 20), (2, 'a', '2026-05-13 10:00+00', 25), (3, 'a', '2026-05-20 10:00+00', 30),
  (4, 'a', '2026-05-27 10:00+00', 20), (5, 'a', '2026-06-03 10:00+00', 22), (6, 'a', '2026-06-03 18:00+00', 5),
  (7, 'a', '2026-06-05 09:00+00', -22),
  -- refunds only; zero only; zero, refund and a later positive order
  (10, 'b', '2026-02-01 12:00+00', -15), (11, 'b', '2026-03-01 12:00+00', -0.5),
  (12, 'f', '2026-04-01 12:00+00', 0),
  (13, 'n', '2025-11-01 12:00+00', 0), (14, 'n', '2025-12-01 12:00+00', -3.25), (15, 'n', '2026-01-01 12:00+00', 12),
  -- NULL amounts and a NULL ordered_at beside real orders
  (20, 'c', '2026-01-10 08:00+00', NULL), (21, 'c', '2026-02-10 08:00+00', 40), (22, 'c', NULL, 99),
  (23, 'c', '2026-06-30 23:59:59.999999+00', NULL),
  -- orders only after the usual as_of; one exactly at it
  (30, 'd', '2026-07-02 08:00+00', 70), (31, 'i', '2026-07-01 00:00+00', 8), (32, 'i', '2026-07-01 00:00:00.000001+00', 9),
  -- mixed scales
  (40, 'e', '2026-03-03 03:03+00', 10), (41, 'e', '2026-03-04 03:03+00', 10.5), (42, 'e', '2026-03-05 03:03+00', 3.125),
  (43, 'e', '2026-03-05 04:00+00', -0.125000),
  -- a big spender
  (50, 'm', '2025-09-09 09:09+00', 123456789012345678.99), (51, 'm', '2026-06-09 09:09+00', 0.01),
  -- Berlin DST: fall back 2025-10-26 03:00 CEST -> 02:00 CET, spring forward 2026-03-29 02:00 CET -> 03:00 CEST
  (60, 'h', '2025-10-26 00:30+00', 11), (61, 'h', '2025-10-26 01:10+00', 12), (62, 'h', '2025-10-25 22:30+00', 13),
  (63, 'h', '2026-03-29 00:59:59+00', 14), (64, 'h', '2026-03-29 01:00+00', 15), (65, 'h', '2026-03-28 23:00+00', 16),
  -- ordered by phone, never seen by the merge
  (70, 'k', '2026-04-15 16:00+00', 35), (71, 'k', '2024-04-15 16:00+00', 35),
  -- around midnight in several zones
  (80, 'z', '2026-06-30 22:30+00', 60), (81, 'z', '2026-06-30 03:30+00', 60), (82, 'z', '2026-05-31 23:30+00', 1);
-- a long history (over 256 order days, several orders on some), and positive/negative on one day
INSERT INTO edge.orders
SELECT 1000 + g, 'g', timestamptz '2025-01-01 10:00+00' + (g / 2) * interval '1 day' + (g % 2) * interval '5 hours',
       CASE WHEN g % 17 = 0 THEN -1 ELSE 2.5 END
  FROM generate_series(0, 799) g;
-- many ordinary customers with ties in every dimension
INSERT INTO edge.orders
SELECT 10000 + g, 'r' || (g % 400), timestamptz '2025-06-01 00:00+00' + (random() * 400)::int * interval '1 day'
         + (random() * 86399)::int * interval '1 second',
       CASE WHEN random() < 0.05 THEN -5 ELSE round((random() * 100)::numeric, (g % 3)) END
  FROM generate_series(0, 1999) g;
UPDATE edge.orders SET currency = 'EUR';

CREATE TABLE edge.local_orders (id bigint, cust bigint, at timestamp, d date, amt integer, small smallint);
INSERT INTO edge.local_orders VALUES
  (1, 1, '2026-06-30 23:30', '2026-06-30', 10, 1), (2, 1, '2026-06-01 08:00', '2026-06-01', 5, 2),
  (3, 2, '2026-07-01 01:00', '2026-07-01', 7, 3), (4, 3, '2025-10-26 02:30', '2025-10-26', 9, 4),
  (5, 3, '2026-03-29 02:30', '2026-03-29', -9, -4), (6, 3, '2026-03-29 03:30', '2026-03-29', 19, 5),
  (7, 4, '2026-01-01 00:00', '2026-01-01', 0, 0), (8, 4, NULL, NULL, 4, 4), (9, 5, '2026-05-05 05:05', '2026-05-05', NULL, NULL),
  (10, 5, '2026-05-06 05:05', '2026-05-06', 3, 3);
INSERT INTO edge.local_orders
SELECT 100 + g, 10 + g % 150, timestamp '2025-05-01 00:00' + (random() * 420)::int * interval '1 day'
         + (random() * 86399)::int * interval '1 second', NULL, (random() * 500)::int - 20, (random() * 50)::int
  FROM generate_series(0, 999) g;
UPDATE edge.local_orders SET d = at::date WHERE id >= 100;

-- identity records of the edge orders: most customers via e-mail, 'k' never
CREATE TABLE edge.emails (customer text PRIMARY KEY, email text);
INSERT INTO edge.emails SELECT DISTINCT customer, lower(customer) || '@edge.example' FROM edge.orders WHERE customer <> 'k';
CREATE VIEW edge.observations AS
SELECT 'edge_order' AS source, o.order_id::text AS source_key, 'email' AS id_type,
       CASE WHEN o.order_id % 3 = 0 THEN upper(e.email) ELSE e.email END AS id_value, '2025-01-01'::timestamptz AS observed_at
  FROM edge.orders o JOIN edge.emails e USING (customer)
UNION ALL
SELECT 'edge_account', e.customer, 'email', e.email, '2024-01-01' FROM edge.emails e
UNION ALL  -- two customers are one person
SELECT 'edge_account', 'a', 'email', 'r1@edge.example', '2024-01-01';
CREATE VIEW shop.all_observations AS
SELECT * FROM shop.identity_observations UNION ALL SELECT * FROM edge.observations;

INSERT INTO cdp.lifecycle_policies (policy, one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor,
                                    loyal_min_order_days, min_gaps_for_own_cadence)
VALUES ('eq_policy', 30, 1.2, 2.5, 4, 3, 2);
CALL cdp.merge_identities('shop.all_observations', full_rebuild => true);
SQL

# label | configure_orders arguments | as_of values
cases=(
  "demo_order|'shop.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', person_source => 'order', shop_time_zone => 'Europe/Berlin'|2026-04-01 00:00+02;2026-07-01 00:00+02"
  "demo_identifier|'shop.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', customer_id_type => 'customer_id', shop_time_zone => 'Europe/Berlin'|2026-07-01 00:00+02;2025-10-26 02:30+01"
  "demo_customer_utc|'shop.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', shop_time_zone => 'UTC'|2026-07-01 00:00+00;2025-12-31 12:00+00"
  "demo_customer_ny_bins3|'shop.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', shop_time_zone => 'America/New_York', bins => 3|2026-07-01 00:00-04"
  "bench_utc|'eqbench.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', shop_time_zone => 'UTC'|2026-07-01 00:00+00;2025-07-01 00:00+00"
  "bench_berlin|'eqbench.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', shop_time_zone => 'Europe/Berlin'|2026-03-29 03:30+02;2025-10-26 02:30+01;2025-10-26 02:30+02"
  "bench_tokyo_tiers|'eqbench.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', shop_time_zone => 'Asia/Tokyo', segment_map => 'score_tiers', lifecycle_policy => 'eq_policy'|2026-06-15 00:00+09"
  "edge_utc|'edge.orders', 'order_id', 'customer', 'ordered_at', 'amount', shop_time_zone => 'UTC', currency_column => 'currency'|2026-07-01 00:00+00;2025-10-26 01:30+00;2026-03-29 01:00+00"
  "edge_berlin|'edge.orders', 'order_id', 'customer', 'ordered_at', 'amount', shop_time_zone => 'Europe/Berlin'|2026-07-01 00:00+02;2025-10-26 02:30+01;2025-10-26 02:30+02;2026-03-29 03:00+02"
  "edge_kolkata_policy|'edge.orders', 'order_id', 'customer', 'ordered_at', 'amount', shop_time_zone => 'Asia/Kolkata', lifecycle_policy => 'eq_policy', bins => 4|2026-07-01 00:00+00"
  "edge_order_map|'edge.orders', 'order_id', 'customer', 'ordered_at', 'amount', person_source => 'edge_order', shop_time_zone => 'Europe/Berlin'|2026-07-01 00:00+02;2026-01-01 00:00+01"
  "edge_identifier|'edge.orders', 'order_id', 'customer', 'ordered_at', 'amount', customer_id_type => 'email', shop_time_zone => 'UTC'|2026-07-01 00:00+00"
  "local_ts_berlin|'edge.local_orders', 'id', 'cust', 'at', 'amt', shop_time_zone => 'Europe/Berlin'|2026-07-01 00:30+02;2025-10-26 02:30+01;2026-03-29 03:30+02"
  "local_ts_utc_small|'edge.local_orders', 'id', 'cust', 'at', 'small', shop_time_zone => 'UTC'|2026-07-01 00:00+00"
  "local_date_ny|'edge.local_orders', 'id', 'cust', 'd', 'amt', shop_time_zone => 'America/New_York'|2026-07-01 12:00-04;2026-03-08 01:00-05"
  "local_date_utc|'edge.local_orders', 'id', 'cust', 'd', 'amt', shop_time_zone => 'UTC'|2026-07-01 00:00+00"
)

log "refreshes ($mode)"
sql -d "$EQ_KEEP_DB" -c "DROP TABLE IF EXISTS $table" \
  -c "CREATE TABLE $table (label text, kind text, row text)"
for c in "${cases[@]}"; do
  IFS='|' read -r label args as_ofs <<<"$c"
  script="SET client_min_messages = warning; SET TimeZone = 'UTC';
          SELECT cdp.configure_orders($args);"
  IFS=';' read -ra list <<<"$as_ofs"
  for as_of in "${list[@]}"; do script+=" CALL cdp.refresh_profiles('$as_of');"; done
  sql -d "$EQ_DB" -c "$script" >/dev/null
  sql -d "$EQ_DB" -c "SET TimeZone = 'UTC'; SET extra_float_digits = 3;
    COPY (SELECT '$label', 'snapshot', h::text FROM cdp.profile_history h
          UNION ALL SELECT '$label', 'refresh', (r.as_of, r.persons, r.unattributed, r.orders, r.currency,
                                                 r.person_match, r.orders_relation)::text FROM cdp.profile_refreshes r
          UNION ALL SELECT '$label', 'totals', g::text FROM cdp.profile_group_totals g) TO STDOUT" \
    | sql -d "$EQ_KEEP_DB" -c "COPY $table FROM STDIN"
  sql -d "$EQ_DB" -c "DELETE FROM cdp.profile_refreshes; DELETE FROM cdp.profile_snapshots;"
  printf '%-24s %s\n' "$label" "$(psql -qAtX -d "$EQ_KEEP_DB" -c "SELECT string_agg(kind || ' ' || n, ', ') FROM (SELECT kind, count(*) n FROM $table WHERE label = '$label' GROUP BY kind ORDER BY kind) x")"
done

if [ "$mode" = compare ]; then
  log "comparison with the baseline (EXCEPT ALL both ways)"
  psql -X -d "$EQ_KEEP_DB" -v ON_ERROR_STOP=1 <<'SQL'
SELECT label, kind,
       (SELECT count(*) FROM baseline b WHERE b.label = x.label AND b.kind = x.kind) AS baseline_rows,
       (SELECT count(*) FROM current c WHERE c.label = x.label AND c.kind = x.kind) AS current_rows
  FROM (SELECT DISTINCT label, kind FROM baseline UNION SELECT DISTINCT label, kind FROM current) x ORDER BY 1, 2;
SELECT 'only in baseline' AS side, * FROM (TABLE baseline EXCEPT ALL TABLE current) d
UNION ALL
SELECT 'only in current', * FROM (TABLE current EXCEPT ALL TABLE baseline) d
ORDER BY 2, 3, 4, 1 LIMIT 40;
SELECT CASE WHEN NOT EXISTS (TABLE baseline EXCEPT ALL TABLE current) AND NOT EXISTS (TABLE current EXCEPT ALL TABLE baseline)
            THEN 'IDENTICAL' ELSE 'DIFFERENT' END AS verdict,
       (SELECT count(*) FROM baseline) AS baseline_rows, (SELECT count(*) FROM current) AS current_rows;
SQL
fi
