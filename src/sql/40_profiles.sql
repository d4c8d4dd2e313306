
-- ============================================================================================
-- Profiles: person-level snapshots (identity merge + RFM + lifecycle) and dashboard views.
-- Reference and rules: docs/profiles.md.
-- ============================================================================================

-- How to read the shop's orders and how an order finds its person. One row (re-configuring
-- replaces it). The table is stored by name (schema + table, not regclass) so that pg_dump /
-- pg_upgrade keep it; it is resolved again at every refresh.
CREATE TABLE cdp.profile_config (
  singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  orders_schema      text NOT NULL,
  orders_table       text NOT NULL,
  order_key_column   text NOT NULL,
  customer_column    text NOT NULL,
  ordered_at_column  text NOT NULL,
  amount_column      text NOT NULL,
  person_match       text NOT NULL CHECK (person_match IN ('identity_map', 'identifier', 'customer')),
  person_source      text CHECK ((person_match = 'identity_map') = (person_source IS NOT NULL)),
  customer_id_type   text CHECK ((person_match = 'identifier') = (customer_id_type IS NOT NULL)),
  currency_column    text,
  shop_time_zone     text NOT NULL,
  segment_map        text NOT NULL,
  lifecycle_policy   text NOT NULL,
  bins               integer NOT NULL CHECK (bins BETWEEN 1 AND 100),
  configured_at      timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE cdp.profile_config IS
  'pg_cdp profiles: how cdp.refresh_profiles reads the shop''s orders and attributes them to persons (one row, written by cdp.configure_orders)';
SELECT pg_catalog.pg_extension_config_dump('cdp.profile_config', '');

-- One row per person per as_of. Uniqueness of (as_of, person_key) holds by construction (one
-- GROUP BY person per refresh, the as_of's rows deleted first); the index on as_of alone keeps
-- refresh cheap and serves every "one snapshot" read.
CREATE TABLE cdp.profile_snapshots (
  as_of                  timestamptz NOT NULL,
  person_key             text NOT NULL,
  person_id              bigint,
  orders                 bigint NOT NULL,
  monetary               numeric NOT NULL,
  average_order_value    numeric,
  recency_days           integer,
  r                      integer,
  f                      integer,
  m                      integer,
  rfm_segment            text,
  lifecycle_stage        text NOT NULL,
  cadence_days           double precision,
  expected_next_order_at timestamptz,
  overdue_ratio          double precision,
  stage_since            date,
  first_order_at         timestamptz,
  last_order_at          timestamptz,
  identifiers            integer NOT NULL,
  sources                integer NOT NULL
);
CREATE INDEX profile_snapshots_as_of ON cdp.profile_snapshots USING brin (as_of);
COMMENT ON TABLE cdp.profile_snapshots IS
  'pg_cdp profiles: one row per person per as_of written by cdp.refresh_profiles (history kept; readers use the views)';
SELECT pg_catalog.pg_extension_config_dump('cdp.profile_snapshots', '');

-- One row per snapshot: what the refresh saw.
CREATE TABLE cdp.profile_refreshes (
  as_of               timestamptz PRIMARY KEY,
  refreshed_at        timestamptz NOT NULL,
  persons             bigint NOT NULL,
  unattributed        bigint NOT NULL,
  orders              bigint NOT NULL,
  ignored_rows        bigint NOT NULL DEFAULT 0,
  currency            text,
  person_match        text NOT NULL,
  orders_relation     text NOT NULL,
  duration_ms         double precision NOT NULL
);
COMMENT ON TABLE cdp.profile_refreshes IS
  'pg_cdp profiles: one row per snapshot (as_of) with counts of persons, unattributed customer keys, orders and ignored order rows';
SELECT pg_catalog.pg_extension_config_dump('cdp.profile_refreshes', '');

-- Per-snapshot totals by RFM segment and by lifecycle stage, computed at refresh so that the
-- summary views answer from a few rows instead of re-reading a million profiles.
CREATE TABLE cdp.profile_group_totals (
  as_of             timestamptz NOT NULL REFERENCES cdp.profile_refreshes (as_of) ON DELETE CASCADE,
  dimension         text NOT NULL CHECK (dimension IN ('rfm_segment', 'lifecycle_stage')),
  group_name        text NOT NULL,
  customers         bigint NOT NULL,
  revenue           numeric NOT NULL,
  orders            bigint NOT NULL,
  recency_days_sum  bigint NOT NULL,
  recency_days_n    bigint NOT NULL,
  PRIMARY KEY (as_of, dimension, group_name)
);
COMMENT ON TABLE cdp.profile_group_totals IS
  'pg_cdp profiles: per-snapshot totals by RFM segment and lifecycle stage behind cdp.segment_summary and cdp.lifecycle_summary';
SELECT pg_catalog.pg_extension_config_dump('cdp.profile_group_totals', '');

-- Resolves a column of a relation through the catalog; 42703 when missing. Returns its type.
CREATE FUNCTION cdp.profile_column_type(relation regclass, column_name text, purpose text)
RETURNS regtype
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  found regtype;
BEGIN
  IF column_name IS NULL THEN
    RAISE EXCEPTION 'pg_cdp: % column must not be NULL', purpose USING ERRCODE = '22004';
  END IF;
  SELECT a.atttypid::regtype INTO found
    FROM pg_catalog.pg_attribute a
   WHERE a.attrelid = relation AND a.attname = column_name AND a.attnum > 0 AND NOT a.attisdropped;
  IF found IS NULL THEN
    RAISE EXCEPTION 'pg_cdp: column "%" (%) does not exist in relation %', column_name, purpose, relation
      USING ERRCODE = '42703';
  END IF;
  RETURN found;
END
$fn$;
COMMENT ON FUNCTION cdp.profile_column_type(regclass, text, text) IS
  'pg_cdp profiles (internal): the type of a column found through the catalog; ERROR 42703 naming it when missing';

-- Validates every configured column against the relation; raises 42703/42804 naming the column.
CREATE FUNCTION cdp.profile_check_columns(relation regclass, order_key_column text, customer_column text,
                                          ordered_at_column text, amount_column text, currency_column text)
RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  t regtype;
BEGIN
  PERFORM cdp.profile_column_type(relation, order_key_column, 'order key');
  PERFORM cdp.profile_column_type(relation, customer_column, 'customer');
  t := cdp.profile_column_type(relation, ordered_at_column, 'ordered_at');
  IF t NOT IN ('timestamp with time zone'::regtype, 'timestamp without time zone'::regtype, 'date'::regtype) THEN
    RAISE EXCEPTION 'pg_cdp: column "%" (ordered_at) of relation % has type %, expected timestamptz, timestamp or date',
      ordered_at_column, relation, t USING ERRCODE = '42804';
  END IF;
  t := cdp.profile_column_type(relation, amount_column, 'amount');
  IF t NOT IN ('numeric'::regtype, 'smallint'::regtype, 'integer'::regtype, 'bigint'::regtype) THEN
    RAISE EXCEPTION 'pg_cdp: column "%" (amount) of relation % has type %, expected numeric or an integer type',
      amount_column, relation, t USING ERRCODE = '42804',
      HINT = 'Money is summed exactly: cast floating-point amounts to numeric in a view and configure the view.';
  END IF;
  IF currency_column IS NOT NULL THEN
    t := cdp.profile_column_type(relation, currency_column, 'currency');
    IF t NOT IN ('text'::regtype, 'character varying'::regtype, 'character'::regtype) THEN
      RAISE EXCEPTION 'pg_cdp: column "%" (currency) of relation % has type %, expected text',
        currency_column, relation, t USING ERRCODE = '42804';
    END IF;
  END IF;
END
$fn$;
COMMENT ON FUNCTION cdp.profile_check_columns(regclass, text, text, text, text, text) IS
  'pg_cdp profiles (internal): validates the configured order columns (ERROR 42703 missing, 42804 wrong type, naming the column)';

CREATE FUNCTION cdp.configure_orders(
  orders            regclass,
  order_key_column  text,
  customer_column   text,
  ordered_at_column text,
  amount_column     text,
  customer_id_type  text DEFAULT NULL,
  person_source     text DEFAULT NULL,
  currency_column   text DEFAULT NULL,
  shop_time_zone    text DEFAULT NULL,
  segment_map       text DEFAULT 'default',
  lifecycle_policy  text DEFAULT 'default',
  bins              integer DEFAULT 5)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
  kind    "char";
  unknown boolean;
  match   text;
  zone    text := coalesce(shop_time_zone, pg_catalog.current_setting('TimeZone'));
  nsp     text;
  rel     text;
BEGIN
  IF orders IS NULL THEN
    RAISE EXCEPTION 'pg_cdp: orders relation must not be NULL' USING ERRCODE = '22004';
  END IF;
  SELECT c.relkind, n.nspname, c.relname INTO kind, nsp, rel
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
   WHERE c.oid = orders;
  IF kind NOT IN ('r', 'v', 'm', 'p', 'f') THEN
    RAISE EXCEPTION 'pg_cdp: % is not a table or view', orders USING ERRCODE = '42809';
  END IF;
  IF nsp LIKE 'pg_temp%' THEN
    RAISE EXCEPTION 'pg_cdp: % is a temporary relation; profiles need a permanent table or view', orders
      USING ERRCODE = '42809';
  END IF;
  PERFORM cdp.profile_check_columns(orders, order_key_column, customer_column, ordered_at_column,
                                    amount_column, currency_column);
  IF customer_id_type IS NOT NULL AND person_source IS NOT NULL THEN
    RAISE EXCEPTION 'pg_cdp: give either customer_id_type or person_source, not both' USING ERRCODE = '22023',
      HINT = 'person_source attributes each order through cdp.identity_map; customer_id_type looks the customer column up as an identifier.';
  END IF;
  IF person_source IS NOT NULL THEN
    IF btrim(person_source) = '' THEN
      RAISE EXCEPTION 'pg_cdp: person_source must not be empty' USING ERRCODE = '22023';
    END IF;
    match := 'identity_map';
  ELSIF customer_id_type IS NOT NULL THEN
    IF pg_catalog.to_regclass('cdp.identifier_types') IS NOT NULL THEN
      EXECUTE 'SELECT NOT EXISTS (SELECT 1 FROM cdp.identifier_types WHERE id_type = $1 AND enabled)'
        USING customer_id_type INTO STRICT unknown;
      IF unknown THEN
        RAISE EXCEPTION 'pg_cdp: identifier type "%" is not in cdp.identifier_types', customer_id_type
          USING ERRCODE = '22023';
      END IF;
    END IF;
    match := 'identifier';
  ELSE
    match := 'customer';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names WHERE name = zone)
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_abbrevs WHERE abbrev = zone) THEN
    RAISE EXCEPTION 'pg_cdp: unknown shop time zone "%"', zone USING ERRCODE = '22023',
      HINT = 'Use a name from pg_timezone_names, e.g. Europe/Berlin or UTC.';
  END IF;
  IF zone IN ('Etc/UTC', 'Etc/UCT', 'Etc/Universal', 'Etc/Zulu', 'UCT', 'Universal', 'Zulu', 'GMT', 'Etc/GMT', 'Etc/GMT0',
              'Etc/GMT+0', 'Etc/GMT-0', 'GMT0', 'GMT+0', 'GMT-0', 'Etc/Greenwich', 'Greenwich') THEN
    zone := 'UTC';  -- one spelling, so refresh skips the local-day shift
  END IF;
  IF bins IS NULL OR bins < 1 OR bins > 100 THEN
    RAISE EXCEPTION 'pg_cdp: bins must be between 1 and 100, got %', bins USING ERRCODE = '22023';
  END IF;
  IF segment_map IS NULL OR lifecycle_policy IS NULL THEN
    RAISE EXCEPTION 'pg_cdp: segment_map and lifecycle_policy must not be NULL' USING ERRCODE = '22004';
  END IF;

  DELETE FROM cdp.profile_config;
  INSERT INTO cdp.profile_config (orders_schema, orders_table, order_key_column, customer_column,
                                  ordered_at_column, amount_column, person_match, person_source,
                                  customer_id_type, currency_column, shop_time_zone, segment_map,
                                  lifecycle_policy, bins)
  VALUES (nsp, rel, order_key_column, customer_column, ordered_at_column, amount_column, match,
          person_source, customer_id_type, currency_column, zone, segment_map, lifecycle_policy, bins);
  RETURN pg_catalog.format('orders %s: person by %s%s, time zone %s', orders, match,
           CASE match WHEN 'identity_map' THEN ' (source ' || pg_catalog.quote_literal(person_source) || ')'
                      WHEN 'identifier' THEN ' (type ' || pg_catalog.quote_literal(customer_id_type) || ')'
                      ELSE '' END, zone);
