
-- ===================================================================================================
-- Identity merge (docs/identity.md): one stable person id across cookies, emails, phones, accounts.
-- ===================================================================================================

-- Rules as data ------------------------------------------------------------------------------------

CREATE TABLE cdp.identifier_types (
  id_type        text PRIMARY KEY CHECK (id_type <> '' AND pg_catalog.length(id_type) <= 63),
  normaliser     text NOT NULL DEFAULT 'trim' CHECK (normaliser IN ('trim', 'lower', 'email', 'phone')),
  max_per_person integer CHECK (max_per_person IS NULL OR max_per_person >= 1),
  priority       integer NOT NULL DEFAULT 0,
  hub_threshold  bigint CHECK (hub_threshold IS NULL OR hub_threshold >= 1),
  description    text,
  enabled        boolean NOT NULL DEFAULT true,
  shipped        boolean NOT NULL DEFAULT false,
  builtin        boolean NOT NULL DEFAULT false,
  CHECK (shipped OR NOT builtin)
);
COMMENT ON TABLE cdp.identifier_types IS
  'Identity merge: the identifier types merge_identities accepts, how each is normalised, how many distinct values one person may hold (NULL = any), its priority (higher links first and wins conflicts) and its hub threshold (a value carried by more records links nobody; NULL = no cap)';
COMMENT ON COLUMN cdp.identifier_types.enabled IS
  'false = the type is switched off (deleting a shipped type does this): merge_identities and person_id ignore it';
COMMENT ON COLUMN cdp.identifier_types.shipped IS
  'true when pg_cdp ships a row with this id_type: deleting it disables it instead, and its id_type cannot change';
COMMENT ON COLUMN cdp.identifier_types.builtin IS
  'true while a shipped row is exactly as shipped (recreated by CREATE EXTENSION, so pg_dump skips it); any edit sets it false';
INSERT INTO cdp.identifier_types (id_type, normaliser, max_per_person, priority, hub_threshold, description, shipped, builtin) VALUES
  ('customer_id',  'trim',  1,    100, NULL, 'shop account id; one per person, never capped (a customer may have many orders)', true, true),
  ('loyalty_id',   'trim',  1,     90, NULL, 'loyalty card or programme number; one per person', true, true),
  ('email',        'email', NULL,  80, 500,  'e-mail address; gmail dots and +tags folded', true, true),
  ('phone',        'phone', NULL,  70, 500,  'phone number in E.164; numbers without +country use the default region', true, true),
  ('anonymous_id', 'trim',  NULL,  30, 1000, 'web/app cookie or anonymous id', true, true),
  ('device_id',    'lower', NULL,  20, 200,  'device or advertising id; shared devices are capped as hubs', true, true);
SELECT pg_catalog.pg_extension_config_dump('cdp.identifier_types', 'WHERE NOT builtin');

CREATE TABLE cdp.identifier_blocklist (
  id_type text REFERENCES cdp.identifier_types (id_type) ON UPDATE CASCADE ON DELETE CASCADE,
  value   text NOT NULL CHECK (value <> ''),
  match   text NOT NULL DEFAULT 'exact' CHECK (match IN ('exact', 'like')),
  reason  text NOT NULL DEFAULT 'junk value',
  enabled boolean NOT NULL DEFAULT true,
  shipped boolean NOT NULL DEFAULT false,
  builtin boolean NOT NULL DEFAULT false,
  CHECK (shipped OR NOT builtin),
  UNIQUE NULLS NOT DISTINCT (id_type, value, match)
);
COMMENT ON TABLE cdp.identifier_blocklist IS
  'Identity merge: junk identifier values that link nobody. id_type NULL applies to every type; match = exact compares the normalised value, match = like is an SQL LIKE pattern (% and _, backslash escapes) on it; both case-insensitive. Changes take effect on the next run, incremental or not';
