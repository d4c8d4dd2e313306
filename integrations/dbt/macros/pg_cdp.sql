{#- pg_cdp macros: thin, quoted wrappers around the extension's SQL API (schema cdp).
    Relations are passed as dbt relations (ref()/source()) or strings; they are cast to regclass, so
    pg_cdp validates the columns through the catalog and quotes them itself. -#}

{#- A SQL string literal (single quotes doubled). -#}
{% macro cdp_literal(value) -%}
  {%- if value is none -%}NULL{%- else -%}'{{ (value | string).replace("'", "''") }}'{%- endif -%}
{%- endmacro %}

{#- A relation as regclass: '"schema"."table"'::regclass -#}
{% macro cdp_regclass(relation) -%}
  {{ cdp_literal(relation | string) }}::regclass
{%- endmacro %}

{#- One row per customer: recency, frequency, monetary, r/f/m scores and segment (cdp.rfm). -#}
{% macro cdp_rfm(orders, customer_column, ordered_at_column, amount_column, as_of=var('pg_cdp_as_of'),
                 bins=var('pg_cdp_bins', 5), segment_map=var('pg_cdp_segment_map', 'default')) -%}
select customer_key, recency_days, frequency, monetary, r, f, m, segment
  from cdp.rfm({{ cdp_regclass(orders) }}, {{ cdp_literal(customer_column) }}, {{ cdp_literal(ordered_at_column) }},
               {{ cdp_literal(amount_column) }}, {{ cdp_literal(as_of) }}::timestamptz, {{ bins | int }},
               {{ cdp_literal(segment_map) }})
{%- endmacro %}

{#- The fields of a cdp.lifecycle_state value as plain columns. -#}
{% macro cdp_lifecycle_columns(state) -%}
({{ state }}).stage as lifecycle_stage,
       ({{ state }}).orders as orders,
       ({{ state }}).first_order_at as first_order_at,
       ({{ state }}).last_order_at as last_order_at,
       ({{ state }}).days_since_last_order as days_since_last_order,
       ({{ state }}).typical_gap_days as typical_gap_days,
       ({{ state }}).expected_next_order_at as expected_next_order_at,
       ({{ state }}).overdue_ratio as overdue_ratio,
       ({{ state }}).stage_since as stage_since
{%- endmacro %}

{#- One row per customer: lifecycle stage judged by the customer's own cadence (cdp.lifecycle). -#}
{% macro cdp_lifecycle(orders, customer_column, ordered_at_column, amount_column, as_of=var('pg_cdp_as_of'),
                       policy=var('pg_cdp_lifecycle_policy', 'default')) -%}
select customer_key,
       {{ cdp_lifecycle_columns('state') }}
  from (select {{ adapter.quote(customer_column) }}::text as customer_key,
               cdp.lifecycle({{ adapter.quote(ordered_at_column) }}, {{ adapter.quote(amount_column) }}::numeric,
                             {{ cdp_literal(as_of) }}::timestamptz, {{ cdp_literal(policy) }}) as state
          from {{ orders }}
         group by 1) per_customer
{%- endmacro %}

{#- Statements for hooks and run-operation. -#}
{% macro cdp_configure_orders(orders, order_key_column, customer_column, ordered_at_column, amount_column,
                              customer_id_type=none, person_source=none, currency_column=none,
                              shop_time_zone=none) -%}
select cdp.configure_orders({{ cdp_regclass(orders) }}, {{ cdp_literal(order_key_column) }},
       {{ cdp_literal(customer_column) }}, {{ cdp_literal(ordered_at_column) }}, {{ cdp_literal(amount_column) }},
       customer_id_type => {{ cdp_literal(customer_id_type) }}, person_source => {{ cdp_literal(person_source) }},
       currency_column => {{ cdp_literal(currency_column) }}, shop_time_zone => {{ cdp_literal(shop_time_zone) }})
{%- endmacro %}

{% macro cdp_merge_identities(observations, full_rebuild=var('pg_cdp_full_rebuild', false)) -%}
call cdp.merge_identities({{ cdp_regclass(observations) }}, {{ 'true' if full_rebuild else 'false' }})
{%- endmacro %}

{% macro cdp_refresh_profiles(as_of=var('pg_cdp_as_of')) -%}
call cdp.refresh_profiles({{ cdp_literal(as_of) }}::timestamptz)
{%- endmacro %}

{% macro cdp_grant_reader(role) -%}
select cdp.grant_reader({{ cdp_literal(role) }}::regrole)
{%- endmacro %}

{#- The profile snapshot of as_of, plain columns (refresh it first, e.g. in a pre_hook). -#}
{% macro cdp_profiles(as_of=var('pg_cdp_as_of')) -%}
select as_of, person_key, orders, monetary, average_order_value, recency_days, r, f, m, rfm_segment,
       lifecycle_stage, cadence_days, expected_next_order_at, overdue_ratio, first_order_at, last_order_at,
       identifiers, sources
  from cdp.profile_history
 where as_of = {{ cdp_literal(as_of) }}::timestamptz
{%- endmacro %}
