-- dbt package: the models compiled by integrations/dbt/compile_check.py (Jinja2 + the package macros,
-- as dbt compiles them) and run here against the throwaway cluster, with dbt's generic tests from
-- schema.yml (each passes with 0 failures). GENERATED: edit integrations/dbt/{models,macros,
-- regress_setup.sql,regress_teardown.sql} and run integrations/dbt/compile_check.sh --write.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET TimeZone = 'UTC';

-- A small shop: accounts, a guest checkout by a variant of an account's email (same person), an
-- order nobody can be identified by (counted under its own customer key), a refund.
CREATE SCHEMA regress_dbt_shop;
CREATE TABLE regress_dbt_shop.orders (
  order_id bigint PRIMARY KEY, customer_id bigint NOT NULL, ordered_at timestamptz NOT NULL, amount numeric(12,2) NOT NULL);
INSERT INTO regress_dbt_shop.orders VALUES
  (1, 1, '2026-01-05 10:00+00', 40), (2, 1, '2026-03-05 10:00+00', 60), (3, 1, '2026-05-05 10:00+00', 50),
  (4, 2, '2026-06-01 10:00+00', 30),
  (5, 3, '2025-06-01 10:00+00', 100), (7, 3, '2025-12-01 10:00+00', 80),
  (8, 4, '2026-06-20 10:00+00', 25),
  (9, 5, '2026-06-25 10:00+00', 15),
  (10, 6, '2024-09-01 10:00+00', 200), (11, 6, '2024-10-01 10:00+00', 220), (12, 6, '2024-11-01 10:00+00', -20),
  (13, 5, '2026-07-15 10:00+00', 99);
CREATE TABLE regress_dbt_shop.accounts (customer_id bigint PRIMARY KEY, email text, created_at timestamptz);
INSERT INTO regress_dbt_shop.accounts VALUES
  (1, 'ana@mailbox.org', '2026-01-01'), (3, 'ben@web.de', '2025-05-01'),
  (5, 'cleo@gmx.net', '2026-06-01'), (6, 'dan@posteo.de', '2024-08-01');
CREATE TABLE regress_dbt_shop.guest_checkouts (order_id bigint PRIMARY KEY, email text);
INSERT INTO regress_dbt_shop.guest_checkouts VALUES (4, '  Ana@MailBox.ORG ');
-- Customer 2 and 4 are guest records: their orders carry no customer_id observation. Order 8 carries nothing.
CREATE VIEW regress_dbt_shop.identity_observations AS
SELECT 'order' AS source, o.order_id::text AS source_key, 'customer_id' AS id_type, o.customer_id::text AS id_value,
       o.ordered_at AS observed_at
  FROM regress_dbt_shop.orders o
 WHERE o.customer_id IN (SELECT a.customer_id FROM regress_dbt_shop.accounts a)
UNION ALL
SELECT 'order', g.order_id::text, 'email', g.email, o.ordered_at
  FROM regress_dbt_shop.guest_checkouts g JOIN regress_dbt_shop.orders o USING (order_id)
UNION ALL
SELECT 'account', a.customer_id::text, 'customer_id', a.customer_id::text, a.created_at FROM regress_dbt_shop.accounts a
UNION ALL
SELECT 'account', a.customer_id::text, 'email', a.email, a.created_at FROM regress_dbt_shop.accounts a;
-- dbt prints hook NOTICEs to its log; here they would carry timings.
SET client_min_messages = warning;

CREATE SCHEMA "regress_dbt_cdp_models";

