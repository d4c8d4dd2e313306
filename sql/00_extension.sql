-- The extension installs into schema cdp and every object carries a comment.
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cdp;
RESET client_min_messages;
SELECT extname, extversion, extrelocatable, n.nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'pg_cdp';
-- Every function, procedure, aggregate, table, view and type of the extension has COMMENT ON.
SELECT pg_describe_object(d.classid, d.objid, d.objsubid) AS object_without_comment
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_cdp')
   AND d.deptype = 'e'
   AND obj_description(d.objid, (SELECT relname FROM pg_class WHERE oid = d.classid)) IS NULL
   AND NOT (d.classid = 'pg_type'::regclass
            AND EXISTS (SELECT 1 FROM pg_type t WHERE t.oid = d.objid AND (t.typelem <> 0 AND t.typlen = -1 OR t.typrelid <> 0)))
 ORDER BY 1;
SELECT obj_description('cdp'::regnamespace, 'pg_namespace') IS NOT NULL AS schema_commented;
-- Routines that write results or rules, or read raw identifiers, are not executable by PUBLIC.
SELECT p.oid::regprocedure AS routine
  FROM pg_proc p
 WHERE p.pronamespace = 'cdp'::regnamespace
   AND NOT has_function_privilege('public', p.oid, 'EXECUTE')
 ORDER BY p.oid::regprocedure::text;
