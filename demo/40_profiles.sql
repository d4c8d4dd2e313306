-- Demo step 40: the whole loop on the sample shop — merge identities, attribute orders to persons,
-- profile them (RFM + lifecycle) in dated snapshots, and read the dashboard views.
SET TimeZone = 'Europe/Berlin';
\echo '== identity merge over shop.identity_observations (accounts, guest checkouts, web, loyalty)'
SET client_min_messages = warning;
CALL cdp.merge_identities('shop.identity_observations', full_rebuild => true);
RESET client_min_messages;

\echo '== orders find their person through cdp.identity_map (each order is an identity record of source ''order'')'
SELECT cdp.configure_orders('shop.orders', 'order_id', 'customer_id', 'ordered_at', 'amount',
                            person_source => 'order', shop_time_zone => 'Europe/Berlin');

\echo '== two snapshots: 2026-04-01 and 2026-07-01'
CALL cdp.refresh_profiles('2026-04-01 00:00+02');
CALL cdp.refresh_profiles('2026-07-01 00:00+02');
SELECT as_of, persons, unattributed, orders FROM cdp.profile_snapshot_list ORDER BY as_of;

\echo '== what the merge collapsed: customer ids of the orders vs persons in the latest snapshot'
SELECT (SELECT count(DISTINCT customer_id) FROM shop.orders WHERE ordered_at <= '2026-07-01 00:00+02') AS customer_ids_with_orders,
       (SELECT count(DISTINCT source || ':' || source_key) FROM shop.identity_observations) AS identity_records,
       count(*) FILTER (WHERE person_id IS NOT NULL) AS persons_with_orders,
       count(*) FILTER (WHERE person_id IS NULL) AS customers_without_known_person,
       count(*) AS profiles
  FROM cdp.customer_profiles;
-- Persons whose orders came under more than one customer id (account + guest checkouts).
SELECT count(*) AS persons_spanning_several_customer_ids, sum(customer_ids) AS their_customer_ids
  FROM (SELECT im.person_id, count(DISTINCT o.customer_id) AS customer_ids
          FROM shop.orders o JOIN cdp.identity_map im ON im.source = 'order' AND im.source_key = o.order_id::text
         GROUP BY im.person_id HAVING count(DISTINCT o.customer_id) > 1) p;

\echo '== cdp.customer_profiles: a few merged persons'
SELECT person_key, orders, monetary, recency_days, r, f, m, rfm_segment, lifecycle_stage,
       round(cadence_days::numeric, 1) AS cadence_days, identifiers, sources
  FROM cdp.customer_profiles
 WHERE sources >= 3
 ORDER BY monetary DESC, person_key
 LIMIT 5;

\echo '== cdp.segment_summary (latest snapshot)'
SELECT rfm_segment, customers, round(customer_share::numeric, 3) AS customer_share, revenue,
       round(revenue_share::numeric, 3) AS revenue_share, average_orders, average_monetary, average_recency_days
  FROM cdp.segment_summary ORDER BY revenue DESC;

\echo '== cdp.lifecycle_summary (latest snapshot)'
SELECT lifecycle_stage, customers, round(customer_share::numeric, 3) AS customer_share, revenue,
       round(revenue_share::numeric, 3) AS revenue_share, average_orders, average_recency_days
  FROM cdp.lifecycle_summary ORDER BY customers DESC;

\echo '== cdp.stage_movement: 2026-04-01 -> 2026-07-01, largest flows'
SELECT from_stage, to_stage, customers, round(share_of_from::numeric, 3) AS share_of_from
  FROM cdp.stage_movement ORDER BY customers DESC, from_stage, to_stage LIMIT 12;

\echo '== cdp.segment_movement: where the April Champions went'
SELECT from_segment, to_segment, customers, round(share_of_from::numeric, 3) AS share_of_from
  FROM cdp.segment_movement WHERE from_segment = 'Champions' ORDER BY customers DESC, to_segment;
