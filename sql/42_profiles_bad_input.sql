-- Profiles: bad input to configure_orders and refresh_profiles, each with its SQLSTATE.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
-- try(statement): 'ok' or 'SQLSTATE: message', so each outcome shows its SQLSTATE.
CREATE FUNCTION pg_temp.try(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE statement;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  DECLARE detail text;
  BEGIN
    GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(nullif(' (' || detail || ')', ' ()'), '');
  END;
END $$;

CREATE SCHEMA prof_bad;
CREATE TABLE prof_bad.orders (
  order_id    bigint,
  customer_id bigint,
  ordered_at  timestamptz,
  amount      numeric(12,2),
  price_float double precision,
  label       integer,
  currency    text,
  "Odd ""name"" col" text
);
CREATE TABLE prof_bad.lines (
  order_id    bigint,
  customer_id bigint,
  ordered_at  timestamptz,
  amount      numeric(12,2),
  currency    text
);
INSERT INTO prof_bad.lines VALUES
  (1, 1, '2026-01-10 12:00+00', 10, 'EUR'),
  (2, 2, '2026-01-11 12:00+00', 20, 'USD'),
  (3, 2, '2026-12-11 12:00+00', 20, 'GBP');

-- Refresh before any configuration: 55000 (object not in prerequisite state).
SELECT pg_temp.try($s$CALL cdp.refresh_profiles('2026-07-01')$s$);

-- A missing column (42703), named in the message.
SELECT pg_temp.try($s$SELECT cdp.configure_orders('prof_bad.orders', 'order_id', 'customer', 'ordered_at', 'amount')$s$);
SELECT pg_temp.try($s$SELECT cdp.configure_orders('prof_bad.orders', 'order_id', 'customer_id', 'ordered_at', 'amount',
                            currency_column => 'currency_code')$s$);
-- A column of the wrong type (42804), named in the message.
SELECT pg_temp.try($s$SELECT cdp.configure_orders('prof_bad.orders', 'order_id', 'customer_id', 'label', 'amount')$s$);
SELECT pg_temp.try($s$SELECT cdp.configure_orders('prof_bad.orders', 'order_id', 'customer_id', 'ordered_at', 'price_float')$s$);
SELECT pg_temp.try($s$SELECT cdp.configure_orders('prof_bad.orders', 'order_id', 'customer_id', 'ordered_at', 'amount',
                            currency_column => 'label')$s$);
-- Names are matched exactly (case and quotes), never interpolated.
SELECT pg_temp.try($s$SELECT cdp.configure_orders('prof_bad.orders', 'order_id', 'Customer_ID', 'ordered_at', 'amount')$s$);
SELECT pg_temp.try($s$SELECT cdp.configure_orders('prof_bad.orders', 'order_id', 'customer_id; DROP TABLE prof_bad.orders', 'ordered_at', 'amount')$s$);
SELECT cdp.configure_orders('prof_bad.orders', 'order_id', 'Odd "name" col', 'ordered_at', 'amount') IS NOT NULL AS quoted_name_accepted;
-- NULL arguments (22004), not a table (42809), missing relation (42P01 from regclass).
SELECT pg_temp.try($s$SELECT cdp.configure_orders(NULL, 'order_id', 'customer_id', 'ordered_at', 'amount')$s$);
SELECT pg_temp.try($s$SELECT cdp.configure_orders('prof_bad.orders', NULL, 'customer_id', 'ordered_at', 'amount')$s$);
SELECT pg_temp.try($s$SELECT cdp.configure_orders('prof_bad.orders_id_seq', 'order_id', 'customer_id', 'ordered_at', 'amount')$s$);
CREATE SEQUENCE prof_bad.seq;
SELECT pg_temp.try($s$SELECT cdp.configure_orders('prof_bad.seq', 'order_id', 'customer_id', 'ordered_at', 'amount')$s$);
-- Both ways of finding a person at once, an empty source, an unknown time zone, bins out of range (22023).
SELECT pg_temp.try($s$SELECT cdp.configure_orders('prof_bad.orders', 'order_id', 'customer_id', 'ordered_at', 'amount',
                            customer_id_type => 'customer_id', person_source => 'orders')$s$);
SELECT pg_temp.try($s$SELECT cdp.configure_orders('prof_bad.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', person_source => ' ')$s$);
SELECT pg_temp.try($s$SELECT cdp.configure_orders('prof_bad.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', customer_id_type => 'shoe_size')$s$);
SELECT pg_temp.try($s$SELECT cdp.configure_orders('prof_bad.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', shop_time_zone => 'Mars/Olympus')$s$);
SELECT pg_temp.try($s$SELECT cdp.configure_orders('prof_bad.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', bins => 0)$s$);
SELECT pg_temp.try($s$SELECT cdp.configure_orders('prof_bad.orders', 'order_id', 'customer_id', 'ordered_at', 'amount', bins => 101)$s$);
-- Every failed call left the configuration as it was (the one accepted call above).
SELECT orders_table, customer_column, person_match, shop_time_zone FROM cdp.profile_config;

-- Re-configuring replaces the single row.
SELECT pg_temp.try($s$SELECT cdp.configure_orders('prof_bad.lines', 'order_id', 'customer_id', 'ordered_at', 'amount',
                            currency_column => 'currency', shop_time_zone => 'Europe/Berlin')$s$);
SELECT count(*) AS config_rows, min(orders_table) AS orders_table, min(currency_column) AS currency_column,
       min(shop_time_zone) AS shop_time_zone
  FROM cdp.profile_config;

-- as_of NULL or infinite (22023).
SELECT pg_temp.try($s$CALL cdp.refresh_profiles(NULL)$s$);
SELECT pg_temp.try($s$CALL cdp.refresh_profiles('infinity')$s$);
-- Mixed currencies without conversion are refused, not summed (22023); the currencies are listed.
SELECT pg_temp.try($s$CALL cdp.refresh_profiles('2026-07-01')$s$);
SELECT count(*) AS snapshots FROM cdp.profile_refreshes;

-- The configured relation disappears: 42P01 at refresh; a configured column disappears: 42703.
SELECT cdp.configure_orders('prof_bad.orders', 'order_id', 'customer_id', 'ordered_at', 'amount') IS NOT NULL AS configured;
ALTER TABLE prof_bad.orders DROP COLUMN amount;
SELECT pg_temp.try($s$CALL cdp.refresh_profiles('2026-07-01')$s$);
DROP TABLE prof_bad.orders;
SELECT pg_temp.try($s$CALL cdp.refresh_profiles('2026-07-01')$s$);

-- Writing entry points are not executable by PUBLIC.
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_can_execute
  FROM pg_proc p
 WHERE p.pronamespace = 'cdp'::regnamespace
   AND p.proname IN ('configure_orders', 'refresh_profiles', 'grant_reader')
 ORDER BY 1;

DELETE FROM cdp.profile_config;
DROP SCHEMA prof_bad CASCADE;
