-- Demo step 20: lifecycle stages, each customer judged by their own buying rhythm (docs/lifecycle.md).
\echo '== lifecycle stages as of 2026-07-01 (default policy: one-time buyers expected back within 90 days)'
WITH states AS (
  SELECT customer_id, cdp.lifecycle(ordered_at, amount, '2026-07-01') AS l
    FROM shop.orders GROUP BY customer_id
)
SELECT (l).stage, count(*) AS customers, round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS "%",
       round(avg((l).orders), 1) AS avg_orders,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY (l).typical_gap_days))::numeric, 1) AS median_own_gap_days,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY (l).days_since_last_order))::numeric) AS median_days_silent
  FROM states
 GROUP BY (l).stage
 ORDER BY array_position(ARRAY['prospect', 'new', 'active', 'loyal', 'reactivated', 'at_risk', 'lapsed', 'churned'], (l).stage);

\echo '== a policy fitted to this shop''s own repeat-purchase gaps'
SELECT policy, one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor, loyal_min_order_days
  FROM cdp.fit_lifecycle_policy('shop.orders', 'customer_id', 'ordered_at', '2026-07-01', 'shop', 'amount');

\echo '== stages under the fitted policy, with who to contact first (most valuable at-risk customers)'
SELECT stage, count(*) AS customers
  FROM (SELECT cdp.lifecycle_stage(ordered_at, amount, '2026-07-01', 'shop') AS stage FROM shop.orders GROUP BY customer_id) s
 GROUP BY stage
 ORDER BY array_position(ARRAY['prospect', 'new', 'active', 'loyal', 'reactivated', 'at_risk', 'lapsed', 'churned'], stage);
SELECT customer_id, (l).orders, (l).typical_gap_days AS own_gap_days, (l).days_since_last_order AS silent_days,
       round((l).overdue_ratio::numeric, 2) AS overdue_ratio, (l).stage_since, revenue
  FROM (SELECT customer_id, cdp.lifecycle(ordered_at, amount, '2026-07-01', 'shop') AS l, sum(amount) AS revenue
          FROM shop.orders GROUP BY customer_id) s
 WHERE (l).stage = 'at_risk'
 ORDER BY revenue DESC, customer_id
 LIMIT 5;

\echo '== stage flow: customers moving between stages at each month end of 2026 (dashboard query)'
WITH timelines AS (
  SELECT customer_id, cdp.lifecycle_timeline(ordered_at, amount, '2025-12-31', '2026-06-30', '1 month') AS t
    FROM shop.orders GROUP BY customer_id
), points AS (
  SELECT p.period_end, p.stage, lag(p.stage) OVER (PARTITION BY customer_id ORDER BY p.period_end) AS previous_stage
    FROM timelines, unnest(t) AS p
)
SELECT period_end, previous_stage || ' -> ' || stage AS movement, count(*) AS customers
  FROM points
 WHERE previous_stage IS DISTINCT FROM stage AND previous_stage IS NOT NULL
   AND (previous_stage, stage) IN (('active', 'at_risk'), ('loyal', 'at_risk'), ('at_risk', 'lapsed'),
                                   ('lapsed', 'reactivated'), ('churned', 'reactivated'), ('new', 'active'))
 GROUP BY 1, 2
 ORDER BY 1, 2;
