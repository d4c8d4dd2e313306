-- What the profiles model produced: the guest checkout joined Ana's account (one person, 4 orders),
-- order 8 found no person and is counted under its own customer key, order 13 is after as_of.
SELECT person_key LIKE 'person:%' AS merged_person, orders, monetary, identifiers, sources
  FROM "regress_dbt_cdp_models"."customer_profiles" ORDER BY orders DESC, monetary DESC;
SELECT customer_key, frequency, monetary, r, f, m FROM "regress_dbt_cdp_models"."customer_rfm" ORDER BY customer_key;
SELECT customer_key, lifecycle_stage, orders FROM "regress_dbt_cdp_models"."customer_lifecycle" ORDER BY customer_key;

DROP SCHEMA "regress_dbt_cdp_models" CASCADE;
DROP SCHEMA regress_dbt_shop CASCADE;
DELETE FROM cdp.profile_refreshes;
DELETE FROM cdp.profile_snapshots;
DELETE FROM cdp.profile_config;
