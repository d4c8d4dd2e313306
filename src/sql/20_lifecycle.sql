
-- ===================================================================================================
-- Lifecycle stages judged by each customer's own buying rhythm (docs/lifecycle.md has the exact rules)
-- ===================================================================================================

CREATE TABLE cdp.lifecycle_policies (
  policy                   text PRIMARY KEY CHECK (pg_catalog.octet_length(policy) BETWEEN 1 AND 63),
  one_time_cadence_days    double precision NOT NULL CHECK (one_time_cadence_days BETWEEN 1 AND 36500),
  at_risk_factor           double precision NOT NULL CHECK (at_risk_factor >= 1),
  lapsed_factor            double precision NOT NULL,
  churned_factor           double precision NOT NULL CHECK (churned_factor <= 1000),
  loyal_min_order_days     integer NOT NULL CHECK (loyal_min_order_days >= 2),
  min_gaps_for_own_cadence integer NOT NULL DEFAULT 1 CHECK (min_gaps_for_own_cadence >= 1),
  shipped                  boolean NOT NULL DEFAULT false,
  description              text NOT NULL DEFAULT '',
  CONSTRAINT lifecycle_policies_factors_increase
    CHECK (at_risk_factor < lapsed_factor AND lapsed_factor < churned_factor)
);
COMMENT ON TABLE cdp.lifecycle_policies IS
  'Named thresholds of the lifecycle stage rule: ratio = days since last order day / cadence used; at_risk, lapsed, churned beyond their factors. Shipped rows are read-only; add your own or fit one with cdp.fit_lifecycle_policy()';
COMMENT ON COLUMN cdp.lifecycle_policies.policy IS 'Policy name, passed as the policy argument of cdp.lifecycle()';
COMMENT ON COLUMN cdp.lifecycle_policies.one_time_cadence_days IS
  'Cadence (days) assumed for customers with fewer than min_gaps_for_own_cadence gaps between order days';
COMMENT ON COLUMN cdp.lifecycle_policies.at_risk_factor IS 'Overdue ratio above which a customer is at_risk (>= 1)';
COMMENT ON COLUMN cdp.lifecycle_policies.lapsed_factor IS 'Overdue ratio above which a customer is lapsed (> at_risk_factor)';
COMMENT ON COLUMN cdp.lifecycle_policies.churned_factor IS 'Overdue ratio above which a customer is churned (> lapsed_factor, <= 1000)';
COMMENT ON COLUMN cdp.lifecycle_policies.loyal_min_order_days IS 'Order days an active customer needs to be loyal';
COMMENT ON COLUMN cdp.lifecycle_policies.min_gaps_for_own_cadence IS
  'Gaps between order days a customer needs before their own median gap is used as their cadence';
COMMENT ON COLUMN cdp.lifecycle_policies.shipped IS 'true for the rows pg_cdp ships (read-only, not dumped)';
COMMENT ON COLUMN cdp.lifecycle_policies.description IS 'What the policy is for, or how it was fitted';

INSERT INTO cdp.lifecycle_policies (policy, one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor,
                                    loyal_min_order_days, min_gaps_for_own_cadence, shipped, description)
VALUES ('default', 90, 1.5, 3, 6, 4, 1, true,
        'pg_cdp default: one-time buyers are expected back within 90 days; at_risk beyond 1.5, lapsed beyond 3, churned beyond 6 times the cadence; loyal from 4 order days');

