-- Synthetic identity observations for the identity-merge benchmark (docs/identity_bench.md):
--   psql -v records=10000000 -v schema=bench_identity -f bench/identity_generate.sql
-- Creates, in :schema (dropped and recreated):
--   observations(source, source_key, id_type, id_value, observed_at)  ~records records, ~1.6 identifiers each
--   observations_increment(...)       ~1% more records (new sessions/orders of known and new people), later
--   truth(source, source_key, person, trap, increment)   the planted person of every record
--   planted(trap, id_type, id_value, grp)                  the planted trap values the checks look at
-- A record is (source, source_key) and carries 1-3 identifiers. Planted structure:
--   * people (~1 per 5 records) with 1-3 cookies (anonymous_id), maybe a personal device_id, an email
--     (gmail, written in dot/+tag/googlemail/case/whitespace variants; other domains in case/whitespace
--     variants), a GB phone (written "+44 20 7xxx xxxx", "020 7xxx xxxx", "(020) 7xxx-xxxx", "0044 ...", ...
--     default region GB), a customer account (customer_id) and a loyalty card (loyalty_id);
--   * junk: ~0.3% of emails/phones replaced by test@test.com, 'null', 'n/a', '0000000000', ...;
--   * hubs: shared kiosk devices (device_id) and shop till emails each on :hub_size records of different people;
--   * conflicting accounts: pairs of people, each with their own customer_id, bridged by one shared
--     household phone or family email (a weak identifier on a record of each);
--   * one long chain: :chain web records, record i sharing a cookie with record i+1.
-- Deterministic (setseed, single-threaded statements). Tables are UNLOGGED: they are scratch data.
\set ON_ERROR_STOP on
\if :{?records} \else \set records 10000000 \endif
\if :{?schema} \else \set schema bench_identity \endif
\if :{?chain} \else \set chain 10000 \endif
\if :{?hub_size} \else \set hub_size 600 \endif
\if :{?increment_pct} \else \set increment_pct 1 \endif

SET client_min_messages = warning;
DROP SCHEMA IF EXISTS :"schema" CASCADE;
CREATE SCHEMA :"schema";
RESET client_min_messages;
SET search_path = :"schema", pg_catalog;
SELECT setseed(0.4242) \g /dev/null

-- Sizes derived from :records: ~5 records per ordinary person (1 + geometric, mean ~4.9).
SELECT greatest(1, round((:records - :chain) / 4.93))::bigint AS persons,
       greatest(2, :records / 100000)::int AS device_hubs,       -- kiosks, :hub_size records each
       greatest(1, :records / 1000000)::int AS email_hubs,       -- shop till emails
       greatest(10, :records / 10000)::int AS conflict_pairs
\gset

-- Name parts make emails look like emails and give gmail addresses dots to fold.
CREATE TEMP TABLE first_names AS SELECT * FROM unnest(ARRAY['jane','john','amira','li','olga','pedro','sam',
  'fatima','noah','emma','raj','chloe','tom','yuki','ana','ben','ines','omar','zoe','max']) WITH ORDINALITY AS f(name, n);
CREATE TEMP TABLE last_names AS SELECT * FROM unnest(ARRAY['smith','jones','khan','chen','ivanova','garcia',
  'brown','ali','taylor','wilson','patel','martin','lee','sato','silva','evans','costa','hassan','clark','young'])
  WITH ORDINALITY AS l(name, n);
CREATE TEMP TABLE email_domains AS SELECT * FROM unnest(ARRAY['gmail.com','gmail.com','gmail.com','yahoo.co.uk',
  'hotmail.com','outlook.com','btinternet.com','icloud.com']) WITH ORDINALITY AS d(domain, n);

