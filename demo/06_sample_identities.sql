-- Demo step 06: the sample shop's other sources of identity, over shop.orders (demo/05).
-- A shop rarely has one clean customer key. Here, as in real shops:
--   * accounts (shop.accounts): most customer ids are accounts with an e-mail and often a phone;
--   * guest checkouts (shop.guest_checkouts): some customer ids are guest records, whose orders carry
--     only the e-mail typed at checkout. One in six customer ids is the guest record of an account
--     holder who checked out as a guest with a variant of the account e-mail (upper case, spaces,
--     gmail dots and +tags), so one person has account orders and guest orders;
--   * web sessions (shop.web_sessions): cookies, with the customer id when logged in and an e-mail
--     when a guest signed up for the newsletter;
--   * loyalty cards (shop.loyalty_cards): card numbers with the phone number in another format;
--   * some guest orders were taken by phone and carry no identifier at all: their person is unknown.
-- shop.identity_observations is the view a shop writes over these tables for cdp.merge_identities.
\echo '== sample identity sources: accounts, guest checkouts, web sessions, loyalty cards'
SET client_min_messages = warning;
-- demo/05_sample_shop.sql creates shop.orders; without it, the shared generator makes the same shape.
SELECT to_regclass('shop.orders') IS NULL AS cdp_demo_needs_shop \gset
\if :cdp_demo_needs_shop
  \set customers 12000
  \set repeat_lambda 2.5
  \set schema shop
  \ir ../bench/generate_shop.sql
\endif

-- What each customer id of shop.orders is (deterministic by id, so re-runs give the same shop):
--   id % 6 = 0          guest record of the account holder id - 1 (same person, e-mail variant)
--   id % 24 = 9         guest who ordered by phone: no identifier, person unknown
--   id % 12 = 3 or 9    (other) guest-only shopper with an own e-mail
--   otherwise           account holder
CREATE TEMP TABLE demo_people AS
SELECT c.customer_id,
       CASE WHEN c.customer_id % 6 = 0 THEN 'guest_of_account'
            WHEN c.customer_id % 24 = 9 THEN 'phone_order'
            WHEN c.customer_id % 12 IN (3, 9) THEN 'guest'
            ELSE 'account' END AS kind,
       (ARRAY['mia','noah','emma','ben','lina','paul','lea','finn','hanna','jonas','sofia','elias',
              'anna','luca','marie','felix','clara','leon','ida','max'])[1 + c.customer_id % 20] AS first_name,
       (ARRAY['schulz','meyer','wagner','becker','hoffmann','koch','richter','klein','wolf','neumann',
              'braun','krause','lange','hartmann','werner','schmitt','vogel','jung','fuchs','keller'])
         [1 + (c.customer_id / 20) % 20] AS last_name,
       (ARRAY['gmail.com','web.de','posteo.de','outlook.com','gmx.net'])[1 + (c.customer_id / 7) % 5] AS domain
  FROM (SELECT DISTINCT customer_id FROM shop.orders) c;

DROP TABLE IF EXISTS shop.accounts, shop.guest_checkouts, shop.web_sessions, shop.loyalty_cards CASCADE;

CREATE TABLE shop.accounts (
  customer_id bigint PRIMARY KEY,
  email       text NOT NULL,
  phone       text,
  created_at  timestamptz NOT NULL
);
INSERT INTO shop.accounts
SELECT p.customer_id,
       p.first_name || '.' || p.last_name || p.customer_id || '@' || p.domain,
       CASE WHEN p.customer_id % 5 < 3 THEN '+49 30 ' || (20000000 + p.customer_id * 37 % 7999999) END,
       (SELECT min(o.ordered_at) FROM shop.orders o WHERE o.customer_id = p.customer_id) - interval '3 days'
  FROM demo_people p
 WHERE p.kind = 'account';

-- The e-mail each guest order carries.
CREATE TABLE shop.guest_checkouts (
  order_id       bigint PRIMARY KEY,
  email          text NOT NULL,
  checked_out_at timestamptz NOT NULL
);
INSERT INTO shop.guest_checkouts
SELECT o.order_id,
       CASE WHEN p.kind = 'guest' THEN p.first_name || '_' || p.last_name || p.customer_id || '@' || p.domain
            -- variants of the account e-mail of customer id - 1 that normalise to it
            WHEN a.email LIKE '%@gmail.com' AND o.order_id % 2 = 0
              THEN replace(split_part(a.email, '@', 1), '.', '') || '+shop@googlemail.com'
            WHEN o.order_id % 3 = 0 THEN '  ' || upper(a.email) || ' '
            ELSE initcap(a.email) END,
       o.ordered_at
  FROM shop.orders o
  JOIN demo_people p ON p.customer_id = o.customer_id AND p.kind IN ('guest', 'guest_of_account')
  LEFT JOIN shop.accounts a ON a.customer_id = o.customer_id - 1;

