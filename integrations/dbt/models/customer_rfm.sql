{{ config(materialized='table') }}
-- RFM per customer key of the orders table, as of var('pg_cdp_as_of').
{{ cdp_rfm(source('shop', 'orders'), 'customer_id', 'ordered_at', 'amount') }}
