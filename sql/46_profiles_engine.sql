-- Profiles: the C++ grouping of cdp.refresh_profiles (src/core/profile_engine.cpp) against the SQL
-- aggregates it replaced (cdp.rfm_agg and cdp.lifecycle grouped by customer, with the shop-local
-- shift), its memory limit (maintenance_work_mem, 54000), cancellation by statement_timeout, key
-- types, and rows that cannot make a profile (left out and counted).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET TimeZone = 'UTC';
-- try(statement): 'ok' or 'SQLSTATE: message (hint)'.
CREATE FUNCTION pg_temp.try(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE statement;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  DECLARE hint text;
  BEGIN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(nullif(' (' || hint || ')', ' ()'), '');
  END;
END $$;

CREATE SCHEMA eng;
SELECT setseed(0.31);
-- 3,000 customers over two years, refunds, NULL amounts beside real ones, orders in the Berlin DST
-- changes (fall back 2025-10-26 03:00 CEST -> 02:00 CET, spring forward 2026-03-29 02:00 -> 03:00).
CREATE TABLE eng.orders (order_id bigint, customer_id bigint, ordered_at timestamptz, amount numeric(12,2));
INSERT INTO eng.orders
SELECT i, 1 + (random() * 2999)::int,
       '2024-07-01'::timestamptz + (random() * 730)::int * interval '1 day' + (random() * 86399)::int * interval '1 second',
       CASE WHEN random() < 0.02 THEN NULL WHEN random() < 0.04 THEN -5 ELSE round((random() * 100)::numeric, 2) END
  FROM generate_series(1, 9000) i;
INSERT INTO eng.orders VALUES
  (9001, 1, '2025-10-26 00:30+00', 11), (9002, 1, '2025-10-26 01:10+00', 12), (9003, 2, '2026-03-29 00:59:59+00', 14),
  (9004, 2, '2026-03-29 01:00+00', 15), (9005, 3, '2026-06-30 22:30+00', 60), (9006, 3, '2026-07-01 00:00+00', 1),
  -- 02:45 CEST: before 02:30 CET in time, after it on the wall clock (counts for money, not for the lifecycle)
  (9007, 1, '2025-10-26 00:45+00', 13);

-- The snapshot of the SQL aggregates, as the refresh computed it before the C++ grouping.
CREATE FUNCTION eng.aggregates(as_of timestamptz, zone text) RETURNS TABLE (
  person_key text, orders bigint, monetary text, average_order_value text, recency_days integer,
  lifecycle_stage text, cadence_days double precision, expected_next_order_at timestamptz,
  overdue_ratio double precision, stage_since date, first_order_at timestamptz, last_order_at timestamptz)
LANGUAGE sql SET TimeZone = 'UTC' AS $$
  WITH g AS (
    SELECT o.customer_id,
           cdp.rfm_agg((o.ordered_at AT TIME ZONE zone) AT TIME ZONE 'UTC', o.amount) AS rs,
           cdp.lifecycle((o.ordered_at AT TIME ZONE zone) AT TIME ZONE 'UTC', o.amount,
                         (as_of AT TIME ZONE zone) AT TIME ZONE 'UTC') AS ls
      FROM eng.orders o WHERE o.ordered_at <= as_of GROUP BY o.customer_id)
  SELECT 'customer:' || g.customer_id, (g.rs).orders, (g.rs).monetary::text, (g.rs).average_order_value::text,
         CASE WHEN (g.rs).orders > 0 THEN (as_of AT TIME ZONE zone)::date - ((g.rs).last_order_at AT TIME ZONE 'UTC')::date END,
         (g.ls).stage, (g.ls).typical_gap_days, ((g.ls).expected_next_order_at AT TIME ZONE 'UTC') AT TIME ZONE zone,
         (g.ls).overdue_ratio, (g.ls).stage_since,
         ((g.rs).first_order_at AT TIME ZONE 'UTC') AT TIME ZONE zone, ((g.rs).last_order_at AT TIME ZONE 'UTC') AT TIME ZONE zone
    FROM g
$$;
-- A customer whose rows all lack an amount gets no profile (see 5. below) but a row of the aggregates:
-- each buys once first, so that both sides have the same customers.
INSERT INTO eng.orders SELECT 10000 + c, c, '2024-06-30 12:00+00', 1 FROM generate_series(1, 3000) c;

-- 1. The same rows as the aggregates, in three zones and at as_of values inside the DST changes.
SELECT cdp.configure_orders('eng.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', shop_time_zone => 'UTC');
CALL cdp.refresh_profiles('2026-07-01 00:00+00');
SELECT cdp.configure_orders('eng.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', shop_time_zone => 'Europe/Berlin');
CALL cdp.refresh_profiles('2025-10-26 02:30+01');
CALL cdp.refresh_profiles('2025-10-26 02:30+02');
CALL cdp.refresh_profiles('2026-03-29 03:30+02');
SELECT cdp.configure_orders('eng.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', shop_time_zone => 'America/New_York');
CALL cdp.refresh_profiles('2026-03-08 01:00-05');
WITH cases(as_of, zone) AS (VALUES ('2026-07-01 00:00+00'::timestamptz, 'UTC'), ('2025-10-26 02:30+01', 'Europe/Berlin'),
                                   ('2025-10-26 02:30+02', 'Europe/Berlin'), ('2026-03-29 03:30+02', 'Europe/Berlin'),
                                   ('2026-03-08 01:00-05', 'America/New_York')),
snapshot AS (
  SELECT c.as_of, h.person_key, h.orders, h.monetary::text, h.average_order_value::text, h.recency_days, h.lifecycle_stage,
         h.cadence_days, h.expected_next_order_at, h.overdue_ratio, h.stage_since, h.first_order_at, h.last_order_at
    FROM cases c JOIN cdp.profile_history h ON h.as_of = c.as_of),
aggregates AS (SELECT c.as_of, a.* FROM cases c, eng.aggregates(c.as_of, c.zone) a)
SELECT c.as_of, c.zone,
       (SELECT count(*) FROM snapshot s WHERE s.as_of = c.as_of) AS profiles,
       (SELECT count(*) FROM (SELECT * FROM snapshot s WHERE s.as_of = c.as_of EXCEPT ALL
                              SELECT * FROM aggregates a WHERE a.as_of = c.as_of) d) AS only_in_snapshot,
       (SELECT count(*) FROM (SELECT * FROM aggregates a WHERE a.as_of = c.as_of EXCEPT ALL
                              SELECT * FROM snapshot s WHERE s.as_of = c.as_of) d) AS only_in_aggregates,
       (SELECT l.ignored_rows FROM cdp.profile_snapshot_list l WHERE l.as_of = c.as_of) =
         (SELECT count(*) FROM eng.orders o WHERE o.ordered_at <= c.as_of AND o.amount IS NULL) AS ignored_are_null_amounts
  FROM cases c ORDER BY c.as_of;

-- 2. Memory: the grouping holds its per-person statistics within maintenance_work_mem; past it the
--    refresh stops with 54000 naming the setting, and writes nothing.
SET maintenance_work_mem = '1MB';
INSERT INTO eng.orders SELECT 20000 + i, 100000 + i, '2026-01-01 12:00+00', 3 FROM generate_series(1, 20000) i;
SELECT pg_temp.try($s$CALL cdp.refresh_profiles('2026-06-01 00:00+00')$s$);
SELECT count(*) AS snapshots_of_that_as_of FROM cdp.profile_snapshot_list WHERE as_of = '2026-06-01 00:00+00';
RESET maintenance_work_mem;
CALL cdp.refresh_profiles('2026-06-01 00:00+00');
SELECT persons FROM cdp.profile_snapshot_list WHERE as_of = '2026-06-01 00:00+00';

-- 3. Cancellation: statement_timeout stops a long refresh (57014), nothing is written, the session goes on.
CREATE TABLE eng.big AS
SELECT i AS order_id, i % 150000 AS customer_id, '2025-01-01 00:00+00'::timestamptz + (i % 500) * interval '1 day' AS ordered_at,
       9.99::numeric(12,2) AS amount
  FROM generate_series(1, 600000) i;
SELECT cdp.configure_orders('eng.big', 'order_id', 'customer_id', 'ordered_at', 'amount', shop_time_zone => 'UTC');
SET statement_timeout = '100ms';
\set VERBOSITY terse
CALL cdp.refresh_profiles('2026-05-01 00:00+00');
\set VERBOSITY default
RESET statement_timeout;
SELECT count(*) AS snapshots_of_that_as_of FROM cdp.profile_snapshot_list WHERE as_of = '2026-05-01 00:00+00';
SELECT 1 AS session_still_usable;

-- 4. Key types: text, char(n) (trailing blanks are not part of the key, as in ::text), uuid; the
--    customer key shows as text in person_key.
CREATE TABLE eng.keyed (id int, c_text text, c_char char(6), c_uuid uuid, at timestamptz, amount integer);
INSERT INTO eng.keyed VALUES
  (1, 'Anna', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2026-05-01 10:00+00', 10),
  (2, 'anna', 'ab  ', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11', '2026-05-02 10:00+00', 20),
  (3, 'Anna ', 'cd', 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2026-05-03 10:00+00', -5);
SELECT cdp.configure_orders('eng.keyed', 'id', 'c_text', 'at', 'amount', shop_time_zone => 'UTC');
CALL cdp.refresh_profiles('2026-07-01 00:00+00');
SELECT quote_literal(person_key) AS person_key, orders, monetary, lifecycle_stage FROM cdp.customer_profiles ORDER BY 1;
SELECT cdp.configure_orders('eng.keyed', 'id', 'c_char', 'at', 'amount', shop_time_zone => 'UTC');
CALL cdp.refresh_profiles('2026-07-01 00:00+00');
SELECT quote_literal(person_key) AS person_key, orders, monetary, lifecycle_stage FROM cdp.customer_profiles ORDER BY 1;
SELECT cdp.configure_orders('eng.keyed', 'id', 'c_uuid', 'at', 'amount', shop_time_zone => 'UTC');
CALL cdp.refresh_profiles('2026-07-01 00:00+00');
SELECT quote_literal(person_key) AS person_key, orders, monetary, lifecycle_stage FROM cdp.customer_profiles ORDER BY 1;

-- 5. Rows that cannot make a profile are left out and counted (NOTICE, profile_snapshot_list.ignored_rows):
--    rows without an amount (a customer whose every row lacks one gets no profile; one with other rows
--    keeps them) and order rows without a customer key (identity mode: without person and customer key,
--    in section 6).
INSERT INTO eng.keyed VALUES (4, 'Ben', 'ef', NULL, '2026-05-04 10:00+00', NULL),
                             (5, 'Anna', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2026-05-05 10:00+00', NULL);
SELECT cdp.configure_orders('eng.keyed', 'id', 'c_text', 'at', 'amount', shop_time_zone => 'UTC');
CALL cdp.refresh_profiles('2026-07-01 00:00+00');
SELECT quote_literal(person_key) AS person_key, orders, monetary FROM cdp.customer_profiles ORDER BY 1;
SELECT persons, orders, ignored_rows FROM cdp.profile_snapshot_list WHERE as_of = '2026-07-01 00:00+00';
UPDATE eng.keyed SET amount = 1 WHERE id = 4;
SELECT cdp.configure_orders('eng.keyed', 'id', 'c_uuid', 'at', 'amount', shop_time_zone => 'UTC');
CALL cdp.refresh_profiles('2026-07-01 00:00+00');
SELECT quote_literal(person_key) AS person_key, orders, monetary FROM cdp.customer_profiles ORDER BY 1;
SELECT persons, orders, ignored_rows FROM cdp.profile_snapshot_list WHERE as_of = '2026-07-01 00:00+00';
DELETE FROM eng.keyed WHERE id IN (4, 5);

-- 6. Identifiers and sources of merged persons are counted as the rows stream past (sources as a bit
--    mask over the first 64 source names); a person on more sources than that is counted in SQL.
CREATE TABLE eng.observations AS
SELECT 'src' || g AS source, '1' AS source_key, 'email' AS id_type, 'p@x.example' AS id_value,
       '2025-01-01 00:00+00'::timestamptz AS observed_at
  FROM generate_series(1, 70) g
UNION ALL SELECT 'src1', '3', 'email', 'q@x.example', '2025-01-01 00:00+00'
UNION ALL SELECT 'src2', '3', 'phone', '+49 30 1234567', '2025-01-01 00:00+00';
CREATE TABLE eng.source_orders (id int, cust text, at timestamptz, amount int);
INSERT INTO eng.source_orders VALUES (1, 'a', '2026-05-01 10:00+00', 10), (2, 'b', '2026-05-02 10:00+00', 20),
                                     (3, 'c', '2026-05-03 10:00+00', 30);
SET client_min_messages = warning;
CALL cdp.merge_identities('eng.observations', full_rebuild => true);
RESET client_min_messages;
SELECT cdp.configure_orders('eng.source_orders', 'id', 'cust', 'at', 'amount', person_source => 'src1', shop_time_zone => 'UTC');
CALL cdp.refresh_profiles('2026-07-01 00:00+00');
SELECT p.person_key LIKE 'person:%' AS merged, p.orders, p.identifiers, p.sources,
       (SELECT count(DISTINCT im.source) FROM cdp.identity_map im WHERE im.person_id = p.person_id) AS sources_in_sql
  FROM cdp.customer_profiles p ORDER BY p.sources DESC;
DELETE FROM eng.observations WHERE source IN (SELECT 'src' || g FROM generate_series(10, 70) g);
SET client_min_messages = warning;
CALL cdp.merge_identities('eng.observations', full_rebuild => true);
RESET client_min_messages;
CALL cdp.refresh_profiles('2026-07-01 00:00+00');
SELECT p.person_key LIKE 'person:%' AS merged, p.orders, p.identifiers, p.sources,
       (SELECT count(DISTINCT im.source) FROM cdp.identity_map im WHERE im.person_id = p.person_id) AS sources_in_sql
  FROM cdp.customer_profiles p ORDER BY p.sources DESC;
-- An order with neither person (key 4 is not in the map) nor customer key is left out and counted; one
-- with a person and no customer key is the person's.
INSERT INTO eng.source_orders VALUES (4, NULL, '2026-05-04 10:00+00', 40), (1, NULL, '2026-05-05 10:00+00', 50);
CALL cdp.refresh_profiles('2026-07-01 00:00+00');
SELECT p.person_key LIKE 'person:%' AS merged, p.orders, p.monetary FROM cdp.customer_profiles p ORDER BY 2, 3;
SELECT persons, unattributed, orders, ignored_rows FROM cdp.profile_snapshot_list WHERE as_of = '2026-07-01 00:00+00';

DELETE FROM cdp.profile_refreshes;
DELETE FROM cdp.profile_snapshots;
DELETE FROM cdp.profile_config;
DROP SCHEMA eng CASCADE;
