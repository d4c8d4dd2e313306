{{ config(materialized='table') }}
-- Lifecycle stage per customer key, judged by each customer's own cadence.
{{ cdp_lifecycle(source('shop', 'orders'), 'customer_id', 'ordered_at', 'amount') }}
