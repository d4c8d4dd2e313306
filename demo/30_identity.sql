-- Demo step 30: identity merge on a handful of hand-made observations.
\echo '== identity merge: one person across an order, a web session and a store visit'
CREATE TEMP TABLE demo_observations (source text, source_key text, id_type text, id_value text,
                                     observed_at timestamptz);
INSERT INTO demo_observations VALUES
  ('shop', 'order-1001', 'customer_id', '501', '2024-05-01 10:00+00'),
  ('shop', 'order-1001', 'email', 'Maria.Lopez+shop@googlemail.com', '2024-05-01 10:00+00'),
  ('web', 'session-77', 'anonymous_id', 'cookie-9f3a', '2024-05-02 18:30+00'),
  ('web', 'session-77', 'email', 'marialopez@gmail.com', '2024-05-02 18:30+00'),
  ('pos', 'visit-3', 'phone', '(212) 555-0147', '2024-05-03 12:00+00'),
  ('pos', 'visit-3', 'loyalty_id', 'LC-88', '2024-05-03 12:00+00'),
  ('crm', 'contact-9', 'phone', '+1 212 555 0147', '2024-05-04 09:00+00'),
  ('crm', 'contact-9', 'email', 'MARIALOPEZ@gmail.com', '2024-05-04 09:00+00'),
  -- junk shared by two accounts links nobody
  ('shop', 'order-1002', 'customer_id', '502', '2024-05-05 11:00+00'),
  ('shop', 'order-1002', 'email', 'test@test.com', '2024-05-05 11:00+00'),
  ('shop', 'order-1003', 'customer_id', '503', '2024-05-05 12:00+00'),
  ('shop', 'order-1003', 'email', 'test@test.com', '2024-05-05 12:00+00');
SET client_min_messages = notice;
CALL cdp.merge_identities('demo_observations');
SELECT source, source_key, person_id FROM cdp.identity_map
 WHERE (source, source_key) IN (SELECT source, source_key FROM demo_observations) ORDER BY person_id, source;
SELECT id_type, id_value, person_id, status, reason, records FROM cdp.person_identifiers
 WHERE id_value IN ('marialopez@gmail.com', '+12125550147', 'test@test.com', 'LC-88') ORDER BY id_type;
SELECT cdp.person_id('email', 'maria.lopez@gmail.com') AS maria;
SELECT run_id, records, persons, merges, splits, excluded, jitter, phase_ms FROM cdp.merge_runs
 ORDER BY run_id DESC LIMIT 1;
