-- Demo step 0: the extension.
\echo '== creating extension pg_cdp'
CREATE EXTENSION pg_cdp;
SELECT extversion AS pg_cdp_version FROM pg_extension WHERE extname = 'pg_cdp';
