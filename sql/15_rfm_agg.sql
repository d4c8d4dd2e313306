-- cdp.rfm_agg: per-customer order statistics with exact money.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET TimeZone = 'UTC';

CREATE TABLE rfm_agg_orders (customer text, ordered_at timestamptz, amount numeric);
INSERT INTO rfm_agg_orders VALUES
  -- alice: three orders, a partial refund (negative row) after her last order
  ('alice', '2026-01-05 10:00', 40.00), ('alice', '2026-03-01 12:30', 25.50), ('alice', '2026-02-10', 10.25),
  ('alice', '2026-03-10', -25.50),
  -- bob: one order, a zero-amount row (not an order) later, mixed scales
  ('bob', '2026-04-01', 19.999), ('bob', '2026-05-01', 0), ('bob', '2026-05-02', 0.001),
  -- carol: only a refund -> rows but no order
  ('carol', '2026-02-02', -12.00),
  -- dave: rows with NULL ordered_at or NULL amount only -> ignored entirely
  ('dave', NULL, 5), ('dave', '2026-01-01', NULL),
  -- erin: huge amounts stay exact (more digits than double precision holds)
  ('erin', '2026-06-01', 12345678901234567890.12), ('erin', '2026-06-02', 0.01),
  ('erin', '2026-06-03', -12345678901234567890.12);

SELECT customer, (cdp.rfm_agg(ordered_at, amount)).*
  FROM rfm_agg_orders GROUP BY customer ORDER BY customer;

-- The same numbers by the documented definitions in plain SQL: no customer differs.
SELECT count(*) AS customers_differing_from_sql
  FROM (SELECT customer, cdp.rfm_agg(ordered_at, amount) AS s,
               min(ordered_at) FILTER (WHERE amount > 0) AS first_order_at,
               max(ordered_at) FILTER (WHERE amount > 0) AS last_order_at,
               count(*) FILTER (WHERE amount > 0 AND ordered_at IS NOT NULL) AS orders,
               sum(amount) FILTER (WHERE ordered_at IS NOT NULL) AS monetary,
               sum(amount) FILTER (WHERE amount > 0 AND ordered_at IS NOT NULL)
                 / nullif(count(*) FILTER (WHERE amount > 0 AND ordered_at IS NOT NULL), 0) AS aov
          FROM rfm_agg_orders GROUP BY customer) x
 WHERE s IS NOT NULL
   AND ((s).first_order_at, (s).last_order_at, (s).orders, (s).monetary, (s).average_order_value)
       IS DISTINCT FROM (first_order_at, last_order_at, orders, monetary, aov);

-- No rows at all, and only ignored rows: NULL (like sum()).
SELECT cdp.rfm_agg(ordered_at, amount) IS NULL AS empty_is_null FROM rfm_agg_orders WHERE false;
SELECT cdp.rfm_agg(ordered_at, amount) IS NULL AS ignored_only_is_null FROM rfm_agg_orders WHERE customer = 'dave';

-- Input order does not matter.
SELECT (SELECT cdp.rfm_agg(ordered_at, amount ORDER BY ordered_at) FROM rfm_agg_orders)::text
     = (SELECT cdp.rfm_agg(ordered_at, amount ORDER BY ordered_at DESC, amount) FROM rfm_agg_orders)::text
       AS order_independent;

-- Whole-table statistics, and the type's columns.
SELECT (cdp.rfm_agg(ordered_at, amount)).* FROM rfm_agg_orders;
SELECT attname, format_type(atttypid, atttypmod)
  FROM pg_attribute WHERE attrelid = 'cdp.rfm_stats'::regclass AND attnum > 0 ORDER BY attnum;

-- The support functions take "internal" and so cannot be called from SQL at all; the aggregate
-- is parallel safe with combine/serialize/deserialize (see 18_rfm_parallel for the parallel plan;
-- corrupt serialized bytes are covered by the unit tests of src/core/rfm_stats.cpp).
SELECT aggkind, aggcombinefn, aggserialfn, aggdeserialfn, proparallel
  FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
 WHERE aggfnoid = 'cdp.rfm_agg(timestamptz, numeric)'::regprocedure;

DROP TABLE rfm_agg_orders;
