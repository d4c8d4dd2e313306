-- Bad input to the lifecycle aggregates: each case has a documented result or a clear ERROR.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';

-- Shows SQLSTATE, message and detail of an error (or 'ok').
CREATE FUNCTION pg_temp.err(query text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE state text; message text; detail text;
BEGIN
  EXECUTE query;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL;
  RETURN state || ': ' || message || CASE WHEN detail <> '' THEN ' (' || detail || ')' ELSE '' END;
END $$;

CREATE TEMP TABLE o (customer int, ordered_at timestamptz, amount numeric, as_of timestamptz, policy text);
INSERT INTO o VALUES (1, '2026-06-01', 10, '2026-07-01', 'default'),
                     (1, '2026-06-08', 10, '2026-07-01', 'default'),
                     (2, '2026-06-01', 10, '2026-07-02', 'default');

-- NULL timestamps are ignored; an all-NULL group is a prospect (LEFT JOIN from customers).
SELECT c.id, cdp.lifecycle_stage(o.ordered_at, o.amount, '2026-07-01')
  FROM (VALUES (1), (3)) c(id) LEFT JOIN o ON o.customer = c.id GROUP BY c.id ORDER BY c.id;

-- as_of NULL (22004) or infinite (22023); it must be the same for every row of a group (22023).
SELECT pg_temp.err($q$SELECT cdp.lifecycle(ordered_at, amount, NULL) FROM o$q$);
SELECT pg_temp.err($q$SELECT cdp.lifecycle(ordered_at, amount, 'infinity') FROM o$q$);
SELECT pg_temp.err($q$SELECT cdp.lifecycle(ordered_at, amount, '-infinity') FROM o$q$);
SELECT pg_temp.err($q$SELECT cdp.lifecycle(ordered_at, amount, as_of) FROM o$q$);
SELECT customer, cdp.lifecycle_stage(ordered_at, amount, as_of) FROM o GROUP BY customer ORDER BY customer;  -- fine per group

-- Unknown policy: 42704 naming the known ones. NULL policy: 22004. Varying within a group: 22023.
SELECT pg_temp.err($q$SELECT cdp.lifecycle(ordered_at, amount, '2026-07-01', 'no such policy') FROM o$q$);
SELECT pg_temp.err($q$SELECT cdp.lifecycle(ordered_at, amount, '2026-07-01', repeat('x', 100)) FROM o$q$);
SELECT pg_temp.err($q$SELECT cdp.lifecycle(ordered_at, amount, '2026-07-01', NULL) FROM o$q$);
SELECT pg_temp.err($q$SELECT cdp.lifecycle(ordered_at, amount, '2026-07-01', CASE WHEN amount > 0 THEN 'default' ELSE 'other' END)
  FROM (VALUES (timestamptz '2026-06-01', 10), ('2026-06-02', -1)) v(ordered_at, amount)$q$);
-- a policy column that is the same within each group is fine
SELECT customer, cdp.lifecycle_stage(ordered_at, amount, '2026-07-01', policy) FROM o GROUP BY customer ORDER BY 1;

-- NaN and infinite amounts are not money: 22023. NULL amounts are not orders.
SELECT pg_temp.err($q$SELECT cdp.lifecycle(ordered_at, amount, '2026-07-01') FROM (VALUES (timestamptz '2026-06-01', 'NaN'::numeric)) v(ordered_at, amount)$q$);
SELECT pg_temp.err($q$SELECT cdp.lifecycle(ordered_at, amount, '2026-07-01') FROM (VALUES (timestamptz '2026-06-01', 'Infinity'::numeric)) v(ordered_at, amount)$q$);
SELECT pg_temp.err($q$SELECT cdp.lifecycle(ordered_at, amount, '2026-07-01') FROM (VALUES (timestamptz '2026-06-01', '-Infinity'::numeric)) v(ordered_at, amount)$q$);
SELECT (cdp.lifecycle(ordered_at, amount, '2026-07-01')).orders FROM (VALUES (timestamptz '2026-06-01', NULL::numeric)) v(ordered_at, amount);
-- rows after as_of are ignored entirely, even with a NaN amount
SELECT (cdp.lifecycle(ordered_at, amount, '2026-07-01')).stage FROM (VALUES (timestamptz '2026-08-01', 'NaN'::numeric)) v(ordered_at, amount);

-- ordered_at = -infinity is an error (22008); +infinity is after every as_of and ignored.
SELECT pg_temp.err($q$SELECT cdp.lifecycle(ordered_at, 1, '2026-07-01') FROM (VALUES (timestamptz '-infinity')) v(ordered_at)$q$);
SELECT (cdp.lifecycle(ordered_at, 1, '2026-07-01')).stage FROM (VALUES (timestamptz 'infinity')) v(ordered_at);

-- The support functions take internal arguments: SQL cannot call them with made-up states.
SELECT pg_temp.err($q$SELECT cdp.lifecycle_transfn(NULL::internal, now(), 1.0, now())$q$);

-- Timeline arguments: NULL (22004), a step with a time part, zero or negative (22023), reversed or
-- infinite dates (22023), too many periods (54000), varying within a group (22023).
SELECT pg_temp.err($q$SELECT cdp.lifecycle_timeline(ordered_at, amount, NULL, '2026-07-01', '1 month') FROM o$q$);
SELECT pg_temp.err($q$SELECT cdp.lifecycle_timeline(ordered_at, amount, '2026-01-01', '2026-07-01', NULL) FROM o$q$);
SELECT pg_temp.err($q$SELECT cdp.lifecycle_timeline(ordered_at, amount, '2026-01-01', '2026-07-01', '12 hours') FROM o$q$);
SELECT pg_temp.err($q$SELECT cdp.lifecycle_timeline(ordered_at, amount, '2026-01-01', '2026-07-01', '0 days') FROM o$q$);
SELECT pg_temp.err($q$SELECT cdp.lifecycle_timeline(ordered_at, amount, '2026-01-01', '2026-07-01', '-1 month') FROM o$q$);
SELECT pg_temp.err($q$SELECT cdp.lifecycle_timeline(ordered_at, amount, '2026-07-01', '2026-01-01', '1 month') FROM o$q$);
SELECT pg_temp.err($q$SELECT cdp.lifecycle_timeline(ordered_at, amount, '2026-01-01', 'infinity', '1 month') FROM o$q$);
SELECT pg_temp.err($q$SELECT cdp.lifecycle_timeline(ordered_at, amount, '2000-01-01', '2100-01-01', '1 day') FROM o$q$);
SELECT pg_temp.err($q$SELECT cdp.lifecycle_timeline(ordered_at, amount, as_of::date - 30, '2026-07-01', '1 day') FROM o$q$);
SELECT pg_temp.err($q$SELECT cdp.lifecycle_timeline(ordered_at, amount, '2026-01-01', '2026-07-01', '1 month', 'nope') FROM o$q$);
