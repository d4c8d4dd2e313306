-- Profiles: configure_orders + refresh_profiles over a small shop, every way an order finds its
-- person, checked against plain SQL and the underlying aggregates.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET TimeZone = 'UTC';

CREATE SCHEMA prof;
CREATE TABLE prof.orders (
  order_id    bigint PRIMARY KEY,
  customer_id text NOT NULL,
  ordered_at  timestamptz NOT NULL,
  amount      numeric(12,2) NOT NULL
);
-- c1: weekly buyer; c2: guest record of c1 (same e-mail); c3: two orders a year apart;
-- c4: refunds only; c5: one order just after midnight in Berlin (still 30 June in UTC);
-- c6: orders only after 2026-07-01; c7: ordered by phone, no identifiers at all.
INSERT INTO prof.orders VALUES
  (1, 'c1', '2026-05-06 10:00+00', 20), (2, 'c1', '2026-05-13 10:00+00', 25), (3, 'c1', '2026-05-20 10:00+00', 30),
  (4, 'c1', '2026-05-27 10:00+00', 20), (5, 'c1', '2026-06-03 10:00+00', 22), (6, 'c1', '2026-06-03 18:00+00', 5),
  (7, 'c2', '2026-06-10 09:00+00', 40), (8, 'c2', '2026-06-12 09:00+00', -40),
  (9, 'c3', '2025-03-01 12:00+00', 300), (10, 'c3', '2026-03-01 12:00+00', 250),
  (11, 'c4', '2026-02-01 12:00+00', -15),
  (12, 'c5', '2026-06-30 22:30+00', 60),
  (13, 'c6', '2026-07-02 08:00+00', 70),
  (14, 'c7', '2026-04-15 16:00+00', 35);
CREATE TABLE prof.accounts (customer_id text PRIMARY KEY, email text);
INSERT INTO prof.accounts VALUES ('c1', 'ines.roth@mail.de'), ('c3', 'tom.berg@web.de'), ('c4', 'ola@posteo.de'),
                                 ('c5', 'kim@gmx.net'), ('c6', 'eva@gmx.net');
CREATE TABLE prof.guest_checkouts (order_id bigint PRIMARY KEY, email text);
INSERT INTO prof.guest_checkouts VALUES (7, ' Ines.Roth@MAIL.de'), (8, 'INES.ROTH@mail.de');
CREATE VIEW prof.observations AS
SELECT 'order' AS source, o.order_id::text AS source_key, 'customer_id' AS id_type, o.customer_id AS id_value,
       o.ordered_at AS observed_at
  FROM prof.orders o WHERE o.customer_id IN (SELECT customer_id FROM prof.accounts)
UNION ALL
SELECT 'order', g.order_id::text, 'email', g.email, o.ordered_at
  FROM prof.guest_checkouts g JOIN prof.orders o USING (order_id)
UNION ALL
SELECT 'account', a.customer_id, v.id_type, v.id_value, '2025-01-01'
  FROM prof.accounts a CROSS JOIN LATERAL (VALUES ('customer_id', a.customer_id), ('email', a.email)) v(id_type, id_value);

-- 1. No identity merge: the customer column is the person.
SELECT cdp.configure_orders('prof.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', shop_time_zone => 'UTC');
CALL cdp.refresh_profiles('2026-07-01 12:00+00');
SELECT person_key, person_id, orders, monetary, average_order_value, recency_days, r, f, m, rfm_segment,
       lifecycle_stage, first_order_at, last_order_at, identifiers, sources
  FROM cdp.customer_profiles ORDER BY person_key;
-- Orders, money, first/last order agree with plain SQL; r, f, m with cdp.rfm_score over the same values;
-- the lifecycle fields with cdp.lifecycle grouped by customer.
WITH plain AS (
  SELECT 'customer:' || customer_id AS person_key,
         count(*) FILTER (WHERE amount > 0) AS orders, sum(amount) AS monetary,
         min(ordered_at) FILTER (WHERE amount > 0) AS first_order_at,
         max(ordered_at) FILTER (WHERE amount > 0) AS last_order_at,
         cdp.lifecycle(ordered_at, amount, '2026-07-01 12:00+00') AS ls
    FROM prof.orders WHERE ordered_at <= '2026-07-01 12:00+00' GROUP BY customer_id)