INSERT INTO cdp.identifier_blocklist (id_type, value, match, reason) VALUES
  (NULL, 'null', 'exact', 'placeholder'), (NULL, 'none', 'exact', 'placeholder'), (NULL, 'n/a', 'exact', 'placeholder'),
  (NULL, 'na', 'exact', 'placeholder'), (NULL, 'unknown', 'exact', 'placeholder'), (NULL, 'undefined', 'exact', 'placeholder'),
  (NULL, 'nil', 'exact', 'placeholder'), (NULL, '(null)', 'exact', 'placeholder'), (NULL, '-', 'exact', 'placeholder'),
  (NULL, '0', 'exact', 'placeholder'), (NULL, 'test', 'exact', 'placeholder'), (NULL, 'not provided', 'exact', 'placeholder'),
  (NULL, '00000000-0000-0000-0000-000000000000', 'exact', 'zero uuid'),
  ('email', 'test@test.com', 'exact', 'test address'), ('email', 'test@example.com', 'exact', 'test address'),
  ('email', 'email@email.com', 'exact', 'test address'), ('email', 'a@a.com', 'exact', 'test address'),
  ('email', 'asdf@asdf.com', 'exact', 'test address'), ('email', 'x@x.com', 'exact', 'test address'),
  ('email', '%@example.com', 'like', 'reserved domain'), ('email', '%@example.org', 'like', 'reserved domain'),
  ('email', '%@example.net', 'like', 'reserved domain'), ('email', '%@test.com', 'like', 'test domain'),
  ('email', 'noemail@%', 'like', 'no address given'), ('email', 'no-email@%', 'like', 'no address given'),
  ('email', 'noreply@%', 'like', 'no address given'), ('email', 'no-reply@%', 'like', 'no address given'),
  ('email', 'none@%', 'like', 'no address given'), ('email', 'nobody@%', 'like', 'no address given'),
  ('email', 'null@%', 'like', 'no address given'),
  ('phone', '0000000000', 'exact', 'placeholder number'), ('phone', '1234567890', 'exact', 'placeholder number'),
  ('phone', '9999999999', 'exact', 'placeholder number'), ('phone', '+10000000000', 'exact', 'placeholder number'),
  ('phone', '+11234567890', 'exact', 'placeholder number'), ('phone', '+19999999999', 'exact', 'placeholder number'),
  ('phone', '+15555555555', 'exact', 'placeholder number'),
  ('customer_id', '-1', 'exact', 'placeholder id'), ('loyalty_id', '-1', 'exact', 'placeholder id');
UPDATE cdp.identifier_blocklist SET shipped = true, builtin = true;
COMMENT ON COLUMN cdp.identifier_blocklist.enabled IS
  'false = the entry is switched off (deleting a shipped entry does this): merge_identities ignores it';
COMMENT ON COLUMN cdp.identifier_blocklist.shipped IS
  'true when pg_cdp ships an entry with this (id_type, value, match): deleting it disables it instead, and its key cannot change';
COMMENT ON COLUMN cdp.identifier_blocklist.builtin IS
  'true while a shipped entry is exactly as shipped (recreated by CREATE EXTENSION, so pg_dump skips it); any edit sets it false';
SELECT pg_catalog.pg_extension_config_dump('cdp.identifier_blocklist', 'WHERE NOT builtin');

