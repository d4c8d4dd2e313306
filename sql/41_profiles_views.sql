-- Profiles: the dashboard views over two snapshots of a generated shop — summaries agree with the
-- profiles they summarise, movement agrees with segment_flow, and every view column is plain and commented.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET TimeZone = 'UTC';

CREATE SCHEMA prof_views;
SELECT setseed(0.41);
CREATE TABLE prof_views.orders AS
SELECT row_number() OVER () AS order_id, c AS customer_id,
       timestamptz '2025-01-01 00:00+00' + (random() * 540) * interval '1 day' AS ordered_at,
       round((5 + random() * 200)::numeric, 2) * CASE WHEN random() < 0.03 THEN -1 ELSE 1 END AS amount
  FROM generate_series(1, 400) c, generate_series(1, 1 + (c % 7)) k;
SELECT count(*) AS orders, count(DISTINCT customer_id) AS customers FROM prof_views.orders;

SELECT cdp.configure_orders('prof_views.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', shop_time_zone => 'UTC');
CALL cdp.refresh_profiles('2026-01-01 00:00+00');
CALL cdp.refresh_profiles('2026-07-01 00:00+00');

-- The summaries are the profiles of the latest snapshot, grouped.
SELECT count(*) AS segment_rows_differing FROM (
  (SELECT as_of, rfm_segment, customers, revenue, average_orders, average_monetary, average_order_value, average_recency_days
     FROM cdp.segment_summary)
  EXCEPT
  (SELECT as_of, coalesce(rfm_segment, '(unscored)'), count(*), sum(monetary),
          round(sum(orders)::numeric / count(*), 2), round(sum(monetary) / count(*), 2),
          round(sum(monetary) / nullif(sum(orders), 0), 2), round(avg(recency_days), 1)
     FROM cdp.customer_profiles GROUP BY 1, 2)) d;
SELECT count(*) AS stage_rows_differing FROM (
  (SELECT as_of, lifecycle_stage, customers, revenue, average_orders FROM cdp.lifecycle_summary)
  EXCEPT
  (SELECT as_of, lifecycle_stage, count(*), sum(monetary), round(sum(orders)::numeric / count(*), 2)
     FROM cdp.customer_profiles GROUP BY 1, 2)) d;
SELECT round(sum(customer_share)::numeric, 10) AS segment_shares, round(sum(revenue_share)::numeric, 10) AS revenue_shares,
       sum(customers) AS customers FROM cdp.segment_summary;
SELECT round(sum(customer_share)::numeric, 10) AS stage_shares, round(sum(revenue_share)::numeric, 10) AS revenue_shares,
       sum(customers) AS customers FROM cdp.lifecycle_summary;
SELECT lifecycle_stage, customers, revenue, round(customer_share::numeric, 4) AS customer_share
  FROM cdp.lifecycle_summary ORDER BY lifecycle_stage;

-- Movement between the two latest snapshots = segment_flow of those dates = a join done by hand.
SELECT DISTINCT from_as_of, to_as_of FROM cdp.stage_movement;
SELECT count(*) AS stage_flows_differing FROM (
  (SELECT from_stage, to_stage, customers, share_of_from FROM cdp.stage_movement)
  EXCEPT
  (SELECT * FROM cdp.segment_flow('2026-01-01 00:00+00', '2026-07-01 00:00+00', 'lifecycle_stage'))) d;
SELECT count(*) AS segment_flows_differing FROM (
  (SELECT from_segment, to_segment, customers FROM cdp.segment_movement)
  EXCEPT
  (SELECT CASE WHEN a.person_key IS NULL THEN '(absent)' ELSE coalesce(a.rfm_segment, '(unscored)') END,
          CASE WHEN b.person_key IS NULL THEN '(absent)' ELSE coalesce(b.rfm_segment, '(unscored)') END, count(*)
     FROM (SELECT * FROM cdp.profile_history WHERE as_of = '2026-01-01 00:00+00') a
     FULL JOIN (SELECT * FROM cdp.profile_history WHERE as_of = '2026-07-01 00:00+00') b USING (person_key)
    GROUP BY 1, 2)) d;
SELECT sum(customers) AS persons_in_flows,
       (SELECT count(DISTINCT person_key) FROM cdp.profile_history) AS persons_in_either
  FROM cdp.stage_movement;
SELECT from_stage, round(sum(share_of_from)::numeric, 10) AS shares FROM cdp.stage_movement GROUP BY 1 ORDER BY 1;
-- New buyers of the second half-year come from '(absent)'.
SELECT to_stage, customers FROM cdp.stage_movement WHERE from_stage = '(absent)' ORDER BY to_stage;
-- Reversed dates work too; bad dimension 22023; NULL dates 22004.
SELECT sum(customers) AS reversed_flow_persons FROM cdp.segment_flow('2026-07-01 00:00+00', '2026-01-01 00:00+00');
\set VERBOSITY sqlstate
SELECT * FROM cdp.segment_flow('2026-01-01', '2026-07-01', 'city');
SELECT * FROM cdp.segment_flow(NULL, '2026-07-01');
\set VERBOSITY default
-- A later refresh of an older date does not change which snapshots the movement views compare.
CALL cdp.refresh_profiles('2025-06-01 00:00+00');
SELECT DISTINCT from_as_of, to_as_of FROM cdp.segment_movement;

-- Every view column is a plain type and carries a comment; every view has one.
SELECT c.table_name, c.data_type, count(*) AS columns
  FROM information_schema.columns c
 WHERE c.table_schema = 'cdp'
   AND c.table_name IN ('customer_profiles', 'profile_history', 'profile_snapshot_list', 'segment_summary',
                        'lifecycle_summary', 'segment_movement', 'stage_movement')
 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT c.relname, a.attname
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
 WHERE c.relnamespace = 'cdp'::regnamespace AND c.relkind = 'v'
   AND (col_description(c.oid, a.attnum) IS NULL OR obj_description(c.oid, 'pg_class') IS NULL)
 ORDER BY 1, 2;

DELETE FROM cdp.profile_refreshes;
DELETE FROM cdp.profile_snapshots;
DELETE FROM cdp.profile_config;
DROP SCHEMA prof_views CASCADE;