END
$fn$;
COMMENT ON FUNCTION cdp.configure_orders(regclass, text, text, text, text, text, text, text, text, text, text, integer) IS
  'pg_cdp profiles: records how cdp.refresh_profiles reads orders and finds each order''s person (identity_map via person_source, an identifier type of the customer column, or the customer column itself); replaces any earlier configuration';

-- The grouping, scoring and writing of cdp.refresh_profiles (src/pg/profiles.cpp): runs orders_query
-- once (order rows at or before as_of: the person id column in identity modes, the customer key, the
-- order time as the shop's local wall clock stored as UTC, the amount; `columns` names them in its
-- result, the person id NULL without identity merge), groups the rows by person in C++ with the
-- rules of cdp.rfm_agg and cdp.lifecycle, counts identifiers and sources of merged persons, scores r,
-- f and m over all persons with the rule of cdp.rfm_score, names the segments (cell_segments: the
-- bins^3 cell names, NULL where a cell has none), appends the rows to cdp.profile_snapshots and
-- returns the totals per segment, per stage and ('all') of the snapshot.
CREATE FUNCTION cdp.profile_write_snapshot(orders_query text, person_match text, columns text[],
                                           as_of timestamptz, local_as_of timestamptz, shop_time_zone text,
                                           lifecycle_policy text, bins integer, cell_segments text[])