CREATE TABLE cdp.identity_settings (
  singleton            boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  default_phone_region text NOT NULL DEFAULT 'US' CHECK (default_phone_region ~ '^[A-Z]{2}$'),
  bulk_index_first_load boolean NOT NULL DEFAULT true,
  builtin              boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE cdp.identity_settings IS
  'Identity merge: one-row settings; default_phone_region is the ISO 3166 region for phone numbers written without +country code; bulk_index_first_load (default true) makes a run into an empty identity_map, person_identifiers or persons build their indexes once at the end instead of row by row (several times faster for a first load of millions of records; readers of those empty tables wait until the run commits); false keeps readers unblocked at all times';
COMMENT ON COLUMN cdp.identity_settings.builtin IS
  'true while the row is exactly as shipped (recreated by CREATE EXTENSION, so pg_dump skips it); any edit sets it false';
INSERT INTO cdp.identity_settings (builtin) VALUES (true);
SELECT pg_catalog.pg_extension_config_dump('cdp.identity_settings', 'WHERE NOT builtin');

-- pg_dump keeps only the rows WHERE NOT builtin; CREATE EXTENSION recreates the shipped ones. These triggers
-- keep that exact: an edited shipped row stops being builtin (so it is dumped); a deleted shipped row stays as
-- a disabled user row (so the deletion is dumped too); and a user row arriving with the key of a builtin row,
-- which is what the dump's COPY does on restore, replaces the builtin row in place (no cascades fire).
CREATE FUNCTION cdp.identity_config_guard() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS $guard$
DECLARE
  replaced integer;
  key_changed boolean;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    RAISE EXCEPTION '%.% cannot be truncated: it holds rules shipped with pg_cdp', TG_TABLE_SCHEMA, TG_TABLE_NAME
      USING ERRCODE = '55000',
            HINT = 'DELETE the rows instead (deleting a shipped row disables it, so pg_dump keeps the deletion).';
  END IF;
  IF TG_TABLE_NAME = 'identity_settings' THEN
    IF TG_OP = 'DELETE' THEN
      RAISE EXCEPTION 'cdp.identity_settings must keep its one row' USING ERRCODE = '55000',
        HINT = 'UPDATE cdp.identity_settings to change a setting.';
    ELSIF TG_OP = 'UPDATE' THEN
      NEW.builtin := false;
      RETURN NEW;
    END IF;
    IF NEW.builtin THEN
      RAISE EXCEPTION 'only pg_cdp itself adds builtin rows' USING ERRCODE = '55000',
        HINT = 'Insert your row with builtin = false.';
    END IF;
    UPDATE cdp.identity_settings s
       SET default_phone_region = NEW.default_phone_region, bulk_index_first_load = NEW.bulk_index_first_load,
           builtin = false
     WHERE s.builtin AND s.singleton = NEW.singleton;
    GET DIAGNOSTICS replaced = ROW_COUNT;
    RETURN CASE WHEN replaced > 0 THEN NULL ELSE NEW END;
  END IF;

  IF TG_OP = 'UPDATE' THEN
    IF OLD.shipped THEN
      IF TG_TABLE_NAME = 'identifier_types' THEN
        key_changed := NEW.id_type IS DISTINCT FROM OLD.id_type;
      ELSE
        key_changed := (NEW.id_type, NEW.value, NEW.match) IS DISTINCT FROM (OLD.id_type, OLD.value, OLD.match);
      END IF;
      IF key_changed THEN
        RAISE EXCEPTION 'the key of a row shipped with pg_cdp cannot change' USING ERRCODE = '55000',
          HINT = 'DELETE it (which disables it) and INSERT a new row.';
      END IF;
    END IF;
    NEW.shipped := OLD.shipped;
    NEW.builtin := false;
    RETURN NEW;
  END IF;
  IF TG_OP = 'DELETE' THEN
    IF NOT OLD.shipped THEN
      RETURN OLD;
    END IF;
    IF TG_TABLE_NAME = 'identifier_types' THEN
      UPDATE cdp.identifier_types t SET enabled = false WHERE t.id_type = OLD.id_type;
    ELSE
      UPDATE cdp.identifier_blocklist b SET enabled = false
       WHERE b.id_type IS NOT DISTINCT FROM OLD.id_type AND b.value = OLD.value AND b.match = OLD.match;
    END IF;
    RETURN NULL;
  END IF;

  -- INSERT
  IF NEW.builtin THEN
    RAISE EXCEPTION 'only pg_cdp itself adds builtin rows' USING ERRCODE = '55000',
      HINT = 'Insert your row with builtin = false.';
  END IF;
  IF TG_TABLE_NAME = 'identifier_types' THEN
    UPDATE cdp.identifier_types t
       SET normaliser = NEW.normaliser, max_per_person = NEW.max_per_person, priority = NEW.priority,
           hub_threshold = NEW.hub_threshold, description = NEW.description, enabled = NEW.enabled, builtin = false
     WHERE t.builtin AND t.id_type = NEW.id_type;
  ELSE
    UPDATE cdp.identifier_blocklist b
       SET reason = NEW.reason, enabled = NEW.enabled, builtin = false
     WHERE b.builtin AND b.id_type IS NOT DISTINCT FROM NEW.id_type AND b.value = NEW.value AND b.match = NEW.match;
  END IF;
  GET DIAGNOSTICS replaced = ROW_COUNT;
  IF replaced > 0 THEN
    RETURN NULL;
  END IF;
  NEW.shipped := false;  -- a key pg_cdp does not ship (any more)
  RETURN NEW;
END
$guard$;
COMMENT ON FUNCTION cdp.identity_config_guard() IS
  'Trigger function of cdp.identifier_types, cdp.identifier_blocklist and cdp.identity_settings that keeps every change to the shipped rows visible to pg_dump (which dumps only rows WHERE NOT builtin): edits clear builtin, deleting a shipped row disables it, a row inserted with a builtin row''s key (as a restore does) replaces it in place; TRUNCATE is refused';
CREATE TRIGGER identifier_types_guard BEFORE INSERT OR UPDATE OR DELETE ON cdp.identifier_types
  FOR EACH ROW EXECUTE FUNCTION cdp.identity_config_guard();
CREATE TRIGGER identifier_types_no_truncate BEFORE TRUNCATE ON cdp.identifier_types
  FOR EACH STATEMENT EXECUTE FUNCTION cdp.identity_config_guard();
CREATE TRIGGER identifier_blocklist_guard BEFORE INSERT OR UPDATE OR DELETE ON cdp.identifier_blocklist
  FOR EACH ROW EXECUTE FUNCTION cdp.identity_config_guard();
CREATE TRIGGER identifier_blocklist_no_truncate BEFORE TRUNCATE ON cdp.identifier_blocklist
  FOR EACH STATEMENT EXECUTE FUNCTION cdp.identity_config_guard();
CREATE TRIGGER identity_settings_guard BEFORE INSERT OR UPDATE OR DELETE ON cdp.identity_settings
  FOR EACH ROW EXECUTE FUNCTION cdp.identity_config_guard();
CREATE TRIGGER identity_settings_no_truncate BEFORE TRUNCATE ON cdp.identity_settings
  FOR EACH STATEMENT EXECUTE FUNCTION cdp.identity_config_guard();

-- Results ------------------------------------------------------------------------------------------

CREATE SEQUENCE cdp.person_id_seq AS bigint;
COMMENT ON SEQUENCE cdp.person_id_seq IS
  'Identity merge: person ids; only merge runs draw from it (under their lock), so ids are never reused';

CREATE TABLE cdp.merge_runs (
  run_id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  started_at         timestamptz NOT NULL DEFAULT pg_catalog.now(),
  finished_at        timestamptz,
  kind               text NOT NULL CHECK (kind IN ('merge', 'forget')),
  observations       regclass,
  full_rebuild       boolean NOT NULL,
  status             text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'ok')),
  observations_read  bigint,
  new_observations   bigint,
  high_water_mark    timestamptz,
  skipped            jsonb,
  links              bigint,
  records            bigint,
  identifiers        bigint,
  persons            bigint,
  new_persons        bigint,
  merges             bigint,
  splits             bigint,
  cut_links          bigint,
  excluded           jsonb,
  jitter             double precision,
  memory_bytes       bigint,
  phase_ms           jsonb,
  rules_fingerprint  text,
  resolved_links     bigint
);
COMMENT ON TABLE cdp.merge_runs IS
  'Identity merge: one row per successful run (a failed run is rolled back whole): counts read and skipped, links, records, persons, merges, splits, cut links, exclusions by reason, jitter (share of previously known records whose person changed), peak memory and milliseconds per phase';