SELECT count(*) AS profiles,
       count(*) FILTER (WHERE p.orders = s.orders AND p.monetary = s.monetary
                          AND p.first_order_at IS NOT DISTINCT FROM s.first_order_at
                          AND p.last_order_at IS NOT DISTINCT FROM s.last_order_at) AS rfm_fields_equal,
       count(*) FILTER (WHERE (p.ls).stage = s.lifecycle_stage
                          AND (p.ls).typical_gap_days IS NOT DISTINCT FROM s.cadence_days
                          AND (p.ls).expected_next_order_at IS NOT DISTINCT FROM s.expected_next_order_at
                          AND (p.ls).overdue_ratio IS NOT DISTINCT FROM s.overdue_ratio
                          AND (p.ls).stage_since IS NOT DISTINCT FROM s.stage_since) AS lifecycle_fields_equal
  FROM plain p JOIN cdp.customer_profiles s USING (person_key);
SELECT count(*) FILTER (WHERE s.r IS NOT DISTINCT FROM x.r AND s.f IS NOT DISTINCT FROM x.f
                          AND s.m IS NOT DISTINCT FROM x.m) AS scores_equal, count(*) AS profiles
  FROM cdp.customer_profiles s
  JOIN (SELECT person_key,
               cdp.rfm_score(-recency_days::bigint, 5) OVER () AS r,
               cdp.rfm_score(CASE WHEN recency_days IS NOT NULL THEN orders END, 5) OVER () AS f,
               cdp.rfm_score(CASE WHEN recency_days IS NOT NULL THEN monetary END, 5) OVER () AS m
          FROM cdp.customer_profiles) x USING (person_key);
SELECT rfm_segment IS NOT DISTINCT FROM (CASE WHEN r IS NOT NULL THEN cdp.rfm_segment(r, f, m) END) AS segment_matches,
       count(*) FROM cdp.customer_profiles GROUP BY 1;

-- 2. Day boundaries follow the shop's zone: c5's order at 00:30 Berlin on 1 July is 0 days old at
--    14:00 Berlin, but 1 day old counted in UTC days (30 June 22:30 UTC). The session zone never matters.
SET TimeZone = 'America/New_York';
CALL cdp.refresh_profiles('2026-07-01 12:00+00');
SELECT person_key, recency_days FROM cdp.customer_profiles WHERE person_key = 'customer:c5';
SELECT cdp.configure_orders('prof.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', shop_time_zone => 'Europe/Berlin');
CALL cdp.refresh_profiles('2026-07-01 12:00+00');
SET TimeZone = 'UTC';
SELECT person_key, recency_days, last_order_at FROM cdp.customer_profiles WHERE person_key = 'customer:c5';

-- 3. Orders as identity records (person_source): the guest orders of c2 join c1's person; c7's
--    order, unknown to the merge, is counted under its own customer key.
SET client_min_messages = warning;
CALL cdp.merge_identities('prof.observations', full_rebuild => true);
RESET client_min_messages;
SELECT cdp.configure_orders('prof.orders', 'order_id', 'customer_id', 'ordered_at', 'amount',
                            person_source => 'order', shop_time_zone => 'UTC');
CALL cdp.refresh_profiles('2026-07-01 12:00+00');
SELECT person_key = 'person:' || person_id AS key_is_person, person_key LIKE 'customer:%' AS key_is_customer,
       (SELECT string_agg(DISTINCT o.customer_id, ',' ORDER BY o.customer_id)
          FROM prof.orders o JOIN cdp.identity_map im ON im.source = 'order' AND im.source_key = o.order_id::text
         WHERE im.person_id = p.person_id) AS customer_ids,
       orders, monetary, lifecycle_stage, identifiers, sources
  FROM cdp.customer_profiles p ORDER BY customer_ids NULLS LAST, person_key;
SELECT persons, unattributed, orders FROM cdp.profile_snapshot_list WHERE as_of = '2026-07-01 12:00+00';

-- 4. The customer column as an identifier (customer_id_type): c2 and c7 are not linked identifiers
--    of type customer_id, so they stay under their own keys.
SELECT cdp.configure_orders('prof.orders', 'order_id', 'customer_id', 'ordered_at', 'amount',
                            customer_id_type => 'customer_id', shop_time_zone => 'UTC');
CALL cdp.refresh_profiles('2026-07-01 12:00+00');
SELECT CASE WHEN person_id IS NULL THEN person_key ELSE 'person of ' ||
         (SELECT string_agg(id_value, ',' ORDER BY id_value) FROM cdp.person_identifiers i
           WHERE i.person_id = p.person_id AND i.id_type = 'customer_id') END AS who,
       orders, monetary
  FROM cdp.customer_profiles p ORDER BY who;

