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