-- Ordinary people. Phone: London 020 7xxx xxxx, the 7 digits a bijection of the person number (mod 10^7).
CREATE TEMP TABLE people AS
SELECT p AS person,
       1 + floor(-ln(1 - random()) * 4.4)::int AS record_count,
       1 + floor(random() * 3)::int AS cookies,
       CASE WHEN random() < 0.75 THEN f.name || '.' || l.name || p ELSE NULL END AS email_local,
       d.domain AS email_domain,
       CASE WHEN random() < 0.5 THEN lpad(((p * 7919) % 10000000)::text, 7, '0') END AS phone7,
       random() < 0.55 AS has_customer,
       random() < 0.20 AS has_loyalty,
       random() < 0.40 AS has_device
  FROM generate_series(1::bigint, :persons) AS p
  JOIN first_names f ON f.n = 1 + p % 20
  JOIN last_names l ON l.n = 1 + (p / 20) % 20
  JOIN email_domains d ON d.n = 1 + (p / 400) % 8;
ALTER TABLE people ADD PRIMARY KEY (person);

-- Written forms of one email / phone (variant 0 is the plain form; most records use it).
CREATE FUNCTION pg_temp.email_form(local text, domain text, variant int) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN domain = 'gmail.com' THEN
           CASE variant WHEN 1 THEN upper(local || '@' || domain)
                        WHEN 2 THEN '  ' || initcap(local) || '@' || domain || ' '
                        WHEN 3 THEN replace(local, '.', '') || '@' || domain
                        WHEN 4 THEN local || '+shop@' || domain
                        WHEN 5 THEN local || '@googlemail.com'
                        ELSE local || '@' || domain END
         ELSE
           CASE variant % 3 WHEN 1 THEN upper(local || '@' || domain)
                            WHEN 2 THEN ' ' || initcap(local) || '@' || domain || '  '
                            ELSE local || '@' || domain END
         END $$;
CREATE FUNCTION pg_temp.phone_form(area text, d7 text, variant int) RETURNS text  -- area '7' or '3'
LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE variant WHEN 1 THEN '020 ' || area || substr(d7, 1, 3) || ' ' || substr(d7, 4)
                      WHEN 2 THEN '+4420' || area || d7
                      WHEN 3 THEN '(020) ' || area || substr(d7, 1, 3) || '-' || substr(d7, 4)
                      WHEN 4 THEN '0044 20 ' || area || substr(d7, 1, 3) || ' ' || substr(d7, 4)
                      WHEN 5 THEN '020-' || area || substr(d7, 1, 3) || '-' || substr(d7, 4)
                      ELSE '+44 20 ' || area || substr(d7, 1, 3) || ' ' || substr(d7, 4) END $$;

-- Which written form a record uses: 60% the plain one, 8% each of the five variants.
CREATE FUNCTION pg_temp.variant(r double precision) RETURNS int LANGUAGE sql IMMUTABLE AS
  $$ SELECT CASE WHEN r < 0.6 THEN 0 ELSE 1 + floor((r - 0.6) / 0.08)::int END $$;

CREATE TEMP TABLE junk_emails AS SELECT * FROM unnest(ARRAY['test@test.com','TEST@TEST.COM','null','n/a',
  'none','unknown','noemail@noemail.com']) WITH ORDINALITY AS j(value, n);
CREATE TEMP TABLE junk_phones AS SELECT * FROM unnest(ARRAY['0000000000','1234567890','null','n/a',
  '+44 0000 000000']) WITH ORDINALITY AS j(value, n);

-- One row per record with up to three identifiers. kind: the record's source system.
CREATE TEMP TABLE recs (source text, source_key text, person bigint, trap text, observed_at timestamptz,
                        t1 text, v1 text, t2 text, v2 text, t3 text, v3 text);