-- Web sessions: one or two cookies per account holder (logged in on some sessions), and newsletter
-- sign-ups of guest shoppers (cookie + the e-mail they also used at checkout).
CREATE TABLE shop.web_sessions (
  session_id  bigint PRIMARY KEY,
  cookie_id   text NOT NULL,
  customer_id bigint,
  email       text,
  started_at  timestamptz NOT NULL
);
INSERT INTO shop.web_sessions
SELECT row_number() OVER (ORDER BY s.customer_id, s.n),
       'ck-' || md5(s.customer_id || '/' || (s.n % 2)),
       CASE WHEN s.kind = 'account' AND s.n <> 3 THEN s.customer_id END,
       CASE WHEN s.kind = 'guest' AND s.n = 1
            THEN lower(s.first_name || '_' || s.last_name || s.customer_id || '@' || s.domain) END,
       timestamptz '2024-06-01 00:00+00' + (s.customer_id * 7919 % 730) * interval '1 day' + s.n * interval '1 hour'
  FROM (SELECT p.*, n FROM demo_people p, generate_series(1, 3) n
         WHERE p.kind = 'account' OR (p.kind = 'guest' AND n = 1)) s;

-- Loyalty cards of about a third of the account holders with a phone, the number written another way.
CREATE TABLE shop.loyalty_cards (
  card_id     text PRIMARY KEY,
  phone       text NOT NULL,
  enrolled_at timestamptz NOT NULL
);
INSERT INTO shop.loyalty_cards
SELECT 'LC-' || lpad(a.customer_id::text, 7, '0'),
       CASE a.customer_id % 3 WHEN 0 THEN replace(a.phone, ' ', '')
                              WHEN 1 THEN '+49 (0)30 ' || substr(replace(a.phone, ' ', ''), 6, 4) || '-' || substr(replace(a.phone, ' ', ''), 10)
                              ELSE '+49-30-' || substr(replace(a.phone, ' ', ''), 6) END,
       a.created_at + interval '30 days'
  FROM shop.accounts a
 WHERE a.phone IS NOT NULL AND a.customer_id % 3 <> 2;

-- The observation view: one row per identifier seen on a record (source, source_key).
CREATE OR REPLACE VIEW shop.identity_observations AS
SELECT 'order' AS source, o.order_id::text AS source_key, 'customer_id' AS id_type,
       o.customer_id::text AS id_value, o.ordered_at AS observed_at
  FROM shop.orders o JOIN shop.accounts a ON a.customer_id = o.customer_id
UNION ALL
SELECT 'order', g.order_id::text, 'email', g.email, g.checked_out_at FROM shop.guest_checkouts g
UNION ALL
SELECT 'account', a.customer_id::text, v.id_type, v.id_value, a.created_at
  FROM shop.accounts a
 CROSS JOIN LATERAL (VALUES ('customer_id', a.customer_id::text), ('email', a.email), ('phone', a.phone)) v(id_type, id_value)
 WHERE v.id_value IS NOT NULL
UNION ALL
SELECT 'web', w.session_id::text, v.id_type, v.id_value, w.started_at
  FROM shop.web_sessions w
 CROSS JOIN LATERAL (VALUES ('anonymous_id', w.cookie_id), ('customer_id', w.customer_id::text), ('email', w.email)) v(id_type, id_value)
 WHERE v.id_value IS NOT NULL
UNION ALL
SELECT 'loyalty', l.card_id, v.id_type, v.id_value, l.enrolled_at
  FROM shop.loyalty_cards l
 CROSS JOIN LATERAL (VALUES ('loyalty_id', l.card_id), ('phone', l.phone)) v(id_type, id_value);

SELECT kind AS customer_id_kind, count(*) AS customer_ids FROM demo_people GROUP BY kind ORDER BY kind;
SELECT source, count(DISTINCT source_key) AS records, count(*) AS observations
  FROM shop.identity_observations GROUP BY source ORDER BY source;
RESET client_min_messages;
-- A few variants the merge has to see through.
SELECT a.email AS account_email, g.email AS guest_checkout_email
  FROM shop.guest_checkouts g JOIN shop.orders o USING (order_id) JOIN shop.accounts a ON a.customer_id = o.customer_id - 1
 WHERE o.customer_id % 6 = 0
 ORDER BY g.order_id LIMIT 4;
SELECT a.phone AS account_phone, l.phone AS loyalty_phone
  FROM shop.loyalty_cards l JOIN shop.accounts a ON l.card_id = 'LC-' || lpad(a.customer_id::text, 7, '0')
 ORDER BY l.card_id LIMIT 3;