COMMENT ON COLUMN cdp.merge_runs.rules_fingerprint IS
  'Identity merge: MD5 of the rules the run used (enabled types and blocklist entries, phone region, tombstones); the next incremental run re-resolves only what new links touch when it is unchanged';
COMMENT ON COLUMN cdp.merge_runs.full_rebuild IS
  'Identity merge: true when the run re-read all observations and replaced cdp.identity_links: asked for with full_rebuild, or a first run (nothing stored yet and no earlier run of this relation), which reads every row either way';
COMMENT ON COLUMN cdp.merge_runs.resolved_links IS
  'Identity merge: links the run re-resolved (all of them in a full recompute, the touched part in an incremental run)';
COMMENT ON SEQUENCE cdp.merge_runs_run_id_seq IS 'Identity merge: run ids of cdp.merge_runs';

-- persons and person_identifiers keep 10% of each page free (fillfactor 90): an incremental run updates
-- rows whose indexed columns do not change (a person's record count, a value's record count and last_seen),
-- and with room on the page PostgreSQL does that as a HOT update, without new index entries: upserts of such
-- rows took less than half the time. identity_map's updates change its indexed person_id, so it stays full.
CREATE TABLE cdp.persons (
  person_id    bigint PRIMARY KEY,
  created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
  first_run    bigint NOT NULL,
  last_changed_run bigint NOT NULL,
  records      bigint NOT NULL
) WITH (fillfactor = 90);
COMMENT ON TABLE cdp.persons IS
  'Identity merge: one row per person; ids come from cdp.person_id_seq and are never reused';

