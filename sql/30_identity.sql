-- Identity merge: planted traps, stable ids, row-order independence, history, person_id().
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
-- Start from an empty identity state so the ids below are deterministic (progress NOTICEs carry timings).
SET client_min_messages = warning;
TRUNCATE cdp.persons, cdp.identity_map, cdp.person_identifiers, cdp.identity_cuts, cdp.merge_history,
         cdp.merge_runs, cdp.identity_links, cdp.identity_tombstones RESTART IDENTITY;
ALTER SEQUENCE cdp.person_id_seq RESTART;

CREATE TABLE obs (source text, source_key text, id_type text, id_value text, observed_at timestamptz);
INSERT INTO obs VALUES
  -- Jane: account 1, gmail spelled three ways, phone spelled three ways, a cookie.
  ('shop', 'o1', 'customer_id', '1', '2024-01-01'),
  ('shop', 'o1', 'email', 'Jane.Doe+news@googlemail.com', '2024-01-01'),
  ('web', 's1', 'email', ' JANE.DOE@GMAIL.COM ', '2024-01-02'),
  ('web', 's1', 'anonymous_id', 'cookie-jane', '2024-01-02'),
  ('crm', 'c1', 'email', 'janedoe@gmail.com', '2024-01-03'),
  ('crm', 'c1', 'phone', '(415) 555-2671', '2024-01-03'),
  ('pos', 'p1', 'phone', '+1 415.555.2671', '2024-01-04'),
  ('pos', 'p1', 'loyalty_id', 'L-77', '2024-01-04'),
  -- Junk values link nobody: two unrelated accounts share test@test.com, a placeholder phone and "NULL".
  ('shop', 'o2', 'customer_id', '2', '2024-01-05'),
  ('shop', 'o2', 'email', 'test@test.com', '2024-01-05'),
  ('shop', 'o2', 'phone', '000-000-0000', '2024-01-05'),
  ('shop', 'o3', 'customer_id', '3', '2024-01-05'),
  ('shop', 'o3', 'email', 'TEST@test.com', '2024-01-05'),
  ('shop', 'o3', 'phone', '0000000000', '2024-01-05'),
  ('shop', 'o3', 'anonymous_id', 'NULL', '2024-01-05'),
  ('shop', 'o2', 'anonymous_id', 'null', '2024-01-05'),
  ('shop', 'o4', 'customer_id', '4', '2024-01-05'),
  ('shop', 'o4', 'email', 'someone@example.com', '2024-01-05'),
  ('shop', 'o5', 'customer_id', '5', '2024-01-05'),
  ('shop', 'o5', 'email', 'other@example.com', '2024-01-05'),
  -- Conflicting accounts: customers 6 and 7 share a household email; they must stay apart.
  ('shop', 'o6', 'customer_id', '6', '2024-01-06'),
  ('shop', 'o6', 'email', 'family@home.net', '2024-01-06'),
  ('shop', 'o7', 'customer_id', '7', '2024-01-06'),
  ('shop', 'o7', 'email', 'family@home.net', '2024-01-06'),
  -- An invalid phone number is excluded and counted, never linked.
  ('crm', 'c8', 'phone', '12', '2024-01-07'),
  ('crm', 'c9', 'phone', '12', '2024-01-07');
-- A kiosk device on 201 sessions (device_id hub threshold: 200) links nobody.
INSERT INTO obs SELECT 'web', 'kiosk-' || g, 'device_id', 'KIOSK-1', '2024-02-01' FROM generate_series(1, 201) g;
-- A long chain: session i carries cookies i and i+1, so all 1000 sessions are one person.
INSERT INTO obs SELECT 'web', 'chain-' || g, 'anonymous_id', 'chain-cookie-' || (g + k), '2024-03-01'
  FROM generate_series(1, 1000) g, generate_series(0, 1) k;

CALL cdp.merge_identities('obs');

-- Jane's four records are one person; every spelling resolved to one value.
SELECT source, source_key, person_id FROM cdp.identity_map
 WHERE source_key IN ('o1', 's1', 'c1', 'p1') ORDER BY source, source_key;
SELECT id_type, id_value, person_id, status, reason, records FROM cdp.person_identifiers
 WHERE id_type IN ('email', 'phone', 'loyalty_id', 'customer_id') ORDER BY id_type, id_value;
