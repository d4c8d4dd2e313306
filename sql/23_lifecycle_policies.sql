-- Lifecycle policies as data: the shipped default, CHECK constraints, read-only shipped rows, pg_dump
-- registration, and cdp.fit_lifecycle_policy() deriving thresholds from a shop's own gaps.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

CREATE FUNCTION pg_temp.err(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE state text; message text; detail text;
BEGIN
  EXECUTE query;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
  RETURN state || ': ' || message || CASE WHEN detail <> '' THEN ' (' || detail || ')' ELSE '' END;
END $$;

SELECT policy, one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor, loyal_min_order_days,
       min_gaps_for_own_cadence, shipped
  FROM cdp.lifecycle_policies ORDER BY policy;
-- pg_dump keeps the user's rows, CREATE EXTENSION recreates the shipped ones.
SELECT c.relname, e.extcondition FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(oid, extcondition)
  JOIN pg_class c ON c.oid = x.oid
 WHERE e.extname = 'pg_cdp' AND c.relname = 'lifecycle_policies';

-- Nonsense is rejected by CHECK constraints (23514).
SELECT pg_temp.err($$INSERT INTO cdp.lifecycle_policies (policy, one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor, loyal_min_order_days) VALUES ('p', 30, 3, 2, 6, 4)$$);
SELECT pg_temp.err($$INSERT INTO cdp.lifecycle_policies (policy, one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor, loyal_min_order_days) VALUES ('p', 30, 0.5, 2, 6, 4)$$);
SELECT pg_temp.err($$INSERT INTO cdp.lifecycle_policies (policy, one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor, loyal_min_order_days) VALUES ('p', 0, 1.5, 3, 6, 4)$$);
SELECT pg_temp.err($$INSERT INTO cdp.lifecycle_policies (policy, one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor, loyal_min_order_days) VALUES ('p', 30, 1.5, 3, 'NaN', 4)$$);
SELECT pg_temp.err($$INSERT INTO cdp.lifecycle_policies (policy, one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor, loyal_min_order_days) VALUES ('p', 30, 1.5, 3, 'Infinity', 4)$$);
SELECT pg_temp.err($$INSERT INTO cdp.lifecycle_policies (policy, one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor, loyal_min_order_days) VALUES ('p', 30, 1.5, 3, 6, 1)$$);
SELECT pg_temp.err($$INSERT INTO cdp.lifecycle_policies (policy, one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor, loyal_min_order_days, min_gaps_for_own_cadence) VALUES ('p', 30, 1.5, 3, 6, 4, 0)$$);
SELECT pg_temp.err($$INSERT INTO cdp.lifecycle_policies (policy, one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor, loyal_min_order_days) VALUES ('', 30, 1.5, 3, 6, 4)$$);

-- Shipped rows are read-only (55000); users add their own.
SELECT pg_temp.err($$UPDATE cdp.lifecycle_policies SET at_risk_factor = 2 WHERE policy = 'default'$$);
SELECT pg_temp.err($$DELETE FROM cdp.lifecycle_policies WHERE policy = 'default'$$);
SELECT pg_temp.err($$TRUNCATE cdp.lifecycle_policies$$);
SELECT pg_temp.err($$INSERT INTO cdp.lifecycle_policies (policy, one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor, loyal_min_order_days, shipped) VALUES ('mine', 30, 1.5, 3, 6, 4, true)$$);
INSERT INTO cdp.lifecycle_policies (policy, one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor,
                                    loyal_min_order_days, min_gaps_for_own_cadence, description)
VALUES ('strict', 30, 1.1, 1.5, 2, 3, 2, 'tight thresholds for a subscription-like shop');

-- The same customer under two policies: monthly buyer silent 45 days.
SELECT policy, (l).stage, (l).cadence_days, round((l).overdue_ratio::numeric, 2) AS ratio, (l).stage_since
  FROM (VALUES ('default'), ('strict')) p(policy),
       LATERAL (SELECT cdp.lifecycle(t, 10, '2026-07-01', p.policy) AS l
                  FROM (VALUES (timestamptz '2026-03-18'), ('2026-04-17'), ('2026-05-17')) o(t)) s
 ORDER BY policy;
-- min_gaps_for_own_cadence = 2: one gap is not enough, the 30-day policy default applies.
SELECT (cdp.lifecycle(t, 10, '2026-07-01', 'strict')).cadence_days
  FROM (VALUES (timestamptz '2026-05-01'), ('2026-05-08')) o(t);
-- Policies are read per query: an edit shows in the next statement; unknown names list the known ones.
UPDATE cdp.lifecycle_policies SET churned_factor = 3 WHERE policy = 'strict';
SELECT cdp.lifecycle_stage(t, 10, '2026-07-01', 'strict')
  FROM (VALUES (timestamptz '2026-03-18'), ('2026-04-17'), ('2026-05-17')) o(t);
SELECT pg_temp.err($$SELECT cdp.lifecycle_stage(now(), 1, now(), 'Strict')$$);

-- Fitting: a coffee shop (weekly buyers) and a mattress shop (buyers every year or two) get different
-- thresholds from their own repeat-purchase gaps.
SELECT setseed(0.25);
CREATE TABLE coffee_orders ("Customer" int, "Ordered At" timestamptz, amount numeric);
INSERT INTO coffee_orders
SELECT c, timestamptz '2025-06-01 08:00+00' + (k * cadence * (0.7 + 0.6 * random())) * interval '1 day', 4.5
  FROM (SELECT c, 5 + random() * 5 AS cadence, CASE WHEN random() < 0.4 THEN 1 ELSE 2 + floor(random() * 30)::int END AS n
          FROM generate_series(1, 300) c) s, generate_series(0, 40) k
 WHERE k < n;
INSERT INTO coffee_orders SELECT "Customer", "Ordered At" + interval '1 hour', -4.5 FROM coffee_orders WHERE "Customer" % 10 = 0;
CREATE TABLE mattress_orders (customer text, bought_at timestamptz);
INSERT INTO mattress_orders
SELECT 'm' || c, timestamptz '2020-01-01 12:00+00' + (random() * 300 + k * cadence * (0.7 + 0.6 * random())) * interval '1 day'
  FROM (SELECT c, 300 + random() * 400 AS cadence, CASE WHEN random() < 0.5 THEN 1 ELSE 2 + floor(random() * 4)::int END AS n
          FROM generate_series(1, 300) c) s, generate_series(0, 5) k
 WHERE k < n;

SELECT policy, one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor, loyal_min_order_days,
       min_gaps_for_own_cadence, shipped, description
  FROM cdp.fit_lifecycle_policy('coffee_orders', 'Customer', 'Ordered At', '2026-07-01', 'coffee', 'amount');
SELECT policy, one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor, loyal_min_order_days,
       min_gaps_for_own_cadence, shipped, description
  FROM cdp.fit_lifecycle_policy('mattress_orders', 'customer', 'bought_at', '2026-07-01', 'mattress');
-- A one-time buyer 60 days ago: long gone for the coffee shop, just new for the mattress shop.
SELECT policy, cdp.lifecycle_stage(t, 4.5, '2026-07-01', policy)
  FROM (VALUES ('coffee'), ('mattress')) p(policy), (VALUES (timestamptz '2026-05-02')) o(t)
 GROUP BY policy ORDER BY policy;
-- Refitting replaces the row (upsert), here with orders up to an earlier as_of.
SELECT count(*) AS policies FROM cdp.lifecycle_policies;
SELECT policy, one_time_cadence_days FROM cdp.fit_lifecycle_policy('mattress_orders', 'customer', 'bought_at', '2022-01-01', 'mattress');
SELECT count(*) AS policies FROM cdp.lifecycle_policies;

-- Bad input to fit_lifecycle_policy.
SELECT pg_temp.err($$SELECT cdp.fit_lifecycle_policy(NULL, 'customer', 'bought_at', '2026-07-01', 'x')$$);
SELECT pg_temp.err($$SELECT cdp.fit_lifecycle_policy('mattress_orders', 'customer', 'bought_at', NULL, 'x')$$);
SELECT pg_temp.err($$SELECT cdp.fit_lifecycle_policy('mattress_orders', 'customer', 'bought_at', 'infinity', 'x')$$);
SELECT pg_temp.err($$SELECT cdp.fit_lifecycle_policy('mattress_orders', 'customer', 'bought_at', '2026-07-01', NULL)$$);
SELECT pg_temp.err($$SELECT cdp.fit_lifecycle_policy('mattress_orders', 'customer', 'bought_at', '2026-07-01', 'default')$$);
SELECT pg_temp.err($$SELECT cdp.fit_lifecycle_policy('mattress_orders', 'Customer', 'bought_at', '2026-07-01', 'x')$$);
SELECT pg_temp.err($$SELECT cdp.fit_lifecycle_policy('mattress_orders', 'customer', 'bought_at"; DROP TABLE coffee_orders; --', '2026-07-01', 'x')$$);
SELECT pg_temp.err($$SELECT cdp.fit_lifecycle_policy('mattress_orders', 'customer', 'customer', '2026-07-01', 'x')$$);
SELECT pg_temp.err($$SELECT cdp.fit_lifecycle_policy('coffee_orders', 'Customer', 'Ordered At', '2026-07-01', 'x', 'Customer2')$$);
SELECT pg_temp.err($$SELECT cdp.fit_lifecycle_policy('mattress_orders', 'customer', 'bought_at', '2026-07-01', 'x', 'customer')$$);
SELECT pg_temp.err($$SELECT cdp.fit_lifecycle_policy('mattress_orders', 'customer', 'bought_at', '2020-03-01', 'x')$$);
SELECT pg_temp.err($$SELECT cdp.fit_lifecycle_policy('no_such_table', 'customer', 'bought_at', '2026-07-01', 'x')$$);
SELECT count(*) AS coffee_rows_still_there FROM coffee_orders;

DROP TABLE coffee_orders, mattress_orders;
DELETE FROM cdp.lifecycle_policies WHERE NOT shipped;