RETURNS TABLE (dimension text, group_name text, customers bigint, revenue numeric, orders bigint,
               recency_days_sum bigint, recency_days_n bigint, unattributed bigint, ignored_rows bigint)
AS 'MODULE_PATHNAME', 'cdp_profile_write_snapshot'
LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION cdp.profile_write_snapshot(text, text, text[], timestamptz, timestamptz, text, text, integer, text[]) IS
  'pg_cdp profiles (internal, used by cdp.refresh_profiles): reads the orders once, groups them by person in C++, scores and names segments, appends the snapshot rows and returns the totals';
REVOKE EXECUTE ON FUNCTION cdp.profile_write_snapshot(text, text, text[], timestamptz, timestamptz, text, text, integer, text[]) FROM PUBLIC;

-- Day boundaries: days are counted in the shop's zone, so the grouping is fed shop-local wall-clock
-- times read as UTC (the procedure runs with TimeZone = UTC); timestamps written are real instants.
CREATE PROCEDURE cdp.refresh_profiles(as_of timestamptz)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
AS $fn$
DECLARE
  cfg         cdp.profile_config;
  rel         regclass;
  t_ordered   regtype;
  t_customer  regtype;
  ordered_at  text;   -- the order time as timestamptz
  shifted     text;   -- the order time as shop-local wall clock read as UTC (day boundaries)
  customer    text;
  key_expr    text;   -- the customer key as the grouping reads it: an integer or text
  cell_segments text[];  -- segment of cell (r, f, m) at ((r - 1) * bins + f - 1) * bins + m
  currencies  text[];
  started     timestamptz := pg_catalog.clock_timestamp();
  local_as_of timestamptz;
  n_persons   bigint;
  n_unmatched bigint;
  n_orders    bigint;
  n_ignored   bigint;
  columns     text[];
  sql         text;