-- Shipped rows are not dumped (CREATE EXTENSION recreates them), so they must stay as shipped.
CREATE FUNCTION cdp.lifecycle_policies_guard() RETURNS trigger
LANGUAGE plpgsql SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS $guard$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    RAISE EXCEPTION 'cdp.lifecycle_policies cannot be truncated: it holds the policies shipped with pg_cdp'
      USING ERRCODE = '55000', HINT = 'DELETE FROM cdp.lifecycle_policies WHERE NOT shipped';
  END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.shipped THEN
    RAISE EXCEPTION 'lifecycle policy "%" ships with pg_cdp and is read-only', OLD.policy
      USING ERRCODE = '55000',
            HINT = 'Copy it under another name and change the copy, or fit one with cdp.fit_lifecycle_policy().';
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.shipped THEN
    RAISE EXCEPTION 'only pg_cdp itself adds shipped lifecycle policies' USING ERRCODE = '55000',
      HINT = 'Insert your policy with shipped = false.';
  END IF;
  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$guard$;
COMMENT ON FUNCTION cdp.lifecycle_policies_guard() IS
  'Trigger function keeping the shipped rows of cdp.lifecycle_policies read-only';
CREATE TRIGGER lifecycle_policies_guard BEFORE INSERT OR UPDATE OR DELETE ON cdp.lifecycle_policies
  FOR EACH ROW EXECUTE FUNCTION cdp.lifecycle_policies_guard();
CREATE TRIGGER lifecycle_policies_no_truncate BEFORE TRUNCATE ON cdp.lifecycle_policies
  FOR EACH STATEMENT EXECUTE FUNCTION cdp.lifecycle_policies_guard();
SELECT pg_catalog.pg_extension_config_dump('cdp.lifecycle_policies', 'WHERE NOT shipped');
GRANT SELECT ON cdp.lifecycle_policies TO PUBLIC;

-- Field order: never-NULL and fixed-width fields first, the often-NULL typical gap and the text stage
-- last, so that PostgreSQL extracts most fields at cached offsets (a 1M-customer dashboard reads them all).
CREATE TYPE cdp.lifecycle_state AS (
  orders                 bigint,
  order_days             integer,
  first_order_at         timestamptz,
  last_order_at          timestamptz,
  days_since_last_order  integer,
  overdue_ratio          double precision,
  cadence_days           double precision,
  expected_next_order_at timestamptz,
  stage_since            date,
  typical_gap_days       double precision,
  stage                  text
);
COMMENT ON TYPE cdp.lifecycle_state IS
  'Result of cdp.lifecycle(): orders (positive-amount rows), order_days (distinct days), first/last order, days since the last order day, overdue ratio, cadence used, expected next order, first day of the current stage, own median gap, stage';

CREATE TYPE cdp.lifecycle_point AS (period_end date, stage text);
COMMENT ON TYPE cdp.lifecycle_point IS 'One element of cdp.lifecycle_timeline(): the stage at the end of period_end';

-- Transition functions: STABLE (day boundaries follow the session TimeZone; policies are read once per query).
CREATE FUNCTION cdp.lifecycle_transfn(internal, timestamptz, numeric, timestamptz) RETURNS internal
  LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'cdp_lifecycle_transfn';
COMMENT ON FUNCTION cdp.lifecycle_transfn(internal, timestamptz, numeric, timestamptz) IS
  'Transition function of cdp.lifecycle() and cdp.lifecycle_stage() with the default policy';
CREATE FUNCTION cdp.lifecycle_transfn(internal, timestamptz, numeric, timestamptz, text) RETURNS internal
  LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'cdp_lifecycle_transfn';
COMMENT ON FUNCTION cdp.lifecycle_transfn(internal, timestamptz, numeric, timestamptz, text) IS
  'Transition function of cdp.lifecycle() and cdp.lifecycle_stage()';
CREATE FUNCTION cdp.lifecycle_timeline_transfn(internal, timestamptz, numeric, date, date, interval) RETURNS internal
  LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'cdp_lifecycle_timeline_transfn';
COMMENT ON FUNCTION cdp.lifecycle_timeline_transfn(internal, timestamptz, numeric, date, date, interval) IS
  'Transition function of cdp.lifecycle_timeline() with the default policy';
CREATE FUNCTION cdp.lifecycle_timeline_transfn(internal, timestamptz, numeric, date, date, interval, text)
  RETURNS internal LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'cdp_lifecycle_timeline_transfn';
