-- cdp.lifecycle(): stages judged by each customer's own buying rhythm. The worked examples here are
-- the ones in docs/lifecycle.md.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

-- One customer per stage, as of 2026-07-01 12:00 UTC (orders at 10:00 UTC, n days before).
CREATE TEMP TABLE examples (customer text, ordered_at timestamptz, amount numeric);
INSERT INTO examples
SELECT customer, CASE WHEN days_ago IS NOT NULL THEN timestamptz '2026-07-01 10:00+00' - days_ago * interval '1 day' END, 20
  FROM (VALUES ('a_prospect',     NULL::int[]),            -- no order (as from a LEFT JOIN)
               ('b_new',          '{30}'),                  -- one order 30 days ago
               ('c_active',       '{50,30,10}'),            -- every 20 days, last 10 days ago
               ('d_loyal',        '{110,80,50,20}'),        -- monthly, 4 order days, last 20 days ago
               ('e_reactivated',  '{265,235,205,5}'),       -- monthly, silent 199 days, back 5 days ago
               ('f_at_risk',      '{150}'),                 -- one order 150 days ago (90-day default cadence)
               ('g_lapsed',       '{160,130,100}'),         -- monthly, silent 100 days
               ('h_churned',      '{260,230,200}')          -- monthly, silent 200 days
       ) AS c(customer, history)
  LEFT JOIN LATERAL unnest(history) AS days_ago ON true;

SELECT customer, (l).stage, (l).orders, (l).order_days, (l).first_order_at::date AS first_order,
       (l).last_order_at::date AS last_order, (l).days_since_last_order AS silent, (l).typical_gap_days AS own_gap,
       (l).cadence_days AS cadence, round((l).overdue_ratio::numeric, 3) AS ratio,
       (l).expected_next_order_at AS expected_next, (l).stage_since
  FROM (SELECT customer, cdp.lifecycle(ordered_at, amount, '2026-07-01 12:00+00') AS l
          FROM examples GROUP BY customer) s
 ORDER BY customer;

-- lifecycle_stage() is the stage field; the 4-argument forms with 'default' agree.
SELECT customer, cdp.lifecycle_stage(ordered_at, amount, '2026-07-01 12:00+00') AS stage,
       cdp.lifecycle_stage(ordered_at, amount, '2026-07-01 12:00+00', 'default')
         = (cdp.lifecycle(ordered_at, amount, '2026-07-01 12:00+00', 'default')).stage AS same
  FROM examples GROUP BY customer ORDER BY customer;

-- Clear-cut customers: a weekly buyer silent for two months is not active (churned: 60 / 7 > 6);
-- silent three weeks they are already flagged (at_risk at 21 / 7 = 3, lapsed the next day);
-- a yearly buyer silent for six months is active.
CREATE TEMP TABLE rhythm AS
SELECT 'weekly' AS customer, timestamptz '2026-05-02 09:00+00' - k * interval '7 days' AS ordered_at, 12.50 AS amount
  FROM generate_series(0, 9) k
UNION ALL
SELECT 'yearly', timestamptz '2026-01-01 09:00+00' - k * interval '365 days', 900 FROM generate_series(0, 2) k;
SELECT customer, as_of::date, (l).stage, (l).typical_gap_days, (l).days_since_last_order, round((l).overdue_ratio::numeric, 2) AS ratio
  FROM (SELECT customer, as_of, cdp.lifecycle(ordered_at, amount, as_of) AS l
          FROM rhythm, (VALUES (timestamptz '2026-07-01 12:00+00'), ('2026-05-23 12:00+00'), ('2026-05-24 12:00+00')) a(as_of)
         GROUP BY customer, as_of) s
 ORDER BY customer, as_of;

