-- cdp.rfm_agg under a forced parallel plan (partial aggregates in workers, serialized, combined in
-- the leader) gives exactly the serial result, whatever the input order.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET TimeZone = 'UTC';

SELECT setseed(0.25);
CREATE TABLE parallel_orders AS
SELECT (random() * 300)::int AS customer_id,
       timestamptz '2025-01-01' + random() * interval '500 days' AS ordered_at,
       CASE WHEN random() < 0.05 THEN -round((random() * 50)::numeric, 2)
            WHEN random() < 0.02 THEN NULL
            ELSE round((random() * 300)::numeric, (random() * 3)::int) END AS amount
  FROM generate_series(1, 20000);
ANALYZE parallel_orders;

CREATE TABLE serial_result AS
SELECT customer_id, cdp.rfm_agg(ordered_at, amount) AS stats FROM parallel_orders GROUP BY customer_id;
CREATE TABLE serial_total AS SELECT cdp.rfm_agg(ordered_at, amount) AS stats FROM parallel_orders;

SET force_parallel_mode = regress;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;  -- every row goes through a worker's partial state

EXPLAIN (COSTS OFF) SELECT cdp.rfm_agg(ordered_at, amount) FROM parallel_orders;
SELECT (SELECT stats FROM serial_total)::text = cdp.rfm_agg(ordered_at, amount)::text AS total_equal
  FROM parallel_orders;

SET enable_hashagg = off;  -- a sorted grouped plan: Partial GroupAggregate in the workers
EXPLAIN (COSTS OFF)
SELECT customer_id, cdp.rfm_agg(ordered_at, amount) FROM parallel_orders GROUP BY customer_id;
SELECT count(*) AS customers,
       count(*) FILTER (WHERE p.stats::text IS DISTINCT FROM s.stats::text) AS customers_differing
  FROM (SELECT customer_id, cdp.rfm_agg(ordered_at, amount) AS stats FROM parallel_orders GROUP BY customer_id) p
  FULL JOIN serial_result s USING (customer_id);
RESET enable_hashagg;

RESET parallel_leader_participation;
RESET force_parallel_mode;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- Input order does not matter either (ordered aggregates feed the rows in opposite orders).
SELECT count(*) AS customers,
       count(*) FILTER (WHERE a::text IS DISTINCT FROM b::text) AS customers_differing
  FROM (SELECT customer_id,
               cdp.rfm_agg(ordered_at, amount ORDER BY ordered_at, amount) AS a,
               cdp.rfm_agg(ordered_at, amount ORDER BY ordered_at DESC, amount DESC) AS b
          FROM parallel_orders GROUP BY customer_id) x;

-- The parallel result is the documented one: checked against plain SQL for the whole table.
SELECT (stats).orders = count(*) FILTER (WHERE amount > 0) AS orders_ok,
       (stats).monetary = sum(amount) AS monetary_ok,
       (stats).last_order_at = max(ordered_at) FILTER (WHERE amount > 0) AS last_ok,
       (stats).average_order_value = sum(amount) FILTER (WHERE amount > 0) / count(*) FILTER (WHERE amount > 0) AS aov_ok
  FROM parallel_orders, serial_total GROUP BY stats;

DROP TABLE parallel_orders, serial_result, serial_total;