-- Text keys of the result tables use the "C" collation: byte order, which is the order pg_cdp writes rows
-- in, and comparisons by memcmp with abbreviated keys (index builds and lookups several times cheaper
-- than under a linguistic collation). Comparisons with values of the default collation use it too.
CREATE TABLE cdp.identity_map (
  source     text COLLATE "C" NOT NULL,
  source_key text COLLATE "C" NOT NULL,
  person_id  bigint NOT NULL,
  PRIMARY KEY (source, source_key)
);
CREATE INDEX identity_map_person_idx ON cdp.identity_map (person_id);
COMMENT ON TABLE cdp.identity_map IS 'Identity merge: the person of every record (source, source_key)';

CREATE TABLE cdp.person_identifiers (
  id_type    text COLLATE "C" NOT NULL,
  id_value   text COLLATE "C" NOT NULL,
  person_id  bigint,
  status     text NOT NULL CHECK (status IN ('linked', 'excluded')),
  reason     text CHECK (reason IN ('invalid', 'blocklist', 'hub', 'conflict_cut')),
  records    bigint NOT NULL,
  first_seen timestamptz,
  last_seen  timestamptz,
  PRIMARY KEY (id_type, id_value)
) WITH (fillfactor = 90);
CREATE INDEX person_identifiers_person_idx ON cdp.person_identifiers (person_id);
COMMENT ON TABLE cdp.person_identifiers IS
  'Identity merge: every normalised identifier value, the person it belongs to (NULL when excluded), how many records carry it, first/last seen, and why it links nobody (invalid, blocklist, hub, conflict_cut)';

CREATE TABLE cdp.identity_cuts (
  id_type        text COLLATE "C" NOT NULL,
  id_value       text COLLATE "C" NOT NULL,
  source         text COLLATE "C" NOT NULL,
  source_key     text COLLATE "C" NOT NULL,
  conflict_type  text NOT NULL,
  identifier_person bigint,
  record_person  bigint NOT NULL,
  run_id         bigint NOT NULL,
  PRIMARY KEY (id_type, id_value, source, source_key)
);
COMMENT ON TABLE cdp.identity_cuts IS
  'Identity merge: links cut by the per-type limit (current state): the weaker identifier would have given one person more distinct conflict_type values than allowed, so it does not join this record';

