-- Parallel plans: partial aggregation in workers, states serialized, deserialized and combined in the
-- leader. The forced parallel result must equal the serial one, whatever the input order.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

-- 3,000 customers with 0..12 orders each at their own cadence, refunds, same-day repeats and NULLs.
SELECT setseed(0.5);
CREATE TABLE lc_orders AS
SELECT c AS customer_id,
       CASE WHEN random() < 0.02 THEN NULL
            ELSE timestamptz '2025-01-01 08:00+00' + (k * cadence + random() * 3) * interval '1 day' END AS ordered_at,
       CASE WHEN random() < 0.05 THEN -5.00 ELSE round((10 + random() * 90)::numeric, 2) END AS amount
  FROM (SELECT c, 3 + floor(random() * 120) AS cadence, floor(random() * 13)::int AS n FROM generate_series(1, 3000) c) s,
       generate_series(0, 12) k
 WHERE k < n;
INSERT INTO lc_orders SELECT customer_id, ordered_at + interval '2 hours', 7 FROM lc_orders WHERE customer_id % 7 = 0;
INSERT INTO lc_orders SELECT c, NULL, NULL FROM generate_series(3001, 3050) c;  -- prospects
ANALYZE lc_orders;

SET max_parallel_workers_per_gather = 0;  -- the serial reference
CREATE TEMP TABLE serial_result AS
SELECT customer_id, cdp.lifecycle(ordered_at, amount, '2026-07-01 12:00+00') AS l,
       cdp.lifecycle_timeline(ordered_at, amount, '2025-01-31', '2026-06-30', '1 month') AS t
  FROM lc_orders GROUP BY customer_id;
CREATE TEMP TABLE serial_whole AS
SELECT cdp.lifecycle(ordered_at, amount, '2026-07-01 12:00+00') AS l FROM lc_orders;

SET force_parallel_mode = regress;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;

-- The whole table as one group: Partial Aggregate in each worker, Finalize Aggregate in the leader.
EXPLAIN (COSTS OFF)
SELECT cdp.lifecycle(ordered_at, amount, '2026-07-01 12:00+00') FROM lc_orders;
SELECT (SELECT cdp.lifecycle(ordered_at, amount, '2026-07-01 12:00+00') FROM lc_orders) = l AS whole_table_equal
  FROM serial_whole;

-- Per customer: Partial GroupAggregate in the workers and the leader, Finalize GroupAggregate (with few
-- rows per customer the planner would rather not aggregate partially, hence enable_hashagg = off).
RESET parallel_leader_participation;
SET enable_hashagg = off;
EXPLAIN (COSTS OFF)
SELECT customer_id, cdp.lifecycle(ordered_at, amount, '2026-07-01 12:00+00') AS l,
       cdp.lifecycle_timeline(ordered_at, amount, '2025-01-31', '2026-06-30', '1 month') AS t
  FROM lc_orders GROUP BY customer_id;
CREATE TEMP TABLE parallel_result AS
SELECT customer_id, cdp.lifecycle(ordered_at, amount, '2026-07-01 12:00+00') AS l,
       cdp.lifecycle_timeline(ordered_at, amount, '2025-01-31', '2026-06-30', '1 month') AS t
  FROM lc_orders GROUP BY customer_id;

RESET force_parallel_mode;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET enable_hashagg;

SELECT count(*) AS customers,
       count(*) FILTER (WHERE s.l = p.l) AS same_state,
       count(*) FILTER (WHERE s.t = p.t) AS same_timeline
  FROM serial_result s FULL JOIN parallel_result p USING (customer_id);
SELECT (l).stage, count(*) AS customers, sum((l).orders) AS orders, sum((l).order_days) AS order_days
  FROM serial_result GROUP BY 1 ORDER BY 1;
SELECT (l).* FROM serial_whole;

-- Input order never matters: the same aggregate over the rows sorted three ways.
SELECT count(DISTINCT l) AS distinct_results
  FROM (SELECT cdp.lifecycle(ordered_at, amount, '2026-07-01 12:00+00') AS l FROM (SELECT * FROM lc_orders ORDER BY ordered_at) a
        UNION ALL
        SELECT cdp.lifecycle(ordered_at, amount, '2026-07-01 12:00+00') FROM (SELECT * FROM lc_orders ORDER BY ordered_at DESC) b
        UNION ALL
        SELECT cdp.lifecycle(ordered_at, amount, '2026-07-01 12:00+00') FROM (SELECT * FROM lc_orders ORDER BY amount, customer_id) c) s;
DROP TABLE lc_orders;
