-- Demo step 5: a generated sample shop (the same generator as the benchmark, smaller):
-- 12,000 customers, ~31,000 orders over two years (2024-07 .. 2026-06), about half one-time
-- buyers, ~3% refunds as negative rows. Deterministic, so every run shows the same numbers.
\echo '== loading the sample shop into shop.orders (bench/generate_shop.sql)'
\set customers 12000
\set repeat_lambda 2.5
\set schema shop
\set QUIET on
SET client_min_messages = warning;
\ir ../bench/generate_shop.sql
RESET client_min_messages;
\set QUIET off
