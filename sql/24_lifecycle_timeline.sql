-- cdp.lifecycle_timeline(): the stage at the end of each period, for stage-flow dashboards.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

-- A monthly buyer who went quiet and came back: month ends from 2025-01-31 (Feb 28, Mar 31, ...).
CREATE TEMP TABLE story (customer text, ordered_at timestamptz, amount numeric);
INSERT INTO story VALUES ('ann', '2025-03-05 10:00+00', 30), ('ann', '2025-04-04 10:00+00', 30),
                         ('ann', '2025-05-04 10:00+00', 30), ('ann', '2025-06-03 10:00+00', 30),
                         ('ann', '2025-06-20 10:00+00', -30),  -- a refund is not an order
                         ('ann', '2026-02-10 10:00+00', 30), ('ann', '2026-03-12 10:00+00', 30);
SELECT p.period_end, p.stage
  FROM (SELECT cdp.lifecycle_timeline(ordered_at, amount, '2025-01-31', '2026-06-30', '1 month') AS t FROM story) s,
       unnest(s.t) AS p
 ORDER BY p.period_end;

-- Each point is the stage as of the last instant of its day: the same as cdp.lifecycle_stage() then.
SELECT setseed(0.75);
CREATE TEMP TABLE shop AS
SELECT c AS customer_id, timestamptz '2025-01-01 00:00+00' + (k * cadence + random() * 2) * interval '1 day' + random() * interval '23 hours' AS ordered_at,
       CASE WHEN random() < 0.05 THEN -10 ELSE 10 END AS amount
  FROM (SELECT c, 2 + floor(random() * 60) AS cadence, floor(random() * 10)::int AS n FROM generate_series(1, 400) c) s,
       generate_series(0, 9) k
 WHERE k < n;
SELECT count(*) AS points, count(*) FILTER (WHERE p.stage = l.stage) AS equal
  FROM (SELECT customer_id, cdp.lifecycle_timeline(ordered_at, amount, '2025-01-01', '2025-12-31', '20 days') AS t
          FROM shop GROUP BY customer_id) s,
       unnest(s.t) AS p,
       LATERAL (SELECT cdp.lifecycle_stage(o.ordered_at, o.amount, (p.period_end + 1)::timestamptz - interval '1 microsecond') AS stage
                  FROM shop o WHERE o.customer_id = s.customer_id) l;
-- The 5-argument form uses the default policy.
SELECT a = b AS same
  FROM (SELECT cdp.lifecycle_timeline(ordered_at, amount, '2025-01-31', '2026-06-30', '1 month') AS a,
               cdp.lifecycle_timeline(ordered_at, amount, '2025-01-31', '2026-06-30', '1 month', 'default') AS b
          FROM story) s;

-- The dashboard query (docs/lifecycle.md): customers moving between stages each month.
WITH timelines AS (
  SELECT customer_id, cdp.lifecycle_timeline(ordered_at, amount, '2025-01-31', '2025-12-31', '1 month') AS t
    FROM shop GROUP BY customer_id
), points AS (
  SELECT customer_id, p.period_end, p.stage,
         lag(p.stage) OVER (PARTITION BY customer_id ORDER BY p.period_end) AS previous_stage
    FROM timelines, unnest(t) AS p
)
SELECT period_end, previous_stage AS from_stage, stage AS to_stage, count(*) AS customers
  FROM points
 WHERE previous_stage IS DISTINCT FROM stage AND previous_stage IS NOT NULL
   AND period_end IN ('2025-06-30', '2025-07-31')
 GROUP BY 1, 2, 3
 ORDER BY 1, 2, 3;

-- Stage counts per month end (a stacked-bar chart).
SELECT p.period_end, count(*) FILTER (WHERE p.stage IN ('new', 'active', 'loyal', 'reactivated')) AS engaged,
       count(*) FILTER (WHERE p.stage = 'at_risk') AS at_risk,
       count(*) FILTER (WHERE p.stage IN ('lapsed', 'churned')) AS gone,
       count(*) FILTER (WHERE p.stage = 'prospect') AS prospect
  FROM (SELECT cdp.lifecycle_timeline(ordered_at, amount, '2025-03-31', '2025-12-31', '3 months') AS t
          FROM shop GROUP BY customer_id) s, unnest(s.t) AS p
 GROUP BY 1 ORDER BY 1;
