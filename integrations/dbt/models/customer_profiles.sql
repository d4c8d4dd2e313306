{{ config(
    materialized='table',
    pre_hook=[
      "{{ cdp_merge_identities(source('shop', 'identity_observations')) }}",
      "{{ cdp_configure_orders(source('shop', 'orders'), 'order_id', 'customer_id', 'ordered_at', 'amount', person_source='order') }}",
      "{{ cdp_refresh_profiles() }}"
    ]) }}
-- Person-level profiles: identity merge, then a snapshot as of var('pg_cdp_as_of'), read back as plain columns.
{{ cdp_profiles() }}
