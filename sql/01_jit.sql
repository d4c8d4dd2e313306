-- JIT: with LLVM JIT, inlining and optimisation forced on every query, queries calling pg_cdp's
-- functions, aggregates and window functions run normally. (LLVM 14's inliner aborted the whole
-- server when it reached the C++ bitcode PGXS used to install; the build installs none.)
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET TimeZone = 'UTC';
SET jit = on;
SET jit_above_cost = 0;
SET jit_inline_above_cost = 0;
SET jit_optimize_above_cost = 0;

-- The server JIT-compiles with inlining here; otherwise this test would prove nothing.
CREATE FUNCTION pg_temp.jit_options(query text) RETURNS json LANGUAGE plpgsql AS $$
DECLARE plan json;
BEGIN
  EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON) ' || query INTO plan;
  RETURN plan -> 0 -> 'JIT' -> 'Options';
END $$;
SELECT o ->> 'Inlining' AS inlining, o ->> 'Optimization' AS optimization
  FROM pg_temp.jit_options('SELECT count(cdp.person_id(''email'', g::text)) FROM generate_series(1, 10) g') AS o;

SELECT count(cdp.person_id('email', g::text)) AS known_persons FROM generate_series(1, 10) g;

CREATE TEMP TABLE jit_orders (customer text, ordered_at timestamptz, amount numeric);
INSERT INTO jit_orders
SELECT 'c' || (g % 7), timestamptz '2026-01-01' + g * interval '3 days', (g % 5) * 10.25 - 5
  FROM generate_series(1, 60) g;

SELECT customer, (s).orders, (s).monetary, stage, r, f, m,
       cdp.rfm_segment(r, f, m) AS segment
  FROM (SELECT customer, s, stage,
               cdp.rfm_score((s).last_order_at) OVER () AS r,
               cdp.rfm_score((s).orders) OVER ()        AS f,
               cdp.rfm_score((s).monetary) OVER ()      AS m
          FROM (SELECT customer, cdp.rfm_agg(ordered_at, amount) AS s,
                       cdp.lifecycle_stage(ordered_at, amount, '2026-07-01') AS stage
                  FROM jit_orders GROUP BY customer) per_customer) scored
 ORDER BY customer;

SELECT cdp.rfm_bucket(amount, (SELECT cdp.rfm_breaks(amount) FROM jit_orders)) AS bucket, count(*)
  FROM jit_orders GROUP BY 1 ORDER BY 1;

SELECT segment, frequency, monetary
  FROM cdp.rfm('jit_orders', 'customer', 'ordered_at', 'amount', as_of => '2026-07-01')
 ORDER BY customer_key;

DROP TABLE jit_orders;