-- Ordinary records. A person's records come from web sessions (cookie, sometimes a login email and the
-- personal device), orders (account or guest email, sometimes a phone), CRM rows and loyalty swipes.
INSERT INTO recs
SELECT kind, person::text || '-' || j, person, NULL, observed_at, t1, v1, t2, v2, t3, v3
  FROM (SELECT r.*,
               CASE kind WHEN 'web' THEN 'anonymous_id'
                         WHEN 'orders' THEN CASE WHEN has_customer THEN 'customer_id'
                                                 WHEN email IS NOT NULL THEN 'email'
                                                 WHEN phone IS NOT NULL THEN 'phone' ELSE 'anonymous_id' END
                         WHEN 'crm' THEN 'customer_id' ELSE 'loyalty_id' END AS t1,
               CASE kind WHEN 'web' THEN cookie
                         WHEN 'orders' THEN CASE WHEN has_customer THEN customer WHEN email IS NOT NULL THEN email
                                                 WHEN phone IS NOT NULL THEN phone ELSE cookie END
                         WHEN 'crm' THEN customer ELSE loyalty END AS v1,
               CASE WHEN kind = 'web' AND login AND email IS NOT NULL THEN 'email'
                    WHEN kind IN ('orders', 'crm') AND has_customer AND email IS NOT NULL AND (login OR kind = 'crm')
                      THEN 'email'
                    WHEN kind = 'loyalty' THEN CASE WHEN phone IS NOT NULL THEN 'phone'
                                                    WHEN email IS NOT NULL THEN 'email' END END AS t2,
               CASE WHEN kind = 'web' AND login THEN email
                    WHEN kind IN ('orders', 'crm') AND has_customer AND (login OR kind = 'crm') THEN email
                    WHEN kind = 'loyalty' THEN coalesce(phone, email) END AS v2,
               CASE WHEN kind = 'web' AND has_device AND extra THEN 'device_id'
                    WHEN kind IN ('orders', 'crm') AND phone IS NOT NULL AND (extra OR kind = 'crm')
                         AND (has_customer OR email IS NOT NULL) THEN 'phone' END AS t3,
               CASE WHEN kind = 'web' AND has_device AND extra THEN 'dev-' || to_hex(person)
                    WHEN kind IN ('orders', 'crm') AND phone IS NOT NULL AND (extra OR kind = 'crm')
                         AND (has_customer OR email IS NOT NULL) THEN phone END AS v3
          FROM (SELECT q.*,
                       CASE WHEN k < 0.55 THEN 'web' WHEN k < 0.80 THEN 'orders'
                            WHEN k < 0.88 AND has_customer THEN 'crm'
                            WHEN k >= 0.88 AND has_loyalty THEN 'loyalty' ELSE 'web' END AS kind
                  FROM (SELECT p.person, p.has_customer, p.has_loyalty, p.has_device, j, random() AS k,
                               'ck-' || to_hex(p.person * 4 + floor(random() * p.cookies)::int) AS cookie,
                               CASE WHEN p.email_local IS NULL THEN NULL
                                    WHEN random() < 0.003 THEN (SELECT value FROM junk_emails WHERE n = 1 + p.person % 7)
                                    ELSE pg_temp.email_form(p.email_local, p.email_domain, pg_temp.variant(random()))
                               END AS email,
                               CASE WHEN p.phone7 IS NULL THEN NULL
                                    WHEN random() < 0.003 THEN (SELECT value FROM junk_phones WHERE n = 1 + p.person % 5)
                                    ELSE pg_temp.phone_form('7', p.phone7, pg_temp.variant(random())) END AS phone,
                               (1000000 + p.person)::text AS customer,
                               'LOY-' || lpad(p.person::text, 9, '0') AS loyalty,
                               random() < 0.5 AS login,
                               random() < 0.6 AS extra,
                               timestamptz '2024-01-01 00:00+00' + random() * interval '912 days' AS observed_at
                          FROM people p, generate_series(1, p.record_count) AS j) q) r) x;

-- Hubs: kiosk devices in shops, each seen with the cookies of :hub_size different people; shop till
-- emails typed into :hub_size guest orders of different customers.
INSERT INTO recs
SELECT 'kiosk', 'hub' || h || '-' || i, p.person, 'device_hub', timestamptz '2024-01-01 00:00+00' + random() * interval '912 days',
       'anonymous_id', 'ck-' || to_hex(p.person * 4), 'device_id', 'kiosk-' || lpad(h::text, 5, '0'), NULL, NULL
  FROM generate_series(1, :device_hubs) AS h CROSS JOIN generate_series(1, :hub_size) AS i
  JOIN people p ON p.person = 1 + ((h * 100003 + i * 7717) % :persons);
