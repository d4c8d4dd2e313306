-- Profiles: the C++ scoring and bulk writer of cdp.refresh_profiles (src/pg/profiles.cpp) against the
-- plain-SQL definition over a random shop with ties, refunds and amounts of mixed scales; the
-- 20-point scores (segments NULL off the 5-point scale); the plain-INSERT path taken when the table has a trigger; totals.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET TimeZone = 'UTC';
\set VERBOSITY terse

CREATE SCHEMA wp;
SELECT setseed(0.45);
-- Unconstrained numeric: amounts carry 0, 1, 2 or 3 decimals, so persons' monetary values have mixed scales.
CREATE TABLE wp.orders (order_id bigint PRIMARY KEY, customer_id bigint, ordered_at timestamptz, amount numeric);
INSERT INTO wp.orders
SELECT i, 1 + (random() * 1500)::int,
       '2025-01-01'::timestamptz + (random() * 540)::int * interval '1 day' + (random() * 86399)::int * interval '1 second',
       CASE WHEN random() < 0.04 THEN -1 ELSE 1 END * round((random() * 200)::numeric, (i % 4)::int)
  FROM generate_series(1, 6000) i;
SELECT count(DISTINCT pg_catalog.scale(amount)) AS amount_scales FROM wp.orders;

-- The snapshot as plain SQL defines it (docs/profiles.md): aggregates per customer, three window scores,
-- the segment of each cell.
CREATE FUNCTION wp.expected(as_of timestamptz, bins integer) RETURNS TABLE (
  person_key text, orders bigint, monetary numeric, average_order_value numeric, recency_days integer,
  r integer, f integer, m integer, rfm_segment text, lifecycle_stage text, cadence_days double precision,
  expected_next_order_at timestamptz, overdue_ratio double precision, stage_since date,
  first_order_at timestamptz, last_order_at timestamptz)
LANGUAGE sql AS $$
  WITH people AS (
    SELECT 'customer:' || customer_id AS person_key, cdp.rfm_agg(ordered_at, amount) AS rs,
           cdp.lifecycle(ordered_at, amount, as_of) AS ls
      FROM wp.orders WHERE ordered_at <= as_of GROUP BY customer_id),
  flat AS (
    SELECT p.person_key, (p.rs).orders, (p.rs).monetary, (p.rs).average_order_value,
           CASE WHEN (p.rs).orders > 0 THEN (as_of::date - ((p.rs).last_order_at)::date) END AS recency_days,
           (p.ls).stage, (p.ls).typical_gap_days, (p.ls).expected_next_order_at, (p.ls).overdue_ratio,
           (p.ls).stage_since, (p.rs).first_order_at, (p.rs).last_order_at
      FROM people p),
  scored AS (
    SELECT x.*, cdp.rfm_score(-x.recency_days::bigint, bins) OVER () AS r,
           cdp.rfm_score(CASE WHEN x.recency_days IS NOT NULL THEN x.orders END, bins) OVER () AS f,
           cdp.rfm_score(CASE WHEN x.recency_days IS NOT NULL THEN x.monetary END, bins) OVER () AS m
      FROM flat x)
  SELECT s.person_key, s.orders, s.monetary, s.average_order_value, s.recency_days, s.r, s.f, s.m,
         CASE WHEN s.r IS NOT NULL AND bins = 5 THEN cdp.rfm_segment(s.r, s.f, s.m) END,
         s.stage, s.typical_gap_days, s.expected_next_order_at, s.overdue_ratio, s.stage_since,
         s.first_order_at, s.last_order_at
    FROM scored s
$$;
CREATE FUNCTION wp.actual(snapshot timestamptz) RETURNS TABLE (
  person_key text, orders bigint, monetary numeric, average_order_value numeric, recency_days integer,
  r integer, f integer, m integer, rfm_segment text, lifecycle_stage text, cadence_days double precision,
  expected_next_order_at timestamptz, overdue_ratio double precision, stage_since date,
  first_order_at timestamptz, last_order_at timestamptz)
LANGUAGE sql AS $$
  SELECT h.person_key, h.orders, h.monetary, h.average_order_value, h.recency_days, h.r, h.f, h.m,
         h.rfm_segment, h.lifecycle_stage, h.cadence_days, h.expected_next_order_at, h.overdue_ratio,
         h.stage_since, h.first_order_at, h.last_order_at
    FROM cdp.profile_history h WHERE h.as_of = snapshot
