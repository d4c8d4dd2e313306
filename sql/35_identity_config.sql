-- Identity merge, rules as data: pg_dump keeps exactly the rows WHERE NOT builtin, so every change to a
-- shipped row must clear builtin, deleting a shipped row must leave a disabled row behind, and a row
-- restored with a shipped row's key must replace it (test/dump_restore.sh does the real dump and restore).
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET client_min_messages = warning;
-- On a fresh extension (earlier tests edited the rules), rolled back at the end so later tests see the
-- state they left.
BEGIN;
DROP EXTENSION pg_cdp CASCADE;
CREATE EXTENSION pg_cdp;
CREATE FUNCTION pg_temp.try(statement text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE statement;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- The three tables are dumped WHERE NOT builtin; every shipped row starts builtin.
SELECT c.relname, x.cond
  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(oid, cond) JOIN pg_class c ON c.oid = x.oid
 WHERE e.extname = 'pg_cdp' AND c.relname IN ('identifier_types', 'identifier_blocklist', 'identity_settings')
 ORDER BY 1;
SELECT 'types' AS t, count(*), count(*) FILTER (WHERE builtin AND shipped AND enabled) FROM cdp.identifier_types
UNION ALL SELECT 'blocklist', count(*), count(*) FILTER (WHERE builtin AND shipped AND enabled) FROM cdp.identifier_blocklist
UNION ALL SELECT 'settings', count(*), count(*) FILTER (WHERE builtin) FROM cdp.identity_settings;

-- Editing a shipped row makes it a user row (dumped); builtin cannot be set back by hand.
UPDATE cdp.identifier_types SET hub_threshold = 1000 WHERE id_type = 'email';
UPDATE cdp.identifier_types SET builtin = true, shipped = false, description = 'ids' WHERE id_type = 'customer_id';
UPDATE cdp.identity_settings SET default_phone_region = 'GB';
UPDATE cdp.identifier_blocklist SET reason = 'our placeholder' WHERE id_type IS NULL AND value = 'none';
SELECT id_type, hub_threshold, description, shipped, builtin, enabled FROM cdp.identifier_types
 WHERE NOT builtin ORDER BY 1;
SELECT id_type, value, reason, shipped, builtin, enabled FROM cdp.identifier_blocklist WHERE NOT builtin ORDER BY 1, 2;
SELECT default_phone_region, builtin FROM cdp.identity_settings;

-- Only pg_cdp adds builtin rows; a shipped key cannot change; TRUNCATE and deleting the settings are refused.
SELECT pg_temp.try($$INSERT INTO cdp.identifier_types (id_type, builtin, shipped) VALUES ('fax', true, true)$$);
SELECT pg_temp.try($$UPDATE cdp.identifier_types SET id_type = 'mail' WHERE id_type = 'email'$$);
SELECT pg_temp.try($$UPDATE cdp.identifier_blocklist SET value = 'nothing' WHERE id_type IS NULL AND value = 'none'$$);
SELECT pg_temp.try($$TRUNCATE cdp.identifier_blocklist$$);
SELECT pg_temp.try($$TRUNCATE cdp.identifier_types CASCADE$$);
SELECT pg_temp.try($$DELETE FROM cdp.identity_settings$$);

-- A user's own rows behave as plain rows: inserted unshipped (whatever they claim), renamed, deleted for real.
INSERT INTO cdp.identifier_types (id_type, normaliser, priority, shipped) VALUES ('fax', 'trim', 10, true);
INSERT INTO cdp.identifier_blocklist (id_type, value) VALUES ('fax', '000');
UPDATE cdp.identifier_types SET id_type = 'telefax' WHERE id_type = 'fax';
SELECT id_type, value, shipped, builtin FROM cdp.identifier_blocklist WHERE id_type = 'telefax';
DELETE FROM cdp.identifier_types WHERE id_type = 'telefax';
SELECT count(*) AS telefax_rows FROM cdp.identifier_types t FULL JOIN cdp.identifier_blocklist b USING (id_type)
 WHERE id_type = 'telefax';

-- Deleting a shipped row disables it (and cascades nowhere): the row stays, as a user row, so the deletion
-- survives pg_dump. Deleting an edited shipped row does the same.
DELETE FROM cdp.identifier_blocklist WHERE id_type = 'email' AND value = 'a@a.com';
DELETE FROM cdp.identifier_types WHERE id_type IN ('loyalty_id', 'email');
SELECT id_type, enabled, shipped, builtin FROM cdp.identifier_types WHERE NOT enabled ORDER BY 1;
SELECT id_type, value, enabled, shipped, builtin FROM cdp.identifier_blocklist WHERE NOT enabled ORDER BY 1, 2;
SELECT count(*) AS email_blocklist_rows FROM cdp.identifier_blocklist WHERE id_type = 'email';
UPDATE cdp.identifier_types SET enabled = true WHERE id_type = 'email';

-- The next run honours it: a@a.com now links (its blocklist entry is off), loyalty_id is unknown,
-- and the phone region is GB.
CREATE TABLE obs (source text, source_key text, id_type text, id_value text, observed_at timestamptz);
INSERT INTO obs VALUES ('shop', 'o1', 'email', 'a@a.com', '2024-01-01'),
                       ('shop', 'o2', 'email', 'A@a.com', '2024-01-01'),
                       ('shop', 'o3', 'email', 'test@test.com', '2024-01-01'),
                       ('shop', 'o3', 'anonymous_id', 'None', '2024-01-01'),
                       ('shop', 'o3', 'phone', '020 7946 0018', '2024-01-01');
CALL cdp.merge_identities('obs');
SELECT id_type, id_value, status, reason, records FROM cdp.person_identifiers ORDER BY 1, 2;
SELECT count(DISTINCT person_id) AS persons_of_o1_o2 FROM cdp.identity_map WHERE source_key IN ('o1', 'o2');
INSERT INTO obs VALUES ('shop', 'o4', 'loyalty_id', 'L1', '2024-01-02');
SELECT pg_temp.try($$CALL cdp.merge_identities('obs')$$);
SELECT pg_temp.try($$SELECT cdp.person_id('loyalty_id', 'L1')$$);

-- What a restore does: CREATE EXTENSION has put the builtin rows back, then COPY inserts the dumped user
-- rows with the same keys. Each replaces its builtin row in place (no duplicate key, no cascade).
SELECT count(*) AS blocklist_rows_before FROM cdp.identifier_blocklist;
INSERT INTO cdp.identifier_blocklist (id_type, value, match, reason, enabled, shipped, builtin)
VALUES (NULL, 'n/a', 'exact', 'restored', false, true, false);
INSERT INTO cdp.identifier_types (id_type, normaliser, max_per_person, priority, hub_threshold, description,
                                  enabled, shipped, builtin)
VALUES ('device_id', 'lower', NULL, 20, 50, 'restored', true, true, false);
SELECT count(*) AS blocklist_rows_after FROM cdp.identifier_blocklist;
SELECT id_type, value, reason, enabled, shipped, builtin FROM cdp.identifier_blocklist WHERE value = 'n/a';
SELECT id_type, hub_threshold, description, shipped, builtin FROM cdp.identifier_types WHERE id_type = 'device_id';
SELECT count(*) AS any_type_blocklist_rows FROM cdp.identifier_blocklist WHERE id_type IS NULL;
-- A key that is no longer a builtin row is an ordinary insert: duplicates are refused.
SELECT pg_temp.try($$INSERT INTO cdp.identifier_types (id_type) VALUES ('device_id')$$);
ROLLBACK;
RESET client_min_messages;

-- normalize_identifier and person_id cache the rules for one statement only: a PL/pgSQL loop (whose
-- expression state lives for the transaction) sees a rule changed between two of its statements.
BEGIN;
DO $$
DECLARE
  i integer;
BEGIN
  FOR i IN 1..2 LOOP
    RAISE NOTICE 'pass %: %', i, cdp.normalize_identifier('customer_id', '  AbC  ');
    UPDATE cdp.identifier_types SET normaliser = 'lower' WHERE id_type = 'customer_id';
  END LOOP;
END $$;
ROLLBACK;
