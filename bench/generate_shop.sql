-- Generates a synthetic shop's order table for benchmarks and the demo:
--   psql -v customers=1000000 -v repeat_lambda=1.5 -v schema=bench -f bench/generate_shop.sql
-- Creates :schema.orders(order_id, customer_id, ordered_at, amount numeric(12,2)) with:
--   * about half the customers buying once, the rest 2+ times at their own cadence (weekly .. yearly);
--   * first orders spread over two years (2024-07-01 .. 2026-06-30), later orders following the cadence
--     (squeezed to end before 2026-07-01), so some customers are overdue as of 2026-07-01;
--   * skewed order values; about 3% of orders refunded later (a negative row).
-- Rows are stored in time order, as in a real shop. Deterministic (setseed). repeat_lambda sets how many extra orders repeat buyers place
-- (mean extra orders ~ 1/(e^(1/lambda) - 1)): 1.5 gives ~2 orders per customer, 2.5 gives ~2.5.
\set ON_ERROR_STOP on
\if :{?customers} \else \set customers 1000000 \endif
\if :{?repeat_lambda} \else \set repeat_lambda 1.5 \endif
\if :{?schema} \else \set schema bench \endif

SELECT setseed(0.42);
CREATE SCHEMA IF NOT EXISTS :"schema";
DROP TABLE IF EXISTS :"schema".orders;
CREATE TABLE :"schema".orders (
  order_id    bigint PRIMARY KEY,
  customer_id bigint NOT NULL,
  ordered_at  timestamptz NOT NULL,
  amount      numeric(12,2) NOT NULL
);

CREATE TEMP TABLE generated_customers AS
SELECT id AS customer_id,
       CASE WHEN random() < 0.5 THEN 1 ELSE 2 + floor(-ln(1 - random()) * :repeat_lambda)::int END AS order_count,
       timestamptz '2024-07-01 00:00+00' + random() * interval '730 days' AS first_order_at,
       7 * exp(random() * ln(52)) AS cadence_days,            -- 7 .. 364 days, log-uniform
       8 + exp(random() * 5) AS basket                        -- typical order value, skewed
  FROM generate_series(1, :customers) AS id;

CREATE TEMP TABLE generated_orders AS
SELECT c.customer_id,
       c.first_order_at + k * c.fitted_cadence * (0.6 + 0.8 * random()) * interval '1 day'
         + random() * interval '12 hours' AS ordered_at,
       round((c.basket * (0.5 + random()))::numeric, 2) AS amount
  FROM (SELECT *,  -- long histories are squeezed so the last order stays before 2026-07-01
               least(cadence_days, greatest(1, extract(epoch FROM timestamptz '2026-06-20 00:00+00'
                     - first_order_at) / 86400 / (1.4 * order_count))) AS fitted_cadence
          FROM generated_customers) c,
       generate_series(0, c.order_count - 1) AS k;

-- Refunds: about 3% of orders get a later negative row for part or all of their value.
INSERT INTO generated_orders (customer_id, ordered_at, amount)
SELECT customer_id, ordered_at + (1 + random() * 20) * interval '1 day',
       -round(amount * (CASE WHEN random() < 0.5 THEN 1 ELSE 0.5 END), 2)
  FROM generated_orders
 WHERE random() < 0.03;

-- Stored in time order, as a shop's order table grows (not clustered by customer).
INSERT INTO :"schema".orders (order_id, customer_id, ordered_at, amount)
SELECT row_number() OVER (ORDER BY ordered_at, customer_id), customer_id, ordered_at, amount
  FROM generated_orders
 ORDER BY ordered_at, customer_id;

CREATE INDEX ON :"schema".orders (customer_id);
ANALYZE :"schema".orders;
DROP TABLE generated_customers, generated_orders;
SELECT count(DISTINCT customer_id) AS customers, count(*) AS order_rows,
       count(*) FILTER (WHERE amount < 0) AS refund_rows,
       min(ordered_at)::date AS first_day, max(ordered_at)::date AS last_day
  FROM :"schema".orders;
