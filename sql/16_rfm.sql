-- cdp.rfm: RFM scores and segments of every customer of an order table, in one call.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET TimeZone = 'UTC';

-- Ten customers whose last order, frequency and monetary all grow with their number c (c orders,
-- last one 10.5 - c days before as_of), so any balanced 5-bin rule gives scores ceil(c/2).
CREATE TABLE rfm_shop (order_id serial, customer_id integer, ordered_at timestamptz, amount numeric(10,2));
INSERT INTO rfm_shop (customer_id, ordered_at, amount)
SELECT c, timestamptz '2026-07-01' - (11 - c) * interval '1 day' + interval '12 hours' - k * interval '7 days',
       100.00                                     -- per order: monetary = 100 c
  FROM generate_series(1, 10) c, generate_series(0, c - 1) k;
INSERT INTO rfm_shop (customer_id, ordered_at, amount) VALUES
  (5, '2026-06-01', -30.00),          -- refund: monetary of customer 5 is 470.00, frequency stays 5
  (2, '2026-06-02', 0),               -- zero amount: not an order
  (3, '2026-07-02', 999.00),          -- after as_of: ignored
  (11, '2026-05-01', -20.00),         -- only a refund: not scored, not returned
  (12, '2026-08-01', 50.00),          -- only after as_of: not returned
  (NULL, '2026-06-01', 75.00),        -- no customer: ignored
  (7, '2026-06-15', NULL),            -- no amount: ignored
  (8, NULL, 60.00);                   -- no time: ignored (it is not "on or before as_of")

SELECT customer_key, recency_days, frequency, monetary, r, f, m
  FROM cdp.rfm('rfm_shop', 'customer_id', 'ordered_at', 'amount', '2026-07-01')
 ORDER BY customer_key::int;

-- as_of is inclusive: an order exactly at as_of counts, with recency 0.
SELECT customer_key, recency_days, frequency, monetary
  FROM cdp.rfm('rfm_shop', 'customer_id', 'ordered_at', 'amount', '2026-07-02') WHERE customer_key = '3';

-- Other bin counts: 10 bins give each customer its own score, 2 bins split them in halves.
SELECT customer_key, r, f, m
  FROM cdp.rfm('rfm_shop', 'customer_id', 'ordered_at', 'amount', '2026-07-01', bins => 10)
 ORDER BY customer_key::int;
SELECT r, count(*) AS customers, min(customer_key::int), max(customer_key::int)
  FROM cdp.rfm('rfm_shop', 'customer_id', 'ordered_at', 'amount', '2026-07-01', 2) GROUP BY r ORDER BY r;
SELECT DISTINCT r, f, m FROM cdp.rfm('rfm_shop', 'customer_id', 'ordered_at', 'amount', '2026-07-01', 1);

-- Segments come from cdp.rfm_segment_rules. A test map names each cell after its scores.
INSERT INTO cdp.rfm_segment_rules (segment_map, r, f, m, segment)
SELECT 'cell names', r, f, m, format('R%sF%sM%s', r, f, m)
  FROM generate_series(1, 5) r, generate_series(1, 5) f, generate_series(1, 5) m;
SELECT count(*) AS customers, count(*) FILTER (WHERE segment = format('R%sF%sM%s', r, f, m)) AS right_segment
  FROM cdp.rfm('rfm_shop', 'customer_id', 'ordered_at', 'amount', '2026-07-01', segment_map => 'cell names');
-- A cell the map does not cover gives NULL.
DELETE FROM cdp.rfm_segment_rules WHERE segment_map = 'cell names' AND r = 5;
SELECT customer_key, r, f, m, segment
  FROM cdp.rfm('rfm_shop', 'customer_id', 'ordered_at', 'amount', '2026-07-01', segment_map => 'cell names')
 ORDER BY customer_key::int;
-- Maps are defined on the 1..5 scale: with other bins the segment is NULL (the map must still exist).
SELECT count(*) AS customers, count(segment) AS with_segment
  FROM cdp.rfm('rfm_shop', 'customer_id', 'ordered_at', 'amount', '2026-07-01', 10, 'cell names');
DELETE FROM cdp.rfm_segment_rules WHERE segment_map = 'cell names';
-- segment_map NULL: no segments.
SELECT count(*) AS customers, count(segment) AS with_segment
  FROM cdp.rfm('rfm_shop', 'customer_id', 'ordered_at', 'amount', '2026-07-01', segment_map => NULL);
-- The default map covers every cell: every scored customer gets a segment.
SELECT count(*) AS customers, count(segment) AS with_segment
  FROM cdp.rfm('rfm_shop', 'customer_id', 'ordered_at', 'amount', '2026-07-01');
SELECT r, f, m, segment, string_agg(customer_key, ', ' ORDER BY customer_key::int) AS customers
  FROM cdp.rfm('rfm_shop', 'customer_id', 'ordered_at', 'amount', '2026-07-01') GROUP BY 1, 2, 3, 4 ORDER BY 1;