-- model customer_lifecycle (models/customer_lifecycle.sql), compiled
CREATE TABLE "regress_dbt_cdp_models"."customer_lifecycle" AS (
-- Lifecycle stage per customer key, judged by each customer's own cadence.
select customer_key,
       (state).stage as lifecycle_stage,
       (state).orders as orders,
       (state).first_order_at as first_order_at,
       (state).last_order_at as last_order_at,
       (state).days_since_last_order as days_since_last_order,
       (state).typical_gap_days as typical_gap_days,
       (state).expected_next_order_at as expected_next_order_at,
       (state).overdue_ratio as overdue_ratio,
       (state).stage_since as stage_since
  from (select "customer_id"::text as customer_key,
               cdp.lifecycle("ordered_at", "amount"::numeric,
                             '2026-07-01 00:00:00+00'::timestamptz, 'default') as state
          from "regress_dbt_shop"."orders"
         group by 1) per_customer
);
SELECT count(*) > 0 AS "customer_lifecycle_has_rows" FROM "regress_dbt_cdp_models"."customer_lifecycle";
SELECT 'unique_customer_lifecycle_customer_key' AS test, count(*) AS failures FROM (select "customer_key" as unique_field, count(*) as n_records from "regress_dbt_cdp_models"."customer_lifecycle" where "customer_key" is not null group by "customer_key" having count(*) > 1) dbt_internal_test;
SELECT 'not_null_customer_lifecycle_customer_key' AS test, count(*) AS failures FROM (select "customer_key" from "regress_dbt_cdp_models"."customer_lifecycle" where "customer_key" is null) dbt_internal_test;
SELECT 'not_null_customer_lifecycle_lifecycle_stage' AS test, count(*) AS failures FROM (select "lifecycle_stage" from "regress_dbt_cdp_models"."customer_lifecycle" where "lifecycle_stage" is null) dbt_internal_test;
SELECT 'accepted_values_customer_lifecycle_lifecycle_stage' AS test, count(*) AS failures FROM (with all_values as (select "lifecycle_stage" as value_field, count(*) as n_records from "regress_dbt_cdp_models"."customer_lifecycle" group by "lifecycle_stage") select * from all_values where value_field not in ('prospect', 'new', 'active', 'loyal', 'reactivated', 'at_risk', 'lapsed', 'churned')) dbt_internal_test;

-- model customer_profiles (models/customer_profiles.sql), compiled
call cdp.merge_identities('"regress_dbt_shop"."identity_observations"'::regclass, true);
select cdp.configure_orders('"regress_dbt_shop"."orders"'::regclass, 'order_id',
       'customer_id', 'ordered_at', 'amount',
       customer_id_type => NULL, person_source => 'order',
       currency_column => NULL, shop_time_zone => NULL);
call cdp.refresh_profiles('2026-07-01 00:00:00+00'::timestamptz);
CREATE TABLE "regress_dbt_cdp_models"."customer_profiles" AS (
-- Person-level profiles: identity merge, then a snapshot as of var('pg_cdp_as_of'), read back as plain columns.
select as_of, person_key, orders, monetary, average_order_value, recency_days, r, f, m, rfm_segment,
       lifecycle_stage, cadence_days, expected_next_order_at, overdue_ratio, first_order_at, last_order_at,
       identifiers, sources
  from cdp.profile_history
 where as_of = '2026-07-01 00:00:00+00'::timestamptz
);
SELECT count(*) > 0 AS "customer_profiles_has_rows" FROM "regress_dbt_cdp_models"."customer_profiles";
SELECT 'not_null_customer_profiles_as_of' AS test, count(*) AS failures FROM (select "as_of" from "regress_dbt_cdp_models"."customer_profiles" where "as_of" is null) dbt_internal_test;
SELECT 'unique_customer_profiles_person_key' AS test, count(*) AS failures FROM (select "person_key" as unique_field, count(*) as n_records from "regress_dbt_cdp_models"."customer_profiles" where "person_key" is not null group by "person_key" having count(*) > 1) dbt_internal_test;
SELECT 'not_null_customer_profiles_person_key' AS test, count(*) AS failures FROM (select "person_key" from "regress_dbt_cdp_models"."customer_profiles" where "person_key" is null) dbt_internal_test;
SELECT 'not_null_customer_profiles_orders' AS test, count(*) AS failures FROM (select "orders" from "regress_dbt_cdp_models"."customer_profiles" where "orders" is null) dbt_internal_test;
SELECT 'not_null_customer_profiles_monetary' AS test, count(*) AS failures FROM (select "monetary" from "regress_dbt_cdp_models"."customer_profiles" where "monetary" is null) dbt_internal_test;
SELECT 'not_null_customer_profiles_lifecycle_stage' AS test, count(*) AS failures FROM (select "lifecycle_stage" from "regress_dbt_cdp_models"."customer_profiles" where "lifecycle_stage" is null) dbt_internal_test;
SELECT 'accepted_values_customer_profiles_lifecycle_stage' AS test, count(*) AS failures FROM (with all_values as (select "lifecycle_stage" as value_field, count(*) as n_records from "regress_dbt_cdp_models"."customer_profiles" group by "lifecycle_stage") select * from all_values where value_field not in ('prospect', 'new', 'active', 'loyal', 'reactivated', 'at_risk', 'lapsed', 'churned')) dbt_internal_test;
SELECT 'not_null_customer_profiles_identifiers' AS test, count(*) AS failures FROM (select "identifiers" from "regress_dbt_cdp_models"."customer_profiles" where "identifiers" is null) dbt_internal_test;
SELECT 'not_null_customer_profiles_sources' AS test, count(*) AS failures FROM (select "sources" from "regress_dbt_cdp_models"."customer_profiles" where "sources" is null) dbt_internal_test;