COMMENT ON FUNCTION cdp.lifecycle_timeline_transfn(internal, timestamptz, numeric, date, date, interval, text) IS
  'Transition function of cdp.lifecycle_timeline()';

CREATE FUNCTION cdp.lifecycle_combinefn(internal, internal) RETURNS internal
  LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'cdp_lifecycle_combinefn';
COMMENT ON FUNCTION cdp.lifecycle_combinefn(internal, internal) IS
  'Combine function of the lifecycle aggregates: merges two sorted sets of order days';
CREATE FUNCTION cdp.lifecycle_serializefn(internal) RETURNS bytea
  LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'cdp_lifecycle_serializefn';
COMMENT ON FUNCTION cdp.lifecycle_serializefn(internal) IS 'Serializes a lifecycle aggregate state for parallel plans';
CREATE FUNCTION cdp.lifecycle_deserializefn(bytea, internal) RETURNS internal
  LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'cdp_lifecycle_deserializefn';
COMMENT ON FUNCTION cdp.lifecycle_deserializefn(bytea, internal) IS
  'Validates and deserializes a cdp.lifecycle() state (corrupt bytes: ERROR 22P03)';
CREATE FUNCTION cdp.lifecycle_timeline_deserializefn(bytea, internal) RETURNS internal
  LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'cdp_lifecycle_timeline_deserializefn';
COMMENT ON FUNCTION cdp.lifecycle_timeline_deserializefn(bytea, internal) IS
  'Validates and deserializes a cdp.lifecycle_timeline() state (corrupt bytes: ERROR 22P03)';

CREATE FUNCTION cdp.lifecycle_finalfn(internal) RETURNS cdp.lifecycle_state
  LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'cdp_lifecycle_finalfn';
COMMENT ON FUNCTION cdp.lifecycle_finalfn(internal) IS 'Final function of cdp.lifecycle()';
CREATE FUNCTION cdp.lifecycle_stage_finalfn(internal) RETURNS text
  LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'cdp_lifecycle_stage_finalfn';
COMMENT ON FUNCTION cdp.lifecycle_stage_finalfn(internal) IS 'Final function of cdp.lifecycle_stage()';
CREATE FUNCTION cdp.lifecycle_timeline_finalfn(internal) RETURNS cdp.lifecycle_point[]
  LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'cdp_lifecycle_timeline_finalfn';
COMMENT ON FUNCTION cdp.lifecycle_timeline_finalfn(internal) IS 'Final function of cdp.lifecycle_timeline()';

CREATE AGGREGATE cdp.lifecycle(ordered_at timestamptz, amount numeric, as_of timestamptz, policy text) (
  SFUNC = cdp.lifecycle_transfn, STYPE = internal, SSPACE = 112, FINALFUNC = cdp.lifecycle_finalfn,
  COMBINEFUNC = cdp.lifecycle_combinefn, SERIALFUNC = cdp.lifecycle_serializefn,
  DESERIALFUNC = cdp.lifecycle_deserializefn, PARALLEL = SAFE);
COMMENT ON AGGREGATE cdp.lifecycle(timestamptz, numeric, timestamptz, text) IS
  'Lifecycle state of one customer as of as_of, judged by their own buying rhythm under the named policy (cdp.lifecycle_policies)';
CREATE AGGREGATE cdp.lifecycle(ordered_at timestamptz, amount numeric, as_of timestamptz) (
  SFUNC = cdp.lifecycle_transfn, STYPE = internal, SSPACE = 112, FINALFUNC = cdp.lifecycle_finalfn,
  COMBINEFUNC = cdp.lifecycle_combinefn, SERIALFUNC = cdp.lifecycle_serializefn,
  DESERIALFUNC = cdp.lifecycle_deserializefn, PARALLEL = SAFE);