CREATE TABLE cdp.merge_history (
  run_id      bigint NOT NULL,
  kind        text NOT NULL CHECK (kind IN ('merge', 'split')),
  from_person bigint NOT NULL,
  to_person   bigint NOT NULL,
  id_type     text,
  id_value    text,
  at          timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE INDEX merge_history_from_idx ON cdp.merge_history (from_person);
CREATE INDEX merge_history_to_idx ON cdp.merge_history (to_person);
COMMENT ON TABLE cdp.merge_history IS
  'Identity merge: every merge (from_person''s id retired into to_person) and split (records of from_person moved to to_person), with the identifier that caused it (NULL when it was erased)';

-- State for incremental runs ------------------------------------------------------------------------

-- Unlogged: a cache of the normalised observations, rebuilt from them whenever it is lost, so it costs no
-- WAL (a full run at 10M records wrote ~1.4 GB less). A crash empties it (replicas never have it) while the
-- results stay: the next merge then re-reads its relation in full and an erasure asks for that first.
CREATE UNLOGGED TABLE cdp.identity_links (
  source     text NOT NULL,
  source_key text NOT NULL,
  id_type    text NOT NULL,
  id_value   text NOT NULL,
  valid      boolean NOT NULL,
  first_seen timestamptz NOT NULL,
  last_seen  timestamptz NOT NULL
);
-- Incremental runs look records up by key: a b-tree on the key's 4-byte hash is small, cheap to maintain
-- on append and several times faster to build after a first load than a hash index (lookups repeat the
-- key itself to drop hash collisions).
CREATE INDEX identity_links_key_idx ON cdp.identity_links (pg_catalog.hashtext(source_key));
COMMENT ON TABLE cdp.identity_links IS
  'Identity merge: the normalised links (record carries identifier) of all runs, append-only; a link stored twice (a record observed again) is merged when loaded, and a full rebuild compacts the table. Unlogged: emptied by a crash, after which the next merge re-reads its relation in full';

CREATE TABLE cdp.identity_tombstones (
  kind        text NOT NULL CHECK (kind IN ('identifier', 'record')),
  key_sha256  bytea NOT NULL,
  forgotten_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  PRIMARY KEY (kind, key_sha256)
);
COMMENT ON TABLE cdp.identity_tombstones IS
  'Identity merge: SHA-256 of erased identifiers (id_type || '':'' || normalised value) and records (source || '':'' || source_key); later runs never link them again';

-- The results and the state of incremental runs are the user's data too: pg_dump keeps them all, so a
-- restored database keeps its person ids, never reuses one (the sequences) and never re-links an erased
-- identifier (the tombstones).
SELECT pg_catalog.pg_extension_config_dump('cdp.person_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.merge_runs', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.merge_runs_run_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.persons', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.identity_map', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.person_identifiers', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.identity_cuts', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.merge_history', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.identity_links', '');
SELECT pg_catalog.pg_extension_config_dump('cdp.identity_tombstones', '');

-- Functions -----------------------------------------------------------------------------------------

CREATE PROCEDURE cdp.merge_identities(observations regclass, full_rebuild boolean DEFAULT false)
  LANGUAGE c AS 'MODULE_PATHNAME', 'cdp_merge_identities';
COMMENT ON PROCEDURE cdp.merge_identities(regclass, boolean) IS
  'Identity merge: reads observations(source, source_key, id_type, id_value, observed_at) with the caller''s privileges (only rows not older than the previous run''s high-water mark unless full_rebuild), and rewrites persons, identity_map, person_identifiers, identity_cuts, merge_history and merge_runs in the caller''s transaction';

CREATE FUNCTION cdp.normalize_identifier(id_type text, id_value text) RETURNS text
  LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'cdp_normalize_identifier';
COMMENT ON FUNCTION cdp.normalize_identifier(text, text) IS
  'Identity merge: the normalised value merge_identities stores for a raw identifier; NULL when empty or invalid (e.g. not a valid phone number)';

CREATE FUNCTION cdp.person_id(id_type text, id_value text) RETURNS bigint
  LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'cdp_person_id';
COMMENT ON FUNCTION cdp.person_id(text, text) IS
  'Identity merge: the person of a raw identifier value (normalised as merge_identities does); NULL when unknown or excluded';

CREATE PROCEDURE cdp.forget_identifier(id_type text, id_value text)
  LANGUAGE c AS 'MODULE_PATHNAME', 'cdp_forget_identifier';
COMMENT ON PROCEDURE cdp.forget_identifier(text, text) IS
  'Identity merge erasure: removes a raw identifier (normalised) from all pg_cdp tables, recomputes persons (splitting what depended on it) and records a SHA-256 tombstone so later runs never link it again';

CREATE PROCEDURE cdp.forget_person(person_id bigint)
  LANGUAGE c AS 'MODULE_PATHNAME', 'cdp_forget_person';
COMMENT ON PROCEDURE cdp.forget_person(bigint) IS
  'Identity merge erasure: removes a person, its records and its identifiers from all pg_cdp tables and tombstones them so later runs never link them again';