BEGIN
  IF as_of IS NULL OR NOT pg_catalog.isfinite(as_of) THEN
    RAISE EXCEPTION 'pg_cdp: as_of must be a finite timestamp, got %', coalesce(as_of::text, 'NULL')
      USING ERRCODE = '22023';
  END IF;
  SELECT * INTO cfg FROM cdp.profile_config;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'pg_cdp: profiles are not configured' USING ERRCODE = '55000',
      HINT = 'Call cdp.configure_orders(orders, order_key_column, customer_column, ordered_at_column, amount_column, ...) first.';
  END IF;
  rel := pg_catalog.to_regclass(pg_catalog.quote_ident(cfg.orders_schema) || '.' || pg_catalog.quote_ident(cfg.orders_table));
  IF rel IS NULL THEN
    RAISE EXCEPTION 'pg_cdp: configured orders relation %.% does not exist', cfg.orders_schema, cfg.orders_table
      USING ERRCODE = '42P01', HINT = 'Call cdp.configure_orders again.';
  END IF;
  PERFORM cdp.profile_check_columns(rel, cfg.order_key_column, cfg.customer_column, cfg.ordered_at_column,
                                    cfg.amount_column, cfg.currency_column);
  -- One refresh at a time; readers (ACCESS SHARE) are not blocked.
  LOCK TABLE cdp.profile_snapshots IN SHARE ROW EXCLUSIVE MODE;

  t_ordered := cdp.profile_column_type(rel, cfg.ordered_at_column, 'ordered_at');
  t_customer := cdp.profile_column_type(rel, cfg.customer_column, 'customer');
  IF t_ordered = 'timestamp with time zone'::regtype THEN
    ordered_at := 'o.' || pg_catalog.quote_ident(cfg.ordered_at_column);
  ELSE  -- local wall-clock times (or dates) of the shop
    ordered_at := pg_catalog.format('(o.%I::timestamp AT TIME ZONE %L)', cfg.ordered_at_column, cfg.shop_time_zone);
  END IF;
  IF cfg.shop_time_zone = 'UTC' THEN
    shifted := ordered_at;
    local_as_of := as_of;
  ELSIF t_ordered = 'timestamp with time zone'::regtype THEN
    shifted := pg_catalog.format('((%s AT TIME ZONE %L) AT TIME ZONE ''UTC'')', ordered_at, cfg.shop_time_zone);
    local_as_of := (as_of AT TIME ZONE cfg.shop_time_zone) AT TIME ZONE 'UTC';
  ELSE
    shifted := pg_catalog.format('(o.%I::timestamp AT TIME ZONE ''UTC'')', cfg.ordered_at_column);
    local_as_of := (as_of AT TIME ZONE cfg.shop_time_zone) AT TIME ZONE 'UTC';
  END IF;
  customer := 'o.' || pg_catalog.quote_ident(cfg.customer_column);

  -- Mixed currencies are refused, never summed.
  IF cfg.currency_column IS NOT NULL THEN
    EXECUTE pg_catalog.format(
      'SELECT pg_catalog.array_agg(c ORDER BY c) FROM (SELECT DISTINCT o.%I AS c FROM %s o WHERE %s <= $1 LIMIT 11) d',
      cfg.currency_column, rel, ordered_at) INTO currencies USING as_of;
    IF pg_catalog.cardinality(currencies) > 1 THEN
      RAISE EXCEPTION 'pg_cdp: orders in % are in more than one currency', rel USING ERRCODE = '22023',
        DETAIL = pg_catalog.format('Currencies found in column %I: %s.', cfg.currency_column,
                                   pg_catalog.array_to_string(currencies, ', ', 'NULL')),
        HINT = 'Convert amounts to one currency in a view (or filter one currency) and configure that view.';
    END IF;
  END IF;

  -- The order rows at or before as_of, each with its person: the person id of the merge (identity
  -- modes), else the customer key, grouped as an integer (integer columns) or as its text (every
  -- other type; the text is what person_key shows). Without identity merge, a stored table the caller
  -- may read whole is read with SELECT *: the scan's tuples reach the grouping without a projection.
  IF cfg.person_match = 'customer' THEN
    key_expr := CASE WHEN t_customer IN ('smallint'::regtype, 'integer'::regtype, 'bigint'::regtype,
                                         'text'::regtype, 'character varying'::regtype)
                     THEN customer ELSE '(' || customer || ')::text' END;
    IF key_expr = customer AND shifted = ordered_at AND t_ordered = 'timestamp with time zone'::regtype
       AND (SELECT c.relkind IN ('r', 'm', 'p') FROM pg_catalog.pg_class c WHERE c.oid = rel)
       AND pg_catalog.has_table_privilege(rel, 'SELECT') THEN
      sql := pg_catalog.format('SELECT * FROM %s o WHERE %s <= %L::timestamptz', rel, ordered_at, as_of);
      columns := ARRAY[NULL, cfg.customer_column, cfg.ordered_at_column, cfg.amount_column];
    ELSE
      sql := pg_catalog.format(
        'SELECT %s AS customer, %s AS ordered_at, o.%I AS amount FROM %s o WHERE %s <= %L::timestamptz',
        key_expr, shifted, cfg.amount_column, rel, ordered_at, as_of);
      columns := ARRAY[NULL, 'customer', 'ordered_at', 'amount'];
    END IF;
  ELSE
    sql := pg_catalog.format(
      'SELECT p.person_id, CASE WHEN p.person_id IS NULL THEN (%s)::text END AS customer, %s AS ordered_at, '
      'o.%I AS amount FROM %s WHERE %s <= %L::timestamptz',
      customer, shifted, cfg.amount_column,
      CASE cfg.person_match
        WHEN 'identity_map' THEN pg_catalog.format(
          '%s o LEFT JOIN cdp.identity_map im ON im.source = %L AND im.source_key = o.%I::text '
          'CROSS JOIN LATERAL (SELECT im.person_id) p',
          rel, cfg.person_source, cfg.order_key_column)
        ELSE pg_catalog.format(
          '%1$s o LEFT JOIN (SELECT d.k, cdp.person_id(%5$L, d.k::text) AS pid '
          '                    FROM (SELECT DISTINCT o.%2$I AS k FROM %1$s o WHERE %3$s <= %6$L::timestamptz) d) pm ON pm.k = %4$s '
          'CROSS JOIN LATERAL (SELECT pm.pid AS person_id) p',
          rel, cfg.customer_column, ordered_at, customer, cfg.customer_id_type, as_of) END,
      ordered_at, as_of);
    columns := ARRAY['person_id', 'customer', 'ordered_at', 'amount'];
  END IF;

  -- Replacing: a snapshot's rows are written together with its cdp.profile_refreshes row (all or
  -- nothing), so a new as_of has no rows to delete and the history is not scanned for them (the BRIN
  -- index cannot skip the ranges appended since the last VACUUM).
  IF EXISTS (SELECT 1 FROM cdp.profile_refreshes r WHERE r.as_of = refresh_profiles.as_of) THEN
    DELETE FROM cdp.profile_refreshes r WHERE r.as_of = refresh_profiles.as_of;  -- cascades to group totals
    DELETE FROM cdp.profile_snapshots s WHERE s.as_of = refresh_profiles.as_of;
  END IF;

  -- Segment maps are on the 1..5 scale: with other bins the segment stays NULL, as in cdp.rfm.
  IF cfg.bins = 5 THEN
    SELECT pg_catalog.array_agg(cdp.rfm_segment(r.r, f.f, m.m, cfg.segment_map) ORDER BY r.r, f.f, m.m)
      INTO cell_segments
      FROM pg_catalog.generate_series(1, 5) r(r), pg_catalog.generate_series(1, 5) f(f),
           pg_catalog.generate_series(1, 5) m(m);
  ELSE
    cell_segments := pg_catalog.array_fill(NULL::text, ARRAY[cfg.bins * cfg.bins * cfg.bins]);
  END IF;
  INSERT INTO cdp.profile_refreshes (as_of, refreshed_at, persons, unattributed, orders, currency,
                                     person_match, orders_relation, duration_ms)
  VALUES (as_of, pg_catalog.now(), 0, 0, 0, currencies[1], cfg.person_match, rel::text, 0);

  -- cdp.profile_write_snapshot reads the orders once, groups them by person in C++ (the rules of
  -- cdp.rfm_agg and cdp.lifecycle), scores all persons with the rule of cdp.rfm_score, names the
  -- segments, appends the rows in bulk and returns the totals per segment and stage (the history
  -- table is never re-read). Values enter the query as quoted literals.
  WITH written AS (
    SELECT * FROM cdp.profile_write_snapshot(sql, cfg.person_match, columns, as_of, local_as_of,
                                              cfg.shop_time_zone, cfg.lifecycle_policy, cfg.bins, cell_segments)),
  stored AS (
    INSERT INTO cdp.profile_group_totals
    SELECT refresh_profiles.as_of, w.dimension, w.group_name, w.customers, w.revenue, w.orders,
           w.recency_days_sum, w.recency_days_n
      FROM written w WHERE w.dimension <> 'all')
  SELECT w.customers, w.unattributed, w.orders, w.ignored_rows INTO n_persons, n_unmatched, n_orders, n_ignored
    FROM written w WHERE w.dimension = 'all';
  IF n_ignored > 0 THEN
    RAISE NOTICE 'refresh_profiles: % order rows left out (NULL amount, or neither customer key nor person)', n_ignored;
  END IF;

  UPDATE cdp.profile_refreshes r
     SET persons = n_persons, unattributed = n_unmatched, orders = n_orders, ignored_rows = n_ignored,
         duration_ms = 1000 * extract(epoch FROM pg_catalog.clock_timestamp() - started)
   WHERE r.as_of = refresh_profiles.as_of;
  RAISE DEBUG 'refresh_profiles: % persons (% unattributed) as of % in %', n_persons, n_unmatched, as_of,
    pg_catalog.clock_timestamp() - started;