COMMENT ON AGGREGATE cdp.lifecycle(timestamptz, numeric, timestamptz) IS
  'Lifecycle state of one customer as of as_of, judged by their own buying rhythm under the default policy';

CREATE AGGREGATE cdp.lifecycle_stage(ordered_at timestamptz, amount numeric, as_of timestamptz, policy text) (
  SFUNC = cdp.lifecycle_transfn, STYPE = internal, SSPACE = 112, FINALFUNC = cdp.lifecycle_stage_finalfn,
  COMBINEFUNC = cdp.lifecycle_combinefn, SERIALFUNC = cdp.lifecycle_serializefn,
  DESERIALFUNC = cdp.lifecycle_deserializefn, PARALLEL = SAFE);
COMMENT ON AGGREGATE cdp.lifecycle_stage(timestamptz, numeric, timestamptz, text) IS
  'Lifecycle stage of one customer as of as_of under the named policy (the stage field of cdp.lifecycle())';
CREATE AGGREGATE cdp.lifecycle_stage(ordered_at timestamptz, amount numeric, as_of timestamptz) (
  SFUNC = cdp.lifecycle_transfn, STYPE = internal, SSPACE = 112, FINALFUNC = cdp.lifecycle_stage_finalfn,
  COMBINEFUNC = cdp.lifecycle_combinefn, SERIALFUNC = cdp.lifecycle_serializefn,
  DESERIALFUNC = cdp.lifecycle_deserializefn, PARALLEL = SAFE);
COMMENT ON AGGREGATE cdp.lifecycle_stage(timestamptz, numeric, timestamptz) IS
  'Lifecycle stage of one customer as of as_of under the default policy';

CREATE AGGREGATE cdp.lifecycle_timeline(ordered_at timestamptz, amount numeric, from_date date, to_date date,
                                        step interval, policy text) (
  SFUNC = cdp.lifecycle_timeline_transfn, STYPE = internal, SSPACE = 112,
  FINALFUNC = cdp.lifecycle_timeline_finalfn, COMBINEFUNC = cdp.lifecycle_combinefn,
  SERIALFUNC = cdp.lifecycle_serializefn, DESERIALFUNC = cdp.lifecycle_timeline_deserializefn, PARALLEL = SAFE);
COMMENT ON AGGREGATE cdp.lifecycle_timeline(timestamptz, numeric, date, date, interval, text) IS
  'Stage of one customer at the end of each period from_date, from_date + step, ... <= to_date, under the named policy';
CREATE AGGREGATE cdp.lifecycle_timeline(ordered_at timestamptz, amount numeric, from_date date, to_date date,
                                        step interval) (
  SFUNC = cdp.lifecycle_timeline_transfn, STYPE = internal, SSPACE = 112,
  FINALFUNC = cdp.lifecycle_timeline_finalfn, COMBINEFUNC = cdp.lifecycle_combinefn,
  SERIALFUNC = cdp.lifecycle_serializefn, DESERIALFUNC = cdp.lifecycle_timeline_deserializefn, PARALLEL = SAFE);
COMMENT ON AGGREGATE cdp.lifecycle_timeline(timestamptz, numeric, date, date, interval) IS
  'Stage of one customer at the end of each period from_date, from_date + step, ... <= to_date, under the default policy';

-- Derives a policy from the shop's own repeat-purchase gaps (docs/lifecycle.md, "Fitting a policy").
CREATE FUNCTION cdp.fit_lifecycle_policy(orders regclass, customer_column text, ordered_at_column text,
                                         as_of timestamptz, policy text, amount_column text DEFAULT NULL)
RETURNS cdp.lifecycle_policies
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY INVOKER SET search_path = pg_catalog, pg_temp AS $fit$
DECLARE
  customer_att name;
  ordered_att name;
  ordered_type oid;
  amount_att name;
  amount_type oid;
  amount_filter text := '';
  base cdp.lifecycle_policies;
  result cdp.lifecycle_policies;
  repeat_customers bigint;
  second_gap double precision;
  ratio_gaps bigint;
  ratio_customers bigint;
  ratio_percentiles double precision[];
  loyal integer;
  at_risk double precision;
  lapsed double precision;
  churned double precision;
  note text;
