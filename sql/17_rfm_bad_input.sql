-- Bad input to cdp.rfm_agg and cdp.rfm: each case has a documented result or an ERROR whose
-- SQLSTATE is shown (pg_temp.outcome runs a query, consuming every column of every row, and reports
-- 'ok: <rows>' or 'SQLSTATE: message').
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET TimeZone = 'UTC';

CREATE FUNCTION pg_temp.outcome(statement text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  rows bigint;
BEGIN
  EXECUTE 'SELECT count(s) FROM (' || statement || ') s' INTO rows;  -- the whole row: nothing pruned
  RETURN 'ok: ' || rows || ' rows';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

CREATE TABLE bad_orders (customer_id bigint, ordered_at timestamptz, amount numeric, note text,
                         price double precision);
INSERT INTO bad_orders VALUES
  (1, '2026-06-01', 10.00, 'x', 10), (1, '2026-06-05', 5.00, 'x', 5), (2, '2026-06-02', 7.50, 'x', 7.5);

-- NULL customer keys: the rows are ignored (they cannot be attributed to anyone).
INSERT INTO bad_orders VALUES (NULL, '2026-06-03', 1000.00, 'no customer', 1000);
SELECT customer_key, frequency, monetary FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01')
 ORDER BY 1;
-- NULL amounts: ignored by both functions (like sum()).
INSERT INTO bad_orders VALUES (2, '2026-06-20', NULL, 'no amount', NULL);
SELECT customer_key, recency_days, frequency, monetary
  FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01') ORDER BY 1;
SELECT customer_id, (cdp.rfm_agg(ordered_at, amount)).orders FROM bad_orders GROUP BY 1 ORDER BY 1;
-- Orders after as_of: ignored (customer 3 only has one, so it is not returned).
INSERT INTO bad_orders VALUES (3, '2026-07-02', 20.00, 'future', 20), (1, '2026-07-01 00:00:01', 30.00, 'future', 30);
SELECT customer_key, recency_days, frequency, monetary
  FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01') ORDER BY 1;

-- NaN and +/-Infinity amounts: ERROR 22023 from both functions (no monetary value).
CREATE TABLE nan_orders AS SELECT * FROM bad_orders;
INSERT INTO nan_orders VALUES (4, '2026-06-01', 'NaN', 'nan', 'NaN');
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('nan_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01')$$);
SELECT pg_temp.outcome($$SELECT cdp.rfm_agg(ordered_at, amount) FROM nan_orders$$);
UPDATE nan_orders SET amount = 'Infinity' WHERE customer_id = 4;
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('nan_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01')$$);
SELECT pg_temp.outcome($$SELECT cdp.rfm_agg(ordered_at, amount) FROM nan_orders$$);
UPDATE nan_orders SET amount = '-Infinity' WHERE customer_id = 4;
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('nan_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01')$$);
SELECT pg_temp.outcome($$SELECT cdp.rfm_agg(ordered_at, amount) FROM nan_orders$$);
-- ... unless the bad row is after as_of, where it is never read.
UPDATE nan_orders SET ordered_at = '2027-01-01' WHERE customer_id = 4;
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('nan_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01')$$);

-- An order at -infinity: ERROR 22008 from both functions (as from the lifecycle aggregates and
-- refresh_profiles; it has no recency). +infinity is after every as_of: never read by cdp.rfm.
UPDATE nan_orders SET amount = 5, ordered_at = '-infinity' WHERE customer_id = 4;
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('nan_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01')$$);
SELECT pg_temp.outcome($$SELECT cdp.rfm_agg(ordered_at, amount) FROM nan_orders$$);
UPDATE nan_orders SET ordered_at = 'infinity' WHERE customer_id = 4;
SELECT count(*) AS scored FROM cdp.rfm('nan_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01');

-- NULL as_of: ERROR 22004 (so does any other NULL argument except segment_map); infinite as_of: 22023.
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'amount', NULL)$$);
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', NULL, 'ordered_at', 'amount', '2026-07-01')$$);
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm(NULL, 'customer_id', 'ordered_at', 'amount', '2026-07-01')$$);
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01', NULL)$$);
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'amount', 'infinity')$$);