-- Orders, order days, refunds and the future: three orders on 2026-06-01 are one order day; refunds
-- (negative) and zero amounts are not orders; NULL ordered_at or amount rows are ignored; orders after
-- as_of do not count.
SELECT (l).stage, (l).orders, (l).order_days, (l).first_order_at, (l).last_order_at, (l).typical_gap_days,
       (l).days_since_last_order
  FROM (SELECT cdp.lifecycle(ordered_at, amount, '2026-07-01 12:00+00') AS l
          FROM (VALUES (timestamptz '2026-06-01 08:00+00', 10.00),
                       ('2026-06-01 09:00+00', 5.00),
                       ('2026-06-01 23:59+00', 1.00),
                       ('2026-06-08 10:00+00', 10.00),
                       ('2026-06-15 10:00+00', -10.00),   -- refund
                       ('2026-06-16 10:00+00', 0),        -- zero
                       (NULL, 99),
                       ('2026-06-17 10:00+00', NULL),
                       ('2026-07-01 12:00:01+00', 50),     -- one second after as_of
                       ('infinity', 50)) o(ordered_at, amount)) s;

-- A group with only refunds, only NULLs, or only future orders has no order: prospect.
SELECT customer, cdp.lifecycle(ordered_at, amount, '2026-07-01') AS l
  FROM (VALUES ('refund only', timestamptz '2026-06-01', -5.00),
               ('nulls only', NULL, NULL),
               ('future only', '2026-08-01', 5.00)) o(customer, ordered_at, amount)
 GROUP BY customer ORDER BY customer;

-- No rows at all: NULL (no as_of was ever seen).
SELECT cdp.lifecycle(ordered_at, amount, '2026-07-01') IS NULL AS no_rows FROM examples WHERE false;

-- Day boundaries follow the session TimeZone (read once per query): 03:00 and 05:00 UTC on 2026-06-02
-- are one order day in UTC but two in New York (23:00 on June 1 and 01:00 on June 2, local time).
CREATE TEMP TABLE late_night (ordered_at timestamptz);
INSERT INTO late_night VALUES ('2026-06-02 03:00+00'), ('2026-06-02 05:00+00');
SELECT current_setting('TimeZone') AS tz, (l).order_days, (l).typical_gap_days, (l).days_since_last_order
  FROM (SELECT cdp.lifecycle(ordered_at, 1, '2026-06-03 12:00+00') AS l FROM late_night) s;
SET TimeZone = 'America/New_York';
SELECT current_setting('TimeZone') AS tz, (l).order_days, (l).typical_gap_days, (l).days_since_last_order
  FROM (SELECT cdp.lifecycle(ordered_at, 1, '2026-06-03 12:00+00') AS l FROM late_night) s;
SET TimeZone = 'UTC';

-- Across a DST change the day numbers stay whole days: daily orders around 2026-03-08 in New York.
SET TimeZone = 'America/New_York';
SELECT (l).order_days, (l).typical_gap_days, (l).days_since_last_order, (l).stage
  FROM (SELECT cdp.lifecycle(t, 1, '2026-03-10 12:00') AS l
          FROM generate_series(timestamptz '2026-03-06 23:30', '2026-03-09 23:30', interval '1 day') t) s;
SET TimeZone = 'UTC';

-- The result never depends on input order: shuffled input gives the same state.
SELECT setseed(0.3);
SELECT bool_and(a = b) AS order_independent
  FROM (SELECT customer, cdp.lifecycle(ordered_at, amount, '2026-07-01 12:00+00') AS a
          FROM (SELECT * FROM examples ORDER BY ordered_at) x GROUP BY customer) s1
  JOIN (SELECT customer, cdp.lifecycle(ordered_at, amount, '2026-07-01 12:00+00') AS b
          FROM (SELECT * FROM examples ORDER BY random()) y GROUP BY customer) s2 USING (customer);

-- A long history (3,000 order days, shuffled) stays exact.
SELECT (l).orders, (l).order_days, (l).typical_gap_days, (l).stage, (l).stage_since
  FROM (SELECT cdp.lifecycle(ordered_at, 1, '2026-07-01') AS l
          FROM (SELECT timestamptz '2000-01-01 12:00+00' + k * interval '3 days' AS ordered_at
                  FROM generate_series(0, 2999) k, generate_series(1, 2) twice ORDER BY random()) o) s;