-- Junk: customers 2..5 each stay a person of their own.
SELECT source_key, person_id FROM cdp.identity_map WHERE source_key IN ('o2', 'o3', 'o4', 'o5') ORDER BY 1;
SELECT id_type, id_value, status, reason, records FROM cdp.person_identifiers
 WHERE status = 'excluded' ORDER BY id_type, id_value;
-- Conflicting accounts stay apart; the household email's link to the weaker side is cut and recorded.
SELECT (SELECT person_id FROM cdp.identity_map WHERE source_key = 'o6')
    <> (SELECT person_id FROM cdp.identity_map WHERE source_key = 'o7') AS accounts_apart;
SELECT c.id_type, c.id_value, c.source_key IN ('o6', 'o7') AS cut_from_an_account, c.conflict_type,
       c.record_person = m.person_id AS record_keeps_its_person,
       c.identifier_person = (SELECT person_id FROM cdp.identity_map
                               WHERE source_key IN ('o6', 'o7') AND source_key <> c.source_key) AS email_with_other
  FROM cdp.identity_cuts c JOIN cdp.identity_map m USING (source, source_key) ORDER BY 1, 2;
-- The kiosk sessions are 201 separate persons; the chain is one person of 1000 records.
SELECT count(DISTINCT person_id) AS kiosk_persons FROM cdp.identity_map WHERE source_key LIKE 'kiosk-%';
SELECT count(DISTINCT person_id) AS chain_persons, count(*) AS chain_records
  FROM cdp.identity_map WHERE source_key LIKE 'chain-%';
SELECT p.records FROM cdp.persons p
 WHERE p.person_id = (SELECT person_id FROM cdp.identity_map WHERE source_key = 'chain-1');
-- The run report.
SELECT run_id, kind, full_rebuild, status, observations_read, new_observations, links, records, identifiers,
       persons, new_persons, merges, splits, cut_links, excluded, skipped, jitter
  FROM cdp.merge_runs ORDER BY run_id;
SELECT count(*) AS persons, sum(records) AS records FROM cdp.persons;

-- person_id(): raw values are normalised the same way; excluded and unknown values give NULL.
SELECT cdp.person_id('email', 'JaneDoe+shop@gmail.com') = cdp.person_id('customer_id', '1') AS same_person,
       cdp.person_id('phone', '415 555 2671') = cdp.person_id('customer_id', '1') AS phone_too,
       cdp.person_id('email', 'test@test.com') AS junk,
       cdp.person_id('email', 'nobody-known@x.org') AS unknown,
       cdp.person_id('phone', 'not a number') AS invalid;
SELECT cdp.normalize_identifier('email', ' J.O.E+x@GoogleMail.com '), cdp.normalize_identifier('phone', '(415) 555-2671'),
       cdp.normalize_identifier('phone', '12'), cdp.normalize_identifier('device_id', ' ABC '),
       cdp.normalize_identifier('anonymous_id', '   ');

-- person_id() in a forced parallel plan gives the same answers (it reads its rules read-only).
CREATE TABLE lookups AS SELECT v FROM (VALUES ('janedoe@gmail.com'), ('family@home.net'), ('test@test.com'),
                                               ('nobody@x.org')) t(v);
SET force_parallel_mode = regress; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2;
CREATE TABLE parallel_answers AS SELECT v, cdp.person_id('email', v) AS person FROM lookups;
RESET force_parallel_mode; RESET parallel_setup_cost; RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size; RESET max_parallel_workers_per_gather;
SELECT count(*) AS lookups, count(*) FILTER (WHERE person IS NOT DISTINCT FROM cdp.person_id('email', v)) AS same
  FROM parallel_answers;
DROP TABLE lookups, parallel_answers;

-- A rerun on the same data changes nothing and keeps every id.
CREATE TABLE map_before AS SELECT * FROM cdp.identity_map;
CREATE TABLE cuts_before AS SELECT * FROM cdp.identity_cuts;
CALL cdp.merge_identities('obs');
CALL cdp.merge_identities('obs', full_rebuild => true);
SELECT count(*) AS changed FROM (
  (SELECT * FROM map_before EXCEPT SELECT * FROM cdp.identity_map)
  UNION ALL (SELECT * FROM cdp.identity_map EXCEPT SELECT * FROM map_before)) d;