END
$fn$;
COMMENT ON PROCEDURE cdp.refresh_profiles(timestamptz) IS
  'pg_cdp profiles: writes the snapshot of every person with orders at or before as_of into cdp.profile_snapshots (replacing an earlier snapshot of the same as_of; all-or-nothing)';

-- ---------------------------------------------------------------------------------------------
-- Views for dashboards: plain columns only. They are owned by the extension owner, so a reader
-- granted SELECT on them (cdp.grant_reader) needs no privilege on the tables behind them.
-- ---------------------------------------------------------------------------------------------
CREATE VIEW cdp.profile_history AS
SELECT s.as_of, s.person_key, s.person_id, s.orders, s.monetary, s.average_order_value, s.recency_days,
       s.r, s.f, s.m, s.rfm_segment, s.lifecycle_stage, s.cadence_days, s.expected_next_order_at,
       s.overdue_ratio, s.stage_since, s.first_order_at, s.last_order_at, s.identifiers, s.sources
  FROM cdp.profile_snapshots s;

CREATE VIEW cdp.customer_profiles AS
SELECT h.*
  FROM cdp.profile_history h
 WHERE h.as_of = (SELECT pg_catalog.max(r.as_of) FROM cdp.profile_refreshes r);

CREATE VIEW cdp.profile_snapshot_list AS
SELECT r.as_of, r.refreshed_at, r.persons, r.unattributed, r.orders, r.ignored_rows, r.currency, r.person_match,
       r.orders_relation
  FROM cdp.profile_refreshes r;

-- Per-group figures of the latest snapshot, for both dimensions; the two summary views below pick one.
CREATE VIEW cdp.profile_group_summary AS
WITH latest AS (SELECT pg_catalog.max(r.as_of) AS as_of FROM cdp.profile_refreshes r),
groups AS (
  SELECT g.*,
         pg_catalog.sum(g.customers) OVER (PARTITION BY g.dimension) AS all_customers,
         pg_catalog.sum(g.revenue) OVER (PARTITION BY g.dimension) AS all_revenue
    FROM cdp.profile_group_totals g JOIN latest l ON g.as_of = l.as_of)
SELECT g.as_of,
       g.dimension,
       g.group_name,
       g.customers,
       g.customers::double precision / g.all_customers AS customer_share,
       g.revenue,
       (g.revenue / NULLIF(g.all_revenue, 0))::double precision AS revenue_share,
       pg_catalog.round(g.orders::numeric / g.customers, 2) AS average_orders,
       pg_catalog.round(g.revenue / g.customers, 2) AS average_monetary,
       pg_catalog.round(g.revenue / NULLIF(g.orders, 0), 2) AS average_order_value,
       pg_catalog.round(g.recency_days_sum::numeric / NULLIF(g.recency_days_n, 0), 1) AS average_recency_days
  FROM groups g;