INSERT INTO recs
SELECT 'pos', 'till' || h || '-' || i, p.person, 'email_hub', timestamptz '2024-01-01 00:00+00' + random() * interval '912 days',
       CASE WHEN p.has_customer THEN 'customer_id' ELSE 'anonymous_id' END,
       CASE WHEN p.has_customer THEN (1000000 + p.person)::text ELSE 'ck-' || to_hex(p.person * 4) END,
       'email', 'till' || h || '@shop.example', NULL, NULL
  FROM generate_series(1, :email_hubs) AS h CROSS JOIN generate_series(1, :hub_size) AS i
  JOIN people p ON p.person = 1 + ((h * 100019 + i * 7723) % :persons);

-- Conflicting accounts: people A (= persons + 2c - 1) and B (= persons + 2c), each with a customer_id, a
-- cookie and an email, and one CRM row each that carries a shared household phone (even c) or family email
-- (odd c) next to their own customer_id. The shared value must be cut: two accounts are two people.
INSERT INTO recs
SELECT src, 'conflict' || c || side || '-' || n, :persons + 2 * c - (side = 'a')::int, 'conflict',
       timestamptz '2024-01-01 00:00+00' + random() * interval '912 days', t1, v1, t2, v2, NULL, NULL
  FROM generate_series(1, :conflict_pairs) AS c, unnest(ARRAY['a','b']) AS side,
       LATERAL (VALUES
         (1, 'orders', 'customer_id', 'K' || c || side, 'email', 'acct' || c || side || '@fastmail.com'),
         (2, 'web', 'anonymous_id', 'ck-conflict-' || c || side, 'email', 'acct' || c || side || '@fastmail.com'),
         (3, 'crm', 'customer_id', 'K' || c || side,
             CASE WHEN c % 2 = 0 THEN 'phone' ELSE 'email' END,
             CASE WHEN c % 2 = 0 THEN pg_temp.phone_form('3', lpad(c::text, 7, '0'), CASE side WHEN 'a' THEN 0 ELSE 1 END)
                  ELSE CASE side WHEN 'a' THEN 'the.family' || c || '@gmail.com'
                                 ELSE 'The.Family' || c || '+b@GoogleMail.com' END END)
       ) AS v(n, src, t1, v1, t2, v2);

-- The long chain: record i carries cookies chain-i and chain-(i+1), so consecutive records share one.
INSERT INTO recs
SELECT 'web', 'chain-' || lpad(i::text, 6, '0'), :persons + 2 * :conflict_pairs + 1, 'chain',
       timestamptz '2024-01-01 00:00+00' + i * interval '1 minute',
       'anonymous_id', 'chain-ck-' || i, 'anonymous_id', 'chain-ck-' || (i + 1), NULL, NULL
  FROM generate_series(1, :chain) AS i;

-- The 1% increment, observed after everything above: new web sessions and orders of known people (some
-- carrying two of their identifiers at once, which joins fragments that were apart) and brand-new people.
INSERT INTO recs
SELECT CASE WHEN newcomer OR random() < 0.6 THEN 'web' ELSE 'orders' END, 'inc-' || i,
       person, 'increment', timestamptz '2026-07-01 00:00+00' + random() * interval '1 day',
       'anonymous_id', CASE WHEN newcomer THEN 'ck-new-' || i ELSE 'ck-' || to_hex(person * 4 + floor(random() * cookies)::int) END,
       CASE WHEN email_local IS NOT NULL AND random() < 0.5 THEN 'email' END,
       CASE WHEN email_local IS NOT NULL THEN pg_temp.email_form(email_local, email_domain, pg_temp.variant(random())) END,
       CASE WHEN phone7 IS NOT NULL AND random() < 0.3 THEN 'phone' END,
       CASE WHEN phone7 IS NOT NULL THEN pg_temp.phone_form('7', phone7, pg_temp.variant(random())) END
  FROM (SELECT i, i % 10 < 3 AS newcomer, p.*
          FROM generate_series(1::bigint, (:records * :increment_pct / 100)::bigint) AS i
          JOIN people p ON p.person = 1 + (i * 104729) % :persons) x;