BEGIN
  IF orders IS NULL OR customer_column IS NULL OR ordered_at_column IS NULL THEN
    RAISE EXCEPTION 'orders, customer_column and ordered_at_column must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF as_of IS NULL THEN
    RAISE EXCEPTION 'as_of must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF NOT isfinite(as_of) THEN
    RAISE EXCEPTION 'as_of must be finite' USING ERRCODE = '22023';
  END IF;
  IF policy IS NULL THEN
    RAISE EXCEPTION 'policy must not be NULL' USING ERRCODE = '22004';
  END IF;
  IF octet_length(policy) NOT BETWEEN 1 AND 63 THEN
    RAISE EXCEPTION 'policy names are 1 to 63 bytes long' USING ERRCODE = '22023';
  END IF;
  IF EXISTS (SELECT 1 FROM cdp.lifecycle_policies p WHERE p.policy = fit_lifecycle_policy.policy AND p.shipped) THEN
    RAISE EXCEPTION 'lifecycle policy "%" ships with pg_cdp and is read-only', policy USING ERRCODE = '55000',
      HINT = 'Fit into another name, e.g. ''shop''.';
  END IF;

  SELECT a.attname INTO customer_att FROM pg_attribute a
   WHERE a.attrelid = orders AND a.attname = customer_column AND a.attnum > 0 AND NOT a.attisdropped;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'column "%" does not exist in %', customer_column, orders USING ERRCODE = '42703';
  END IF;
  SELECT a.attname, a.atttypid INTO ordered_att, ordered_type FROM pg_attribute a
   WHERE a.attrelid = orders AND a.attname = ordered_at_column AND a.attnum > 0 AND NOT a.attisdropped;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'column "%" does not exist in %', ordered_at_column, orders USING ERRCODE = '42703';
  END IF;
  IF ordered_type <> 'timestamptz'::regtype THEN
    RAISE EXCEPTION 'column "%" of % is %, not timestamp with time zone', ordered_at_column, orders,
      format_type(ordered_type, NULL) USING ERRCODE = '42804';
  END IF;
  IF amount_column IS NOT NULL THEN
    SELECT a.attname, a.atttypid INTO amount_att, amount_type FROM pg_attribute a
     WHERE a.attrelid = orders AND a.attname = amount_column AND a.attnum > 0 AND NOT a.attisdropped;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'column "%" does not exist in %', amount_column, orders USING ERRCODE = '42703';
    END IF;
    IF amount_type NOT IN ('numeric'::regtype, 'int2'::regtype, 'int4'::regtype, 'int8'::regtype,
                           'float4'::regtype, 'float8'::regtype) THEN
      RAISE EXCEPTION 'column "%" of % is %, not a number', amount_column, orders, format_type(amount_type, NULL)
        USING ERRCODE = '42804';
    END IF;
    amount_filter := format(' AND %I > 0', amount_att);
  END IF;

  -- Order days per customer (session TimeZone, as the aggregates), the gaps between them, and each
  -- customer's own median gap; one pass over the table.
  EXECUTE format($q$
    WITH days AS (
      SELECT %1$I AS customer, (%2$I)::date AS day
        FROM %3$s
       WHERE %1$I IS NOT NULL AND %2$I <= $1%4$s
       GROUP BY 1, 2),
    numbered AS (
      SELECT customer, day - lag(day) OVER w AS gap, row_number() OVER w AS k,
             count(*) OVER (PARTITION BY customer) AS n
        FROM days WINDOW w AS (PARTITION BY customer ORDER BY day)),
    gaps AS (SELECT * FROM numbered WHERE n >= 2),
    own AS (
      SELECT customer, percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) AS median_gap
        FROM gaps WHERE gap IS NOT NULL GROUP BY customer HAVING count(*) >= 2)
    SELECT (SELECT count(*) FROM gaps WHERE k = 2),
           (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY gap) FROM gaps WHERE k = 2),
           (SELECT percentile_disc(0.75) WITHIN GROUP (ORDER BY n) FROM gaps WHERE k = 2),
           (SELECT count(*) FROM gaps g JOIN own USING (customer) WHERE g.gap IS NOT NULL),
           (SELECT count(*) FROM own),
           (SELECT percentile_cont(ARRAY[0.75, 0.9, 0.98]) WITHIN GROUP (ORDER BY g.gap / own.median_gap)
              FROM gaps g JOIN own USING (customer) WHERE g.gap IS NOT NULL)$q$,
    customer_att, ordered_att, orders, amount_filter)
  INTO repeat_customers, second_gap, loyal, ratio_gaps, ratio_customers, ratio_percentiles
  USING as_of;
  IF repeat_customers < 10 THEN
    RAISE EXCEPTION 'not enough repeat purchases in % to fit a lifecycle policy', orders USING ERRCODE = '22000',
      DETAIL = format('%s customers have a second order day on or before as_of; at least 10 are needed.',
                      repeat_customers);
  END IF;

  SELECT * INTO base FROM cdp.lifecycle_policies p WHERE p.policy = 'default';
  IF ratio_customers >= 10 THEN
    at_risk := greatest(1.0, round(ratio_percentiles[1]::numeric, 2)::double precision);
    lapsed := greatest(round(ratio_percentiles[2]::numeric, 2)::double precision, round((at_risk * 1.25)::numeric, 2)::double precision);
    churned := least(1000.0, greatest(round(ratio_percentiles[3]::numeric, 2)::double precision,
                                      round((lapsed * 1.5)::numeric, 2)::double precision));
    note := format('factors = 75th/90th/98th percentiles of gap / own median gap over %s gaps of %s customers with 3+ order days',
                   ratio_gaps, ratio_customers);
  ELSE
    at_risk := coalesce(base.at_risk_factor, 1.5);
    lapsed := coalesce(base.lapsed_factor, 3);
    churned := coalesce(base.churned_factor, 6);
    note := format('factors copied from the default policy (only %s customers with 3+ order days)', ratio_customers);
  END IF;

  INSERT INTO cdp.lifecycle_policies AS p (policy, one_time_cadence_days, at_risk_factor, lapsed_factor, churned_factor,
                                           loyal_min_order_days, min_gaps_for_own_cadence, shipped, description)
  VALUES (policy, least(36500.0, greatest(1.0, round(second_gap::numeric, 1)::double precision)), at_risk, lapsed,
          churned, greatest(3, loyal), 1, false,
          format('fitted by cdp.fit_lifecycle_policy from %s as of %s: one_time_cadence_days = median first-to-second order gap of %s repeat customers; loyal_min_order_days = 75th percentile of their order days; %s',
                 orders, as_of, repeat_customers, note))
  ON CONFLICT ON CONSTRAINT lifecycle_policies_pkey DO UPDATE
    SET one_time_cadence_days = excluded.one_time_cadence_days, at_risk_factor = excluded.at_risk_factor,
        lapsed_factor = excluded.lapsed_factor, churned_factor = excluded.churned_factor,
        loyal_min_order_days = excluded.loyal_min_order_days,
        min_gaps_for_own_cadence = excluded.min_gaps_for_own_cadence, description = excluded.description
  RETURNING p.* INTO result;
  RETURN result;
END
$fit$;
COMMENT ON FUNCTION cdp.fit_lifecycle_policy(regclass, text, text, timestamptz, text, text) IS
  'Derives lifecycle thresholds from the shop''s own repeat-purchase gaps as of as_of and upserts them as the named policy; returns the policy row';