-- model customer_rfm (models/customer_rfm.sql), compiled
CREATE TABLE "regress_dbt_cdp_models"."customer_rfm" AS (
-- RFM per customer key of the orders table, as of var('pg_cdp_as_of').
select customer_key, recency_days, frequency, monetary, r, f, m, segment
  from cdp.rfm('"regress_dbt_shop"."orders"'::regclass, 'customer_id', 'ordered_at',
               'amount', '2026-07-01 00:00:00+00'::timestamptz, 5,
               'default')
);
SELECT count(*) > 0 AS "customer_rfm_has_rows" FROM "regress_dbt_cdp_models"."customer_rfm";
SELECT 'unique_customer_rfm_customer_key' AS test, count(*) AS failures FROM (select "customer_key" as unique_field, count(*) as n_records from "regress_dbt_cdp_models"."customer_rfm" where "customer_key" is not null group by "customer_key" having count(*) > 1) dbt_internal_test;
SELECT 'not_null_customer_rfm_customer_key' AS test, count(*) AS failures FROM (select "customer_key" from "regress_dbt_cdp_models"."customer_rfm" where "customer_key" is null) dbt_internal_test;
SELECT 'not_null_customer_rfm_recency_days' AS test, count(*) AS failures FROM (select "recency_days" from "regress_dbt_cdp_models"."customer_rfm" where "recency_days" is null) dbt_internal_test;
SELECT 'not_null_customer_rfm_frequency' AS test, count(*) AS failures FROM (select "frequency" from "regress_dbt_cdp_models"."customer_rfm" where "frequency" is null) dbt_internal_test;
SELECT 'not_null_customer_rfm_r' AS test, count(*) AS failures FROM (select "r" from "regress_dbt_cdp_models"."customer_rfm" where "r" is null) dbt_internal_test;
SELECT 'accepted_values_customer_rfm_r' AS test, count(*) AS failures FROM (with all_values as (select "r" as value_field, count(*) as n_records from "regress_dbt_cdp_models"."customer_rfm" group by "r") select * from all_values where value_field not in (1, 2, 3, 4, 5)) dbt_internal_test;
SELECT 'accepted_values_customer_rfm_f' AS test, count(*) AS failures FROM (with all_values as (select "f" as value_field, count(*) as n_records from "regress_dbt_cdp_models"."customer_rfm" group by "f") select * from all_values where value_field not in (1, 2, 3, 4, 5)) dbt_internal_test;
SELECT 'accepted_values_customer_rfm_m' AS test, count(*) AS failures FROM (with all_values as (select "m" as value_field, count(*) as n_records from "regress_dbt_cdp_models"."customer_rfm" group by "m") select * from all_values where value_field not in (1, 2, 3, 4, 5)) dbt_internal_test;
SELECT 'not_null_customer_rfm_segment' AS test, count(*) AS failures FROM (select "segment" from "regress_dbt_cdp_models"."customer_rfm" where "segment" is null) dbt_internal_test;

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