-- Empty table: zero rows (and rfm_agg gives NULL).
CREATE TABLE empty_orders (LIKE bad_orders);
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('empty_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01')$$);
SELECT cdp.rfm_agg(ordered_at, amount) IS NULL AS rfm_agg_of_nothing_is_null FROM empty_orders;

-- bins outside 1..100: ERROR 22023.
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01', 0)$$);
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01', -3)$$);
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01', 101)$$);
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01', 100)$$);

-- A missing column: ERROR 42703 naming the column and the table; a missing table: 42P01 (regclass).
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', 'customer', 'ordered_at', 'amount', '2026-07-01')$$);
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', 'customer_id', 'ordered', 'amount', '2026-07-01')$$);
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'total', '2026-07-01')$$);
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'ctid', '2026-07-01')$$);
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('no_such_table', 'customer_id', 'ordered_at', 'amount', '2026-07-01')$$);
-- A column of the wrong type: ERROR 42804 naming it (floating-point money is refused, with a hint).
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', 'customer_id', 'note', 'amount', '2026-07-01')$$);
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'note', '2026-07-01')$$);
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'price', '2026-07-01')$$);
-- Not a table or view: 42809.
CREATE SEQUENCE bad_sequence;
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_sequence', 'last_value', 'log_cnt', 'is_called', '2026-07-01')$$);

-- An unknown segment map: ERROR 42704.
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01', 5, 'no such map')$$);

-- Names with quotes and spaces are quoted, never injected.
CREATE TABLE "My ""Orders"" 2026" ("Customer Id" text, "Ordered ""At""" timestamptz, "amount; DROP TABLE bad_orders; --" numeric);
INSERT INTO "My ""Orders"" 2026" VALUES ('a b', '2026-06-01', 12.50), ('a b', '2026-06-11', 2.50), ('c"d', '2026-06-30 12:00', 1);
SELECT customer_key, recency_days, frequency, monetary
  FROM cdp.rfm('"My ""Orders"" 2026"', 'Customer Id', 'Ordered "At"', 'amount; DROP TABLE bad_orders; --', '2026-07-01')
 ORDER BY 1;
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('"My ""Orders"" 2026"', 'customer id', 'Ordered "At"', 'x', '2026-07-01')$$);
SELECT count(*) AS bad_orders_still_there FROM bad_orders;

-- A table the caller may not read: ERROR 42501 from PostgreSQL itself (cdp.rfm is SECURITY INVOKER).
CREATE ROLE rfm_test_reader;
GRANT USAGE ON SCHEMA cdp TO rfm_test_reader;
SET ROLE rfm_test_reader;
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01', segment_map => NULL)$$);
RESET ROLE;
GRANT SELECT (customer_id, ordered_at) ON bad_orders TO rfm_test_reader;  -- not the amount column
SET ROLE rfm_test_reader;
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01', segment_map => NULL)$$);
RESET ROLE;
GRANT SELECT ON bad_orders TO rfm_test_reader;
SET ROLE rfm_test_reader;
SELECT pg_temp.outcome($$SELECT * FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01', segment_map => NULL)$$);
RESET ROLE;
-- Row-level security applies to what cdp.rfm reads.
ALTER TABLE bad_orders ENABLE ROW LEVEL SECURITY;
CREATE POLICY only_customer_1 ON bad_orders FOR SELECT TO rfm_test_reader USING (customer_id = 1);
SET ROLE rfm_test_reader;
SELECT customer_key, frequency FROM cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01', segment_map => NULL);
RESET ROLE;
DROP POLICY only_customer_1 ON bad_orders;
REVOKE ALL ON bad_orders FROM rfm_test_reader;
REVOKE ALL ON SCHEMA cdp FROM rfm_test_reader;
DROP ROLE rfm_test_reader;

-- cdp.rfm returns a set; it works in a select list too.
SELECT pg_temp.outcome($$SELECT (cdp.rfm('bad_orders', 'customer_id', 'ordered_at', 'amount', '2026-07-01')).r$$);

DROP TABLE bad_orders, nan_orders, empty_orders, "My ""Orders"" 2026";
DROP SEQUENCE bad_sequence;
