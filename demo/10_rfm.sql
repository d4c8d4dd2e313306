-- Demo step 10: RFM segments of the sample shop with one call to cdp.rfm.
\echo '== RFM segments as of 2026-07-01: cdp.rfm(''shop.orders'', ''customer_id'', ''ordered_at'', ''amount'', ''2026-07-01'')'
\set QUIET on
CREATE TEMP TABLE demo_rfm AS
SELECT * FROM cdp.rfm('shop.orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01');
\set QUIET off

SELECT segment,
       count(*) AS customers,
       round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS "share %",
       sum(monetary) AS revenue,
       round(100.0 * sum(monetary) / sum(sum(monetary)) OVER (), 1) AS "revenue %",
       round(avg(recency_days)) AS "avg days since last order",
       round(avg(frequency), 1) AS "avg orders"
  FROM demo_rfm
 GROUP BY segment
 ORDER BY revenue DESC;

\echo '== a few customers: the best Champions and the most valuable customers At Risk or Cannot Lose Them'
(SELECT customer_key, segment, r, f, m, round(recency_days::numeric, 1) AS recency_days, frequency, monetary
   FROM demo_rfm WHERE segment = 'Champions' ORDER BY monetary DESC, customer_key LIMIT 3)
UNION ALL
(SELECT customer_key, segment, r, f, m, round(recency_days::numeric, 1), frequency, monetary
   FROM demo_rfm WHERE segment IN ('At Risk', 'Cannot Lose Them') ORDER BY monetary DESC, customer_key LIMIT 3);

\echo '== one customer''s order statistics with the cdp.rfm_agg aggregate'
SELECT customer_id, (cdp.rfm_agg(ordered_at, amount)).*
  FROM shop.orders
 WHERE customer_id = (SELECT customer_key::bigint FROM demo_rfm WHERE segment = 'Champions'
                       ORDER BY monetary DESC, customer_key LIMIT 1)
   AND ordered_at <= '2026-07-01'
 GROUP BY customer_id;