-- Any key type (the key is its text form), timestamp/date order times (read in the session's
-- TimeZone), integer amounts, views.
CREATE TABLE rfm_typed (customer uuid, customer_name varchar(20), day date, placed timestamp, cents bigint);
INSERT INTO rfm_typed VALUES
  ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'ann', '2026-06-01', '2026-06-01 18:00', 1250),
  ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'ann', '2026-06-20', '2026-06-20 06:00', -250),
  ('b1eebc99-9c0b-4ef8-bb6d-6bb9bd380a22', 'ben', '2026-06-25', '2026-06-25 00:00', 99);
SELECT customer_key, recency_days, frequency, monetary
  FROM cdp.rfm('rfm_typed', 'customer', 'day', 'cents', '2026-07-01') ORDER BY 1;
SELECT customer_key, recency_days, frequency, monetary
  FROM cdp.rfm('rfm_typed', 'customer_name', 'placed', 'cents', '2026-07-01') ORDER BY 1;
CREATE VIEW rfm_shop_view AS SELECT customer_id AS who, ordered_at AS at, amount * 2 AS doubled FROM rfm_shop;
SELECT customer_key, frequency, monetary
  FROM cdp.rfm('rfm_shop_view', 'who', 'at', 'doubled', '2026-07-01') ORDER BY customer_key::int LIMIT 3;

-- Consistency with cdp.rfm_agg over a larger random shop: the same frequency, monetary and
-- recency for every customer, and no customer without a positive order.
SELECT setseed(0.5);
CREATE TABLE rfm_random AS
SELECT (random() * 400)::int AS customer_id,
       timestamptz '2025-01-01' + random() * interval '600 days' AS ordered_at,
       round((random() * 200 - 20)::numeric, 2) AS amount
  FROM generate_series(1, 3000);
WITH agg AS (SELECT customer_id::text AS customer_key, (cdp.rfm_agg(ordered_at, amount)).*
               FROM rfm_random WHERE ordered_at <= '2026-07-01' GROUP BY customer_id),
     rfm AS (SELECT * FROM cdp.rfm('rfm_random', 'customer_id', 'ordered_at', 'amount', '2026-07-01'))
SELECT (SELECT count(*) FROM agg WHERE orders > 0) AS customers_with_orders,
       (SELECT count(*) FROM rfm) AS customers_scored,
       (SELECT count(*) FROM agg JOIN rfm USING (customer_key)
         WHERE (agg.orders, agg.monetary) IS DISTINCT FROM (rfm.frequency, rfm.monetary)
            OR abs(extract(epoch FROM timestamptz '2026-07-01' - agg.last_order_at) / 86400 - rfm.recency_days) > 1e-9)
         AS customers_differing;

-- Consistency with the window function: r, f and m equal cdp.rfm_score over the same statistics
-- (recency scores last_order_at, so a later order scores higher), and segment equals cdp.rfm_segment.
WITH stats AS (SELECT customer_id::text AS customer_key, (cdp.rfm_agg(ordered_at, amount)).*
                 FROM rfm_random WHERE ordered_at <= '2026-07-01' GROUP BY customer_id),
     scored AS (SELECT customer_key,
                       cdp.rfm_score(last_order_at) OVER () AS r,
                       cdp.rfm_score(orders) OVER () AS f,
                       cdp.rfm_score(monetary) OVER () AS m
                  FROM stats WHERE orders > 0),
     rfm AS (SELECT * FROM cdp.rfm('rfm_random', 'customer_id', 'ordered_at', 'amount', '2026-07-01'))
SELECT count(*) AS customers,
       count(*) FILTER (WHERE (s.r, s.f, s.m) IS DISTINCT FROM (rfm.r, rfm.f, rfm.m)) AS scores_differing,
       count(*) FILTER (WHERE rfm.segment IS DISTINCT FROM cdp.rfm_segment(rfm.r, rfm.f, rfm.m)) AS segments_differing,
       count(DISTINCT rfm.r) AS r_scores_used
  FROM scored s FULL JOIN rfm USING (customer_key);

-- Columns are found by name, also behind a dropped column: with every row moved to customer 0,
-- that customer has all the orders and money counted before.
CREATE TABLE rfm_before_drop AS
SELECT * FROM cdp.rfm('rfm_random', 'customer_id', 'ordered_at', 'amount', '2026-07-01');
ALTER TABLE rfm_random ADD COLUMN note text DEFAULT 'x';
ALTER TABLE rfm_random DROP COLUMN customer_id, ADD COLUMN customer_id int;
UPDATE rfm_random SET customer_id = 0;  -- now one customer
SELECT customer_key, frequency = (SELECT sum(frequency) FROM rfm_before_drop) AS same_orders,
       monetary = (SELECT sum(monetary) FROM rfm_before_drop) AS same_total
  FROM cdp.rfm('rfm_random', 'customer_id', 'ordered_at', 'amount', '2026-07-01');

DROP VIEW rfm_shop_view;
DROP TABLE rfm_shop, rfm_typed, rfm_random, rfm_before_drop;
