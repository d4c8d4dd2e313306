-- Identity merge erasure: forget_identifier and forget_person remove data, split what depended on
-- it, and tombstones keep later runs (incremental or full) from linking it again.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SET client_min_messages = warning;
TRUNCATE cdp.persons, cdp.identity_map, cdp.person_identifiers, cdp.identity_cuts, cdp.merge_history,
         cdp.merge_runs, cdp.identity_links, cdp.identity_tombstones RESTART IDENTITY;
ALTER SEQUENCE cdp.person_id_seq RESTART;

CREATE TABLE obs (source text, source_key text, id_type text, id_value text, observed_at timestamptz);
INSERT INTO obs VALUES
  -- Ann: an account order, a web session and a store visit joined by her email and phone.
  ('shop', 'o1', 'customer_id', '11', '2024-01-01'),
  ('shop', 'o1', 'email', 'ann@mail.com', '2024-01-01'),
  ('shop', 'o2', 'customer_id', '11', '2024-01-02'),
  ('web', 's1', 'email', 'Ann@Mail.com', '2024-01-03'),
  ('web', 's1', 'phone', '+1 212 555 0100', '2024-01-03'),
  ('pos', 'p1', 'phone', '(212) 555-0100', '2024-01-04'),
  ('pos', 'p1', 'loyalty_id', 'L-1', '2024-01-04'),
  -- Bob: two records joined by a cookie.
  ('shop', 'o3', 'customer_id', '12', '2024-01-05'),
  ('shop', 'o3', 'anonymous_id', 'bob-cookie', '2024-01-05'),
  ('web', 's2', 'anonymous_id', 'bob-cookie', '2024-01-05'),
  ('web', 's2', 'email', 'bob@mail.com', '2024-01-05');
CALL cdp.merge_identities('obs');
SELECT person_id AS ann FROM cdp.identity_map WHERE source_key = 'o1' \gset
SELECT person_id AS bob FROM cdp.identity_map WHERE source_key = 'o3' \gset
SELECT source, source_key, person_id = :ann AS ann, person_id = :bob AS bob FROM cdp.identity_map ORDER BY 1, 2;

-- Forget Ann's phone: the store visit, tied to her only by that phone, splits off as a new person.
CALL cdp.forget_identifier('phone', '212-555-0100');
SELECT source, source_key, person_id = :ann AS ann FROM cdp.identity_map WHERE person_id <> :bob ORDER BY 1, 2;
SELECT count(*) AS phone_rows FROM cdp.person_identifiers WHERE id_type = 'phone';
SELECT count(*) AS phone_links FROM cdp.identity_links WHERE id_type = 'phone';
SELECT kind, count(*) FROM cdp.identity_tombstones GROUP BY kind ORDER BY kind;
-- The tombstone stores a hash, never the value.
SELECT key_sha256 = sha256(convert_to('phone', 'UTF8') || '\x00'::bytea || convert_to('+12125550100', 'UTF8'))
       AS hashed FROM cdp.identity_tombstones;
-- The split is recorded without the erased value.
SELECT kind, from_person = :ann AS from_ann, to_person > :bob AS to_new_person, id_type, id_value
  FROM cdp.merge_history ORDER BY run_id, to_person;
SELECT person_id AS p1_person FROM cdp.identity_map WHERE source_key = 'p1' \gset

-- Later runs never link it again, incremental or full, even though the observations still carry it.
CALL cdp.merge_identities('obs');
CALL cdp.merge_identities('obs', full_rebuild => true);
SELECT count(*) AS phone_rows FROM cdp.person_identifiers WHERE id_type = 'phone';
SELECT source_key, person_id = :ann AS ann, person_id = :p1_person AS p1_person FROM cdp.identity_map
 WHERE person_id <> :bob ORDER BY 1;
SELECT skipped->>'forgotten' AS forgotten_links FROM cdp.merge_runs ORDER BY run_id DESC LIMIT 1;
SELECT cdp.person_id('phone', '+12125550100') AS phone_person;

-- Forget Bob entirely: his records, identifiers and person are gone and stay gone.
CALL cdp.forget_person(:bob);
SELECT count(*) AS bob_rows FROM cdp.identity_map WHERE person_id = :bob;
SELECT count(*) AS bob_person FROM cdp.persons WHERE person_id = :bob;
SELECT id_type, id_value FROM cdp.person_identifiers WHERE id_value LIKE 'bob%' OR id_value = '12' ORDER BY 1, 2;
SELECT count(*) AS bob_links FROM cdp.identity_links WHERE source_key IN ('o3', 's2') OR id_value LIKE 'bob%';
CALL cdp.merge_identities('obs', full_rebuild => true);
SELECT source, source_key FROM cdp.identity_map ORDER BY 1, 2;
SELECT cdp.person_id('customer_id', '12') AS bob_again;
SELECT kind, count(*) FROM cdp.identity_tombstones GROUP BY kind ORDER BY kind;
SELECT run_id, kind, records, persons, splits FROM cdp.merge_runs ORDER BY run_id;

-- cdp.identity_links is unlogged: a crash empties it while the results stay. An erasure then refuses
-- (re-resolving nothing would drop every record), and the next merge, though incremental, re-reads its
-- relation in full: the same persons with the same ids, and the links stored again.
SELECT relpersistence AS links_persistence FROM pg_class WHERE oid = 'cdp.identity_links'::regclass;
CREATE TEMP TABLE map_before AS SELECT source, source_key, person_id FROM cdp.identity_map;
TRUNCATE cdp.identity_links;
\set VERBOSITY sqlstate
CALL cdp.forget_identifier('email', 'ann@mail.com');
\set VERBOSITY default
CALL cdp.forget_identifier('email', 'ann@mail.com');
CALL cdp.merge_identities('obs');
SELECT full_rebuild, observations_read FROM cdp.merge_runs ORDER BY run_id DESC LIMIT 1;
SELECT count(*) AS records_moved FROM map_before b FULL JOIN cdp.identity_map m USING (source, source_key)
 WHERE b.person_id IS DISTINCT FROM m.person_id;
SELECT count(*) AS links_stored_again FROM cdp.identity_links;

-- Bad calls.
\set VERBOSITY sqlstate
CALL cdp.forget_person(999999);
CALL cdp.forget_identifier('fax', '123');
CALL cdp.forget_identifier('email', '   ');
CALL cdp.forget_identifier(NULL, 'x');
\set VERBOSITY default
CALL cdp.forget_person(999999);
RESET client_min_messages;
DROP TABLE obs;
