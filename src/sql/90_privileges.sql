
-- ===================================================================================================
-- Privileges. Everything runs with the caller's rights (SECURITY INVOKER); on top of that, routines
-- that write pg_cdp's results or rules, or that read raw identifiers, are not executable by PUBLIC:
-- the extension owner grants them to the roles that run the pipeline. Dashboard roles get the views
-- only, through cdp.grant_reader(role).
-- ===================================================================================================
REVOKE EXECUTE ON PROCEDURE cdp.merge_identities(regclass, boolean) FROM PUBLIC;
REVOKE EXECUTE ON PROCEDURE cdp.forget_identifier(text, text) FROM PUBLIC;
REVOKE EXECUTE ON PROCEDURE cdp.forget_person(bigint) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION cdp.person_id(text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION cdp.fit_lifecycle_policy(regclass, text, text, timestamptz, text, text) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION cdp.rfm_copy_segment_map(text, text) FROM PUBLIC;