$$;
-- Rows that differ (compared as text, so that 10.5 and 10.50 differ too), and the totals kept for the
-- summary views against the same totals computed from the written rows.
CREATE FUNCTION wp.compare_snapshot(as_of timestamptz, bins integer)
RETURNS TABLE (persons bigint, differing_rows bigint, scored bigint, with_segment bigint, totals_differing bigint)
LANGUAGE sql AS $$
  SELECT (SELECT count(*) FROM wp.actual(as_of)),
         (SELECT count(*) FROM ((SELECT e::text FROM wp.expected(as_of, bins) e EXCEPT ALL
                                 SELECT a::text FROM wp.actual(as_of) a)
                                UNION ALL
                                (SELECT a::text FROM wp.actual(as_of) a EXCEPT ALL
                                 SELECT e::text FROM wp.expected(as_of, bins) e)) d),
         (SELECT count(r) FROM wp.actual(as_of)),
         (SELECT count(rfm_segment) FROM wp.actual(as_of)),
         (SELECT count(*) FROM (
            (SELECT g.dimension, g.group_name, g.customers, g.revenue::text, g.orders, g.recency_days_sum, g.recency_days_n
               FROM cdp.profile_group_totals g WHERE g.as_of = $1
             EXCEPT ALL
             SELECT d.dimension, d.group_name, count(*), sum(a.monetary)::text, sum(a.orders), coalesce(sum(a.recency_days), 0),
                    count(a.recency_days)
               FROM wp.actual(as_of) a
               CROSS JOIN LATERAL (VALUES ('rfm_segment', coalesce(a.rfm_segment, '(unscored)')),
                                          ('lifecycle_stage', a.lifecycle_stage)) d(dimension, group_name)
              GROUP BY 1, 2)) t)
$$;

-- 1. The bulk path, bins 5 (segments from the default map).
SELECT cdp.configure_orders('wp.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', shop_time_zone => 'UTC');
CALL cdp.refresh_profiles('2026-03-01 00:00+00');
SELECT * FROM wp.compare_snapshot('2026-03-01 00:00+00', 5);
SELECT persons, unattributed, orders = (SELECT sum(orders) FROM wp.actual('2026-03-01 00:00+00')) AS orders_match
  FROM cdp.profile_snapshot_list WHERE as_of = '2026-03-01 00:00+00';

-- 2. bins 20: scores on the 1..20 scale; segment maps are on the 1..5 scale, so segments stay NULL
--    (as in cdp.rfm); before all orders there is nothing to score.
SELECT cdp.configure_orders('wp.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', shop_time_zone => 'UTC',
                            bins => 20);
CALL cdp.refresh_profiles('2026-03-01 00:00+00');
SELECT * FROM wp.compare_snapshot('2026-03-01 00:00+00', 20);
CALL cdp.refresh_profiles('2024-12-31 00:00+00');                   -- before all orders: nothing to score
SELECT * FROM wp.compare_snapshot('2024-12-31 00:00+00', 20);

-- 3. A trigger on the snapshot table: the bulk path would skip it, so refresh inserts row by row.
SELECT cdp.configure_orders('wp.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', shop_time_zone => 'UTC');
CREATE TABLE wp.trigger_calls (n bigint);
INSERT INTO wp.trigger_calls VALUES (0);
CREATE FUNCTION wp.count_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN UPDATE wp.trigger_calls SET n = n + 1; RETURN NEW; END $$;
CREATE TRIGGER count_rows BEFORE INSERT ON cdp.profile_snapshots FOR EACH ROW EXECUTE FUNCTION wp.count_row();
CALL cdp.refresh_profiles('2026-04-01 00:00+00');
SELECT * FROM wp.compare_snapshot('2026-04-01 00:00+00', 5);
SELECT n = (SELECT persons FROM cdp.profile_snapshot_list WHERE as_of = '2026-04-01 00:00+00') AS trigger_saw_every_row
  FROM wp.trigger_calls;
DROP TRIGGER count_rows ON cdp.profile_snapshots;

-- 4. Replacing a snapshot leaves one row per person; a failed refresh leaves the old one untouched.
CALL cdp.refresh_profiles('2026-03-01 00:00+00');
SELECT count(*) AS rows, count(DISTINCT person_key) AS persons FROM cdp.profile_history WHERE as_of = '2026-03-01 00:00+00';
UPDATE cdp.profile_config SET segment_map = 'no_such_map';   -- the refresh fails (42704)
CALL cdp.refresh_profiles('2026-03-01 00:00+00');
SELECT count(*) AS rows, count(r) FILTER (WHERE r > 5) AS scores_above_5 FROM cdp.profile_history
 WHERE as_of = '2026-03-01 00:00+00';

DROP SCHEMA wp CASCADE;
DELETE FROM cdp.profile_refreshes;
DELETE FROM cdp.profile_snapshots;
DELETE FROM cdp.profile_config;