-- 5. Refreshing the same as_of replaces that snapshot: no duplicates, history of other dates kept.
CALL cdp.refresh_profiles('2026-06-01 00:00+00');
CALL cdp.refresh_profiles('2026-07-01 12:00+00');
CALL cdp.refresh_profiles('2026-07-01 12:00+00');
SELECT as_of, count(*) AS profiles, count(DISTINCT person_key) AS distinct_persons
  FROM cdp.profile_history GROUP BY as_of ORDER BY as_of;
SELECT as_of, persons FROM cdp.profile_snapshot_list ORDER BY as_of;

-- 6. An as_of before all orders: an empty snapshot, listed, and the latest is still the latest.
CALL cdp.refresh_profiles('2020-01-01 00:00+00');
SELECT as_of, persons, unattributed, orders FROM cdp.profile_snapshot_list ORDER BY as_of;
SELECT count(*) AS rows_2020 FROM cdp.profile_history WHERE as_of = '2020-01-01 00:00+00';
SELECT DISTINCT as_of FROM cdp.customer_profiles;

-- 7. All-or-nothing: a refresh that fails (unknown segment map) leaves the earlier snapshot intact.
SELECT cdp.configure_orders('prof.orders', 'order_id', 'customer_id', 'ordered_at', 'amount',
                            customer_id_type => 'customer_id', shop_time_zone => 'UTC', segment_map => 'no such map');
\set VERBOSITY sqlstate
CALL cdp.refresh_profiles('2026-07-01 12:00+00');
\set VERBOSITY default
SELECT count(*) AS profiles_kept, count(*) FILTER (WHERE rfm_segment IS NOT NULL) AS with_segment
  FROM cdp.profile_history WHERE as_of = '2026-07-01 12:00+00';

-- 8. A parallel plan gives the same snapshot as a serial one.
SELECT cdp.configure_orders('prof.orders', 'order_id', 'customer_id', 'ordered_at', 'amount',
                            person_source => 'order', shop_time_zone => 'Europe/Berlin');
CALL cdp.refresh_profiles('2026-07-01 12:00+00');
CREATE TEMP TABLE serial_snapshot AS SELECT * FROM cdp.profile_history WHERE as_of = '2026-07-01 12:00+00';
SET force_parallel_mode = regress; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2;
CALL cdp.refresh_profiles('2026-07-01 12:00+00');
RESET force_parallel_mode; RESET parallel_setup_cost; RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size; RESET max_parallel_workers_per_gather;
SELECT (SELECT count(*) FROM serial_snapshot) AS serial_rows,
       (SELECT count(*) FROM ((TABLE serial_snapshot EXCEPT ALL
                               SELECT * FROM cdp.profile_history WHERE as_of = '2026-07-01 12:00+00')
                              UNION ALL
                              (SELECT * FROM cdp.profile_history WHERE as_of = '2026-07-01 12:00+00'
                               EXCEPT ALL TABLE serial_snapshot)) d) AS differing_rows;

-- 9. timestamp (without zone) and date columns are the shop's local time: 23:30 in Berlin on 30 June
--    is 21:30 UTC; a date is the shop's midnight. Integer amounts are summed as numeric.
CREATE TABLE prof.local_orders (id int, cust int, at timestamp, d date, amt int);
INSERT INTO prof.local_orders VALUES (1, 1, '2026-06-30 23:30', '2026-06-30', 10), (2, 1, '2026-06-01 08:00', '2026-06-01', 5),
                                     (3, 2, '2026-07-01 01:00', '2026-07-01', 7);
SELECT cdp.configure_orders('prof.local_orders', 'id', 'cust', 'at', 'amt', shop_time_zone => 'Europe/Berlin');
CALL cdp.refresh_profiles('2026-07-01 00:30+02');
SELECT person_key, orders, monetary, recency_days, first_order_at, last_order_at, cadence_days, stage_since
  FROM cdp.profile_history WHERE as_of = '2026-07-01 00:30+02' ORDER BY person_key;
SELECT cdp.configure_orders('prof.local_orders', 'id', 'cust', 'd', 'amt', shop_time_zone => 'America/New_York');
CALL cdp.refresh_profiles('2026-07-01 12:00-04');
SELECT person_key, orders, monetary, recency_days, first_order_at, last_order_at, cadence_days, stage_since
  FROM cdp.profile_history WHERE as_of = '2026-07-01 12:00-04' ORDER BY person_key;

DELETE FROM cdp.profile_refreshes;
DELETE FROM cdp.profile_snapshots;
DELETE FROM cdp.profile_config;
DROP SCHEMA prof CASCADE;