SELECT run_id, new_observations, merges, splits, new_persons, jitter FROM cdp.merge_runs ORDER BY run_id;

-- Row order does not matter: the same rows in another order, from scratch, give the same ids.
TRUNCATE cdp.persons, cdp.identity_map, cdp.person_identifiers, cdp.identity_cuts, cdp.merge_history,
         cdp.merge_runs, cdp.identity_links RESTART IDENTITY;
ALTER SEQUENCE cdp.person_id_seq RESTART;
SELECT setseed(0.42);
CREATE TABLE obs_shuffled AS SELECT * FROM obs ORDER BY random();
CALL cdp.merge_identities('obs_shuffled');
SELECT count(*) AS differences FROM (
  (SELECT * FROM map_before EXCEPT SELECT * FROM cdp.identity_map)
  UNION ALL (SELECT * FROM cdp.identity_map EXCEPT SELECT * FROM map_before)) d;
SELECT count(*) AS cut_differences FROM (
  (SELECT id_type, id_value, source, source_key, record_person FROM cuts_before
   EXCEPT SELECT id_type, id_value, source, source_key, record_person FROM cdp.identity_cuts)
  UNION ALL (SELECT id_type, id_value, source, source_key, record_person FROM cdp.identity_cuts
   EXCEPT SELECT id_type, id_value, source, source_key, record_person FROM cuts_before)) d;

-- A new observation joining two persons: the oldest id survives and the history names the identifier.
CREATE TABLE obs_more (LIKE obs);
INSERT INTO obs_more VALUES ('shop', 'o10', 'customer_id', '1', '2024-04-01'),
                            ('shop', 'o10', 'anonymous_id', 'chain-cookie-500', '2024-04-01');
SELECT (SELECT person_id FROM cdp.identity_map WHERE source_key = 'o1') AS jane,
       (SELECT person_id FROM cdp.identity_map WHERE source_key = 'chain-1') AS chain \gset
CALL cdp.merge_identities('obs_more');
SELECT count(DISTINCT person_id) = 1 AS one_person,
       min(person_id) = least(:jane, :chain) AS oldest_id_survives
  FROM cdp.identity_map WHERE source_key IN ('o1', 'chain-1', 'o10');
SELECT kind, from_person = greatest(:jane, :chain) AS from_newer, to_person = least(:jane, :chain) AS to_older,
       id_type, id_value
  FROM cdp.merge_history ORDER BY run_id, from_person, to_person;
SELECT run_id, observations::text, new_observations, merges, splits, new_persons, round(jitter::numeric, 4) AS jitter
  FROM cdp.merge_runs ORDER BY run_id;
SELECT count(*) AS retired_person_rows FROM cdp.persons WHERE person_id = greatest(:jane, :chain);

-- bulk_index_first_load (default true: a first load builds the indexes once at the end) off: indexes
-- maintained row by row give the same result, and the indexes are valid and used either way.
TRUNCATE cdp.persons, cdp.identity_map, cdp.person_identifiers, cdp.identity_cuts, cdp.merge_history,
         cdp.merge_runs, cdp.identity_links RESTART IDENTITY;
ALTER SEQUENCE cdp.person_id_seq RESTART;
UPDATE cdp.identity_settings SET bulk_index_first_load = false;
CALL cdp.merge_identities('obs');
UPDATE cdp.identity_settings SET bulk_index_first_load = true;
SELECT count(*) AS differences FROM (
  (SELECT * FROM map_before EXCEPT SELECT * FROM cdp.identity_map)
  UNION ALL (SELECT * FROM cdp.identity_map EXCEPT SELECT * FROM map_before)) d;
SELECT bool_and(indisvalid AND indisready) AS indexes_valid, count(*) AS indexes FROM pg_index
 WHERE indrelid IN ('cdp.identity_map'::regclass, 'cdp.person_identifiers'::regclass);
SET enable_seqscan = off;
SELECT source_key FROM cdp.identity_map WHERE source = 'shop' AND source_key = 'o1';
SELECT count(*) AS jane_records FROM cdp.identity_map WHERE person_id = cdp.person_id('customer_id', '1');
RESET enable_seqscan;
RESET client_min_messages;
DROP TABLE obs, obs_shuffled, obs_more, map_before, cuts_before;