-- newcomers: a person of their own, no known identifiers
UPDATE recs SET person = :persons + 2 * :conflict_pairs + 1 + substr(source_key, 5)::bigint,
                t2 = NULL, v2 = NULL, t3 = NULL, v3 = NULL
 WHERE trap = 'increment' AND v1 LIKE 'ck-new-%';
UPDATE recs SET t2 = NULL WHERE v2 IS NULL;
UPDATE recs SET t3 = NULL WHERE v3 IS NULL;

-- Mark the ordinary records that carry junk.
UPDATE recs SET trap = 'junk'
 WHERE trap IS NULL AND (v1 IN (SELECT value FROM junk_emails UNION ALL SELECT value FROM junk_phones)
                      OR v2 IN (SELECT value FROM junk_emails UNION ALL SELECT value FROM junk_phones)
                      OR v3 IN (SELECT value FROM junk_emails UNION ALL SELECT value FROM junk_phones));

CREATE UNLOGGED TABLE observations (source text, source_key text, id_type text, id_value text, observed_at timestamptz);
CREATE UNLOGGED TABLE observations_increment (LIKE observations);
INSERT INTO observations
SELECT r.source, r.source_key, v.t, v.v, r.observed_at
  FROM recs r, LATERAL (VALUES (r.t1, r.v1), (r.t2, r.v2), (r.t3, r.v3)) AS v(t, v)
 WHERE v.t IS NOT NULL AND r.trap IS DISTINCT FROM 'increment';
INSERT INTO observations_increment
SELECT r.source, r.source_key, v.t, v.v, r.observed_at
  FROM recs r, LATERAL (VALUES (r.t1, r.v1), (r.t2, r.v2), (r.t3, r.v3)) AS v(t, v)
 WHERE v.t IS NOT NULL AND r.trap = 'increment';

CREATE UNLOGGED TABLE truth AS
SELECT source, source_key, person, coalesce(trap, 'ordinary') AS trap, trap IS NOT DISTINCT FROM 'increment' AS increment
  FROM recs;
CREATE UNIQUE INDEX ON truth (source, source_key);

-- Trap values the checks look up (raw spellings).
CREATE UNLOGGED TABLE planted (trap text, id_type text, id_value text, grp bigint);
INSERT INTO planted
SELECT 'junk', 'email', value, NULL::bigint FROM junk_emails UNION ALL
SELECT 'junk', 'phone', value, NULL FROM junk_phones UNION ALL
SELECT 'device_hub', 'device_id', 'kiosk-' || lpad(h::text, 5, '0'), h FROM generate_series(1, :device_hubs) AS h UNION ALL
SELECT 'email_hub', 'email', 'till' || h || '@shop.example', h FROM generate_series(1, :email_hubs) AS h UNION ALL
SELECT 'conflict_a', 'customer_id', 'K' || c || 'a', c FROM generate_series(1, :conflict_pairs) AS c UNION ALL
SELECT 'conflict_b', 'customer_id', 'K' || c || 'b', c FROM generate_series(1, :conflict_pairs) AS c;

-- As a shop's table is between runs: vacuumed (autovacuum does it after a bulk insert; the runs then
-- neither set hint bits nor write the pages back), and with observed_at indexed, which lets an incremental
-- run read only the rows after its high-water mark instead of scanning all of them (docs/identity.md).
CREATE INDEX ON observations (observed_at);
VACUUM ANALYZE observations;
ANALYZE observations_increment; ANALYZE truth; ANALYZE planted;
SELECT (SELECT count(*) FROM truth WHERE NOT increment) AS records,
       (SELECT count(*) FROM observations) AS observations,
       (SELECT count(*) FROM observations_increment) AS increment_observations,
       :persons AS ordinary_people, :device_hubs AS device_hubs, :email_hubs AS email_hubs,
       :conflict_pairs AS conflict_pairs, :chain AS chain_records,
       (SELECT count(*) FROM truth WHERE trap = 'junk') AS junk_records;
