-- Identity merge, bad input: every case has a documented outcome or an ERROR with its SQLSTATE,
-- and a failed call writes nothing.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET client_min_messages = warning;
TRUNCATE cdp.persons, cdp.identity_map, cdp.person_identifiers, cdp.identity_cuts, cdp.merge_history,
         cdp.merge_runs, cdp.identity_links, cdp.identity_tombstones RESTART IDENTITY;
ALTER SEQUENCE cdp.person_id_seq RESTART;
-- Runs a statement and shows SQLSTATE and message of its error (or 'ok').
CREATE FUNCTION try(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE statement;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- NULL and empty values are skipped and counted; invalid values are kept as excluded; very long values
-- (over 512 bytes) are skipped and counted.
CREATE TABLE obs (source text, source_key text, id_type text, id_value text, observed_at timestamptz);
INSERT INTO obs VALUES
  ('shop', 'o1', 'customer_id', '1', '2024-01-01'),
  ('shop', 'o1', 'email', NULL, '2024-01-01'),
  ('shop', 'o1', 'email', '', '2024-01-01'),
  ('shop', 'o1', 'email', '   ', '2024-01-01'),
  ('shop', NULL, 'email', 'a@mail.com', '2024-01-01'),
  (NULL, 'o9', 'email', 'a@mail.com', '2024-01-01'),
  ('shop', 'o2', NULL, 'a@mail.com', '2024-01-01'),
  ('shop', 'o2', 'email', 'a@mail.com', NULL),
  ('shop', '', 'email', 'a@mail.com', '2024-01-01'),
  ('shop', 'o3', 'email', repeat('x', 600) || '@mail.com', '2024-01-01'),
  ('shop', repeat('k', 10000), 'email', 'a@mail.com', '2024-01-01'),
  ('shop', 'o4', 'email', 'not-an-email', '2024-01-01'),
  ('shop', 'o4', 'phone', 'call me', '2024-01-01'),
  ('shop', 'o4', 'device_id', repeat('d', 512), '2024-01-01');
CALL cdp.merge_identities('obs');
SELECT observations_read, new_observations, skipped, excluded, records FROM cdp.merge_runs;
SELECT source, left(source_key, 20) AS source_key, person_id IS NOT NULL AS has_person FROM cdp.identity_map ORDER BY 1, 2;
SELECT id_type, left(id_value, 20) AS id_value, length(id_value), status, reason FROM cdp.person_identifiers ORDER BY 1, 2;

-- Missing and mistyped columns: one error naming all of them; nothing written.
CREATE TABLE no_cols (source text, id_value text);
CREATE TABLE bad_types (source text, source_key integer, id_type text, id_value text, observed_at timestamp);
CREATE TABLE ok_varchar (source varchar(10), source_key varchar, id_type text, id_value character varying,
                         observed_at timestamptz);
INSERT INTO ok_varchar VALUES ('shop', 'o1', 'email', 'a@mail.com', '2024-01-02');
SELECT try($$CALL cdp.merge_identities('no_cols')$$);
SELECT try($$CALL cdp.merge_identities('bad_types')$$);
SELECT try($$CALL cdp.merge_identities('ok_varchar')$$);
SELECT try($$CALL cdp.merge_identities('does_not_exist')$$);
SELECT try($$CALL cdp.merge_identities(NULL)$$);
SELECT try($$CALL cdp.merge_identities('pg_catalog.pg_class')$$);

-- An id_type not in cdp.identifier_types: error naming it (all of them), nothing written.
CREATE TABLE unknown_types (LIKE obs);
INSERT INTO unknown_types VALUES ('shop', 'o7', 'email', 'z@mail.com', '2024-02-01'),
  ('shop', 'o7', 'fax', '123', '2024-02-01'), ('shop', 'o8', 'Email', 'y@mail.com', '2024-02-01');
SELECT count(*) AS runs_before FROM cdp.merge_runs;
SELECT try($$CALL cdp.merge_identities('unknown_types')$$);
SELECT count(*) AS runs_after FROM cdp.merge_runs;
SELECT count(*) AS o7_records FROM cdp.identity_map WHERE source_key = 'o7';
SELECT count(*) AS stored_links FROM cdp.identity_links WHERE source_key IN ('o7', 'o8');

-- Names needing quotes: a schema and a table with spaces, capitals and a quote; a view over UNION ALL.
CREATE SCHEMA "Shop ""Data""";
CREATE TABLE "Shop ""Data"""."Web Sessions" (session_id bigint, cookie text, seen timestamptz);
INSERT INTO "Shop ""Data"""."Web Sessions" VALUES (1, 'ck-1', '2024-03-01'), (2, 'ck-1', '2024-03-02');
CREATE TABLE "Shop ""Data""".orders (order_id bigint, customer bigint, email text, ordered_at timestamptz);
INSERT INTO "Shop ""Data""".orders VALUES (10, 1, 'A@Mail.com', '2024-03-03');
CREATE VIEW "Shop ""Data"""."All; Observations" AS
  SELECT 'web' AS source, session_id::text AS source_key, 'anonymous_id' AS id_type, cookie AS id_value,
         seen AS observed_at FROM "Shop ""Data"""."Web Sessions"
  UNION ALL SELECT 'shop', order_id::text, 'customer_id', customer::text, ordered_at FROM "Shop ""Data""".orders
  UNION ALL SELECT 'shop', order_id::text, 'email', email, ordered_at FROM "Shop ""Data""".orders;
SELECT try($$CALL cdp.merge_identities('"Shop ""Data"""."All; Observations"')$$);
SELECT observations::text, new_observations FROM cdp.merge_runs ORDER BY run_id DESC LIMIT 1;
SELECT source, source_key, person_id = cdp.person_id('customer_id', '1') AS customer_1
  FROM cdp.identity_map ORDER BY 1, 2;

-- A relation the caller cannot read: PostgreSQL's own permission error, nothing written.
CREATE ROLE regress_cdp_identity_reader;
GRANT USAGE ON SCHEMA cdp TO regress_cdp_identity_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA cdp TO regress_cdp_identity_reader;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA cdp TO regress_cdp_identity_reader;
CREATE TABLE secret_obs (LIKE obs);
INSERT INTO secret_obs VALUES ('shop', 'secret', 'email', 's@mail.com', '2024-04-01');
REVOKE ALL ON secret_obs FROM PUBLIC;
GRANT SELECT ON ok_varchar TO regress_cdp_identity_reader;
SET ROLE regress_cdp_identity_reader;
SELECT try($$CALL cdp.merge_identities('secret_obs')$$);
SELECT try($$CALL cdp.merge_identities('ok_varchar')$$);
RESET ROLE;
SELECT count(*) AS secret_records FROM cdp.identity_map WHERE source_key = 'secret';
SELECT observations::text FROM cdp.merge_runs ORDER BY run_id DESC LIMIT 1;
REVOKE ALL ON ALL TABLES IN SCHEMA cdp FROM regress_cdp_identity_reader;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA cdp FROM regress_cdp_identity_reader;
REVOKE ALL ON SCHEMA cdp FROM regress_cdp_identity_reader;
REVOKE ALL ON ok_varchar FROM regress_cdp_identity_reader;
DROP ROLE regress_cdp_identity_reader;

-- Rules that are themselves bad are refused by the tables' constraints.
SELECT try($$INSERT INTO cdp.identifier_types (id_type, normaliser) VALUES ('fax', 'soundex')$$);
SELECT try($$INSERT INTO cdp.identifier_types (id_type, max_per_person) VALUES ('fax', 0)$$);
SELECT try($$INSERT INTO cdp.identifier_blocklist (id_type, value) VALUES ('fax', 'x')$$);
SELECT try($$UPDATE cdp.identity_settings SET default_phone_region = 'usa'$$);
SELECT try($$SELECT cdp.normalize_identifier('fax', '1')$$);
SELECT cdp.normalize_identifier(NULL, 'x') IS NULL AS strict_null;

RESET client_min_messages;
DROP SCHEMA "Shop ""Data""" CASCADE;
DROP TABLE obs, no_cols, bad_types, ok_varchar, unknown_types, secret_obs;
DROP FUNCTION try(text);