COMMENT ON VIEW cdp.profile_group_summary IS
  'pg_cdp profiles (internal): per RFM segment and per lifecycle stage figures of the latest snapshot, behind cdp.segment_summary and cdp.lifecycle_summary';

CREATE VIEW cdp.segment_summary AS
SELECT s.as_of, s.group_name AS rfm_segment, s.customers, s.customer_share, s.revenue, s.revenue_share,
       s.average_orders, s.average_monetary, s.average_order_value, s.average_recency_days
  FROM cdp.profile_group_summary s
 WHERE s.dimension = 'rfm_segment';

CREATE VIEW cdp.lifecycle_summary AS
SELECT s.as_of, s.group_name AS lifecycle_stage, s.customers, s.customer_share, s.revenue, s.revenue_share,
       s.average_orders, s.average_monetary, s.average_order_value, s.average_recency_days
  FROM cdp.profile_group_summary s
 WHERE s.dimension = 'lifecycle_stage';

-- From -> to counts of persons between two snapshots, by RFM segment or lifecycle stage. Reads
-- the view cdp.profile_history, so a reader with cdp.grant_reader can call it with its own rights.
CREATE FUNCTION cdp.segment_flow(from_as_of timestamptz, to_as_of timestamptz, dimension text DEFAULT 'rfm_segment')
RETURNS TABLE (from_group text, to_group text, customers bigint, share_of_from double precision)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  IF dimension IS NULL OR dimension NOT IN ('rfm_segment', 'lifecycle_stage') THEN
    RAISE EXCEPTION 'pg_cdp: dimension must be ''rfm_segment'' or ''lifecycle_stage'', got %',
      coalesce(pg_catalog.quote_literal(dimension), 'NULL') USING ERRCODE = '22023';
  END IF;
  IF from_as_of IS NULL OR to_as_of IS NULL THEN
    RAISE EXCEPTION 'pg_cdp: from_as_of and to_as_of must not be NULL' USING ERRCODE = '22004';
  END IF;
  RETURN QUERY EXECUTE pg_catalog.format($q$
    SELECT f.from_group, f.to_group, f.customers,
           f.customers::double precision / pg_catalog.sum(f.customers) OVER (PARTITION BY f.from_group)
      FROM (SELECT CASE WHEN a.person_key IS NULL THEN '(absent)' ELSE coalesce(a.%1$I, '(unscored)') END AS from_group,
                   CASE WHEN b.person_key IS NULL THEN '(absent)' ELSE coalesce(b.%1$I, '(unscored)') END AS to_group,
                   pg_catalog.count(*) AS customers
              FROM (SELECT h.person_key, h.%1$I FROM cdp.profile_history h WHERE h.as_of = $1) a
              FULL JOIN (SELECT h.person_key, h.%1$I FROM cdp.profile_history h WHERE h.as_of = $2) b
                ON a.person_key = b.person_key
             GROUP BY 1, 2) f$q$, dimension)
    USING from_as_of, to_as_of;
END
$fn$;
COMMENT ON FUNCTION cdp.segment_flow(timestamptz, timestamptz, text) IS
  'pg_cdp profiles: persons moving from each RFM segment (dimension ''rfm_segment'') or lifecycle stage (''lifecycle_stage'') in snapshot from_as_of to each in snapshot to_as_of; ''(absent)'' = not in that snapshot, ''(unscored)'' = no positive order';

CREATE VIEW cdp.segment_movement AS
SELECT p.from_as_of, p.to_as_of, f.from_group AS from_segment, f.to_group AS to_segment, f.customers, f.share_of_from
  FROM (SELECT pg_catalog.min(x.as_of) AS from_as_of, pg_catalog.max(x.as_of) AS to_as_of
          FROM (SELECT r.as_of FROM cdp.profile_refreshes r ORDER BY r.as_of DESC LIMIT 2) x
        HAVING pg_catalog.count(*) = 2) p
  CROSS JOIN LATERAL cdp.segment_flow(p.from_as_of, p.to_as_of, 'rfm_segment') f;

CREATE VIEW cdp.stage_movement AS
SELECT p.from_as_of, p.to_as_of, f.from_group AS from_stage, f.to_group AS to_stage, f.customers, f.share_of_from
  FROM (SELECT pg_catalog.min(x.as_of) AS from_as_of, pg_catalog.max(x.as_of) AS to_as_of
          FROM (SELECT r.as_of FROM cdp.profile_refreshes r ORDER BY r.as_of DESC LIMIT 2) x
        HAVING pg_catalog.count(*) = 2) p
  CROSS JOIN LATERAL cdp.segment_flow(p.from_as_of, p.to_as_of, 'lifecycle_stage') f;

-- Read-only access for a dashboard role: the views and nothing else.
CREATE FUNCTION cdp.grant_reader(reader regrole)
RETURNS text
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
  IF reader IS NULL THEN
    RAISE EXCEPTION 'pg_cdp: role must not be NULL' USING ERRCODE = '22004';
  END IF;
  EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA cdp TO %s', reader);
  EXECUTE pg_catalog.format('GRANT SELECT ON cdp.customer_profiles, cdp.profile_history, cdp.profile_snapshot_list, '
                            'cdp.segment_summary, cdp.lifecycle_summary, cdp.segment_movement, cdp.stage_movement TO %s',
                            reader);
  EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION cdp.segment_flow(timestamptz, timestamptz, text) TO %s', reader);
  RETURN pg_catalog.format('%s may read cdp.customer_profiles, cdp.profile_history, cdp.profile_snapshot_list, '
                           'cdp.segment_summary, cdp.lifecycle_summary, cdp.segment_movement, cdp.stage_movement '
                           'and call cdp.segment_flow', reader);
END
$fn$;
COMMENT ON FUNCTION cdp.grant_reader(regrole) IS
  'pg_cdp profiles: gives a dashboard role USAGE on schema cdp and SELECT on the profile views (no tables, no writing procedures)';

-- Writing entry points are for the owner (and roles it grants explicitly), not PUBLIC.
REVOKE EXECUTE ON FUNCTION cdp.configure_orders(regclass, text, text, text, text, text, text, text, text, text, text, integer) FROM PUBLIC;
REVOKE EXECUTE ON PROCEDURE cdp.refresh_profiles(timestamptz) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION cdp.grant_reader(regrole) FROM PUBLIC;

-- Comments on every view and column (dashboards and dbt docs show them).
COMMENT ON VIEW cdp.customer_profiles IS 'pg_cdp profiles: one row per person of the latest snapshot (plain columns for dashboards)';
COMMENT ON COLUMN cdp.customer_profiles.as_of IS 'the snapshot''s reference time: orders placed after it are ignored';
COMMENT ON COLUMN cdp.customer_profiles.person_key IS 'the person: ''person:<person_id>'' when identity merge attributed the orders, else ''customer:<customer key>'' (orders whose person is unknown are counted under their own customer key)';
COMMENT ON COLUMN cdp.customer_profiles.person_id IS 'cdp.persons id of the person; NULL when the orders were not attributed to a person';
COMMENT ON COLUMN cdp.customer_profiles.orders IS 'orders with a positive amount (refund rows are not orders)';
COMMENT ON COLUMN cdp.customer_profiles.monetary IS 'sum of all amounts at or before as_of (refunds are negative rows and reduce it)';
COMMENT ON COLUMN cdp.customer_profiles.average_order_value IS 'monetary divided by orders (NULL without a positive order)';
COMMENT ON COLUMN cdp.customer_profiles.recency_days IS 'calendar days in the shop time zone from the last positive order to as_of (NULL without a positive order)';
COMMENT ON COLUMN cdp.customer_profiles.r IS 'recency score 1..bins (more recent scores higher); NULL without a positive order';
COMMENT ON COLUMN cdp.customer_profiles.f IS 'frequency score 1..bins';
COMMENT ON COLUMN cdp.customer_profiles.m IS 'monetary score 1..bins';
COMMENT ON COLUMN cdp.customer_profiles.rfm_segment IS 'segment name of (r, f, m) in the configured segment map; NULL without a positive order';
COMMENT ON COLUMN cdp.customer_profiles.lifecycle_stage IS 'lifecycle stage from cdp.lifecycle under the configured policy';
COMMENT ON COLUMN cdp.customer_profiles.cadence_days IS 'the person''s own buying rhythm: median days between order days (NULL with fewer than two order days)';
COMMENT ON COLUMN cdp.customer_profiles.expected_next_order_at IS 'when the next order is due by the cadence used';
COMMENT ON COLUMN cdp.customer_profiles.overdue_ratio IS 'days since the last order divided by the cadence used';
COMMENT ON COLUMN cdp.customer_profiles.stage_since IS 'the shop-local day on which the current lifecycle stage began';
COMMENT ON COLUMN cdp.customer_profiles.first_order_at IS 'first order at or before as_of';
COMMENT ON COLUMN cdp.customer_profiles.last_order_at IS 'last positive order at or before as_of';
COMMENT ON COLUMN cdp.customer_profiles.identifiers IS 'distinct identifiers cdp.person_identifiers holds for the person (0 when not attributed)';
COMMENT ON COLUMN cdp.customer_profiles.sources IS 'distinct sources in cdp.identity_map with a record of the person (0 when not attributed)';
COMMENT ON VIEW cdp.profile_history IS 'pg_cdp profiles: every snapshot kept, one row per person per as_of';
-- profile_history has the same columns as customer_profiles: the same comments.
DO $comments$
DECLARE
  col record;
BEGIN
  FOR col IN SELECT a.attname, pg_catalog.col_description(a.attrelid, a.attnum) AS description
               FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = 'cdp.customer_profiles'::pg_catalog.regclass AND a.attnum > 0 AND NOT a.attisdropped
  LOOP
    EXECUTE pg_catalog.format('COMMENT ON COLUMN cdp.profile_history.%I IS %L', col.attname, col.description);
  END LOOP;
END
$comments$;
COMMENT ON VIEW cdp.profile_snapshot_list IS 'pg_cdp profiles: the snapshots kept, with counts';
COMMENT ON COLUMN cdp.profile_snapshot_list.as_of IS 'the snapshot''s reference time';
COMMENT ON COLUMN cdp.profile_snapshot_list.refreshed_at IS 'when cdp.refresh_profiles wrote it';
COMMENT ON COLUMN cdp.profile_snapshot_list.persons IS 'profiles in the snapshot';
COMMENT ON COLUMN cdp.profile_snapshot_list.unattributed IS 'profiles counted under their own customer key because no person was found';
COMMENT ON COLUMN cdp.profile_snapshot_list.orders IS 'positive orders over all profiles';
COMMENT ON COLUMN cdp.profile_snapshot_list.ignored_rows IS 'order rows at or before as_of left out: NULL amount, or neither customer key nor person';
COMMENT ON COLUMN cdp.profile_snapshot_list.currency IS 'the single currency of the orders when a currency column is configured';
COMMENT ON COLUMN cdp.profile_snapshot_list.person_match IS 'how orders found their person: identity_map, identifier or customer';
COMMENT ON COLUMN cdp.profile_snapshot_list.orders_relation IS 'the orders table or view read';
COMMENT ON VIEW cdp.segment_summary IS 'pg_cdp profiles: persons, shares, revenue and averages per RFM segment in the latest snapshot';
COMMENT ON COLUMN cdp.segment_summary.as_of IS 'the snapshot summarised (the latest)';
COMMENT ON COLUMN cdp.segment_summary.rfm_segment IS 'RFM segment; ''(unscored)'' for persons without a positive order';
COMMENT ON COLUMN cdp.segment_summary.customers IS 'persons in the segment';
COMMENT ON COLUMN cdp.segment_summary.customer_share IS 'customers divided by all persons of the snapshot (0..1)';
COMMENT ON COLUMN cdp.segment_summary.revenue IS 'sum of monetary (refunds deducted)';
COMMENT ON COLUMN cdp.segment_summary.revenue_share IS 'revenue divided by the revenue of all persons of the snapshot';
COMMENT ON COLUMN cdp.segment_summary.average_orders IS 'orders per person, rounded to 2 decimals';
COMMENT ON COLUMN cdp.segment_summary.average_monetary IS 'revenue per person, rounded to 2 decimals';
COMMENT ON COLUMN cdp.segment_summary.average_order_value IS 'revenue per order, rounded to 2 decimals';
COMMENT ON COLUMN cdp.segment_summary.average_recency_days IS 'mean recency_days of persons with a positive order, rounded to 1 decimal';
COMMENT ON VIEW cdp.lifecycle_summary IS 'pg_cdp profiles: persons, shares, revenue and averages per lifecycle stage in the latest snapshot';
COMMENT ON COLUMN cdp.lifecycle_summary.as_of IS 'the snapshot summarised (the latest)';
COMMENT ON COLUMN cdp.lifecycle_summary.lifecycle_stage IS 'lifecycle stage';
COMMENT ON COLUMN cdp.lifecycle_summary.customers IS 'persons in the stage';
COMMENT ON COLUMN cdp.lifecycle_summary.customer_share IS 'customers divided by all persons of the snapshot (0..1)';
COMMENT ON COLUMN cdp.lifecycle_summary.revenue IS 'sum of monetary (refunds deducted)';
COMMENT ON COLUMN cdp.lifecycle_summary.revenue_share IS 'revenue divided by the revenue of all persons of the snapshot';
COMMENT ON COLUMN cdp.lifecycle_summary.average_orders IS 'orders per person, rounded to 2 decimals';
COMMENT ON COLUMN cdp.lifecycle_summary.average_monetary IS 'revenue per person, rounded to 2 decimals';
COMMENT ON COLUMN cdp.lifecycle_summary.average_order_value IS 'revenue per order, rounded to 2 decimals';
COMMENT ON COLUMN cdp.lifecycle_summary.average_recency_days IS 'mean recency_days of persons with a positive order, rounded to 1 decimal';
COMMENT ON COLUMN cdp.profile_group_summary.dimension IS 'rfm_segment or lifecycle_stage';
COMMENT ON COLUMN cdp.profile_group_summary.group_name IS 'the RFM segment or lifecycle stage';
-- The shared columns of cdp.profile_group_summary carry cdp.segment_summary's comments.
DO $comments$
DECLARE
  col record;
BEGIN
  FOR col IN SELECT a.attname, pg_catalog.col_description(a.attrelid, a.attnum) AS description
               FROM pg_catalog.pg_attribute a
              WHERE a.attrelid = 'cdp.segment_summary'::pg_catalog.regclass AND a.attnum > 0
                AND a.attname <> 'rfm_segment'
  LOOP
    EXECUTE pg_catalog.format('COMMENT ON COLUMN cdp.profile_group_summary.%I IS %L', col.attname, col.description);
  END LOOP;
END
$comments$;
COMMENT ON VIEW cdp.segment_movement IS 'pg_cdp profiles: persons moving between RFM segments from the second latest to the latest snapshot';
COMMENT ON COLUMN cdp.segment_movement.from_as_of IS 'the earlier of the two latest snapshots';
COMMENT ON COLUMN cdp.segment_movement.to_as_of IS 'the latest snapshot';
COMMENT ON COLUMN cdp.segment_movement.from_segment IS 'RFM segment in the earlier snapshot; ''(absent)'' when the person is not in it, ''(unscored)'' without a positive order';
COMMENT ON COLUMN cdp.segment_movement.to_segment IS 'RFM segment in the latest snapshot; ''(absent)'' when the person is not in it, ''(unscored)'' without a positive order';
COMMENT ON COLUMN cdp.segment_movement.customers IS 'persons making this move';
COMMENT ON COLUMN cdp.segment_movement.share_of_from IS 'customers divided by all persons of the from group (0..1)';
COMMENT ON VIEW cdp.stage_movement IS 'pg_cdp profiles: persons moving between lifecycle stages from the second latest to the latest snapshot';
COMMENT ON COLUMN cdp.stage_movement.from_as_of IS 'the earlier of the two latest snapshots';
COMMENT ON COLUMN cdp.stage_movement.to_as_of IS 'the latest snapshot';
COMMENT ON COLUMN cdp.stage_movement.from_stage IS 'lifecycle stage in the earlier snapshot; ''(absent)'' when the person is not in it, ''(unscored)'' without a positive order';
COMMENT ON COLUMN cdp.stage_movement.to_stage IS 'lifecycle stage in the latest snapshot; ''(absent)'' when the person is not in it, ''(unscored)'' without a positive order';
COMMENT ON COLUMN cdp.stage_movement.customers IS 'persons making this move';
COMMENT ON COLUMN cdp.stage_movement.share_of_from IS 'customers divided by all persons of the from group (0..1)';
