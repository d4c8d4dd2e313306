// CALL cdp.forget_identifier / cdp.forget_person (docs/identity.md, section 6): erasure with tombstones,
// then every stored link re-resolved.
#include "pg/identity_internal.h"

extern "C" {
PG_FUNCTION_INFO_V1(cdp_forget_identifier);
PG_FUNCTION_INFO_V1(cdp_forget_person);
}

using namespace cdp::pg;
using namespace cdp::pg::identity_glue;

// An erasure re-resolves what the stored links say; without them (lost in a crash) it would drop every
// record, so it waits for a full merge to store them again.
static void refuse_when_links_lost() {
  if (links_lost())
    fail(cdp::sqlstate::kObjectNotInPrerequisiteState,
         "cdp.identity_links is empty while persons exist (it is unlogged and was emptied by a crash or a restore)",
         "Erasure re-resolves the stored links.",
         "Run CALL cdp.merge_identities(<observations>) first; it re-reads the observations in full.");
}

extern "C" Datum cdp_forget_identifier(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum {
    require_args(fcinfo, 2, "id_type and id_value");
    const std::string type_name = arg_text(fcinfo, 0), raw = arg_text(fcinfo, 1);
    connect();
    Phases phases;
    cdp::Interrupts interrupts = pg_interrupts();
    MemoryGuard memory;
    const int64_t run_id = start_run("forget", InvalidOid, false);
    refuse_when_links_lost();
    const Config config = load_config();
    const cdp::identity::Normalised value = normalise_one(config, type_name, raw);
    if (value.outcome == cdp::identity::Outcome::kEmpty)
      fail(cdp::sqlstate::kInvalidParameterValue, "id_value is empty");
    const std::vector<SpiArg> key{text_param(type_name), text_param(value.value)};
    spi_run(
        "INSERT INTO cdp.identity_tombstones (kind, key_sha256) VALUES ('identifier', "
        "pg_catalog.sha256(pg_catalog.convert_to($1, 'UTF8') || '\\x00'::bytea || pg_catalog.convert_to($2, 'UTF8'))) "
        "ON CONFLICT DO NOTHING",
        key);
    spi_run("DELETE FROM cdp.identity_links WHERE id_type = $1 AND id_value = $2", key);
    spi_run("DELETE FROM cdp.identity_cuts WHERE id_type = $1 AND id_value = $2", key);
    spi_run("UPDATE cdp.merge_history SET id_value = NULL WHERE id_type = $1 AND id_value = $2", key);
    phases.lap("erase");
    recompute(run_id, config, interrupts, memory, phases, Skipped{}, 0, 0, false, 0);
    disconnect();
    PG_RETURN_VOID();
  });
}

extern "C" Datum cdp_forget_person(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum {
    require_args(fcinfo, 1, "person_id");
    const int64_t person = PG_GETARG_INT64(0);
    connect();
    Phases phases;
    cdp::Interrupts interrupts = pg_interrupts();
    MemoryGuard memory;
    const int64_t run_id = start_run("forget", InvalidOid, false);
    refuse_when_links_lost();
    const Config config = load_config();
    const std::vector<SpiArg> key{int8_param(person)};
    spi_run("SELECT FROM cdp.persons WHERE person_id = $1", key);
    if (SPI_processed == 0)
      fail(cdp::sqlstate::kUndefinedObject, "person " + std::to_string(person) + " does not exist");
    spi_run(
        "INSERT INTO cdp.identity_tombstones (kind, key_sha256) "
        "SELECT 'identifier', pg_catalog.sha256(pg_catalog.convert_to(id_type, 'UTF8') || '\\x00'::bytea || "
        "pg_catalog.convert_to(id_value, 'UTF8')) FROM cdp.person_identifiers WHERE person_id = $1 "
        "UNION SELECT 'record', pg_catalog.sha256(pg_catalog.convert_to(source, 'UTF8') || '\\x00'::bytea || "
        "pg_catalog.convert_to(source_key, 'UTF8')) FROM cdp.identity_map WHERE person_id = $1 "
        "ON CONFLICT DO NOTHING",
        key);
    spi_run(
        "DELETE FROM cdp.identity_links l USING cdp.identity_map m "
        "WHERE m.person_id = $1 AND l.source = m.source AND l.source_key = m.source_key",
        key);
    spi_run(
        "DELETE FROM cdp.identity_links l USING cdp.person_identifiers p "
        "WHERE p.person_id = $1 AND l.id_type = p.id_type AND l.id_value = p.id_value",
        key);
    spi_run(
        "UPDATE cdp.merge_history h SET id_value = NULL FROM cdp.person_identifiers p "
        "WHERE p.person_id = $1 AND h.id_type = p.id_type AND h.id_value = p.id_value",
        key);
    spi_run("DELETE FROM cdp.identity_cuts WHERE identifier_person = $1 OR record_person = $1", key);
    phases.lap("erase");
    recompute(run_id, config, interrupts, memory, phases, Skipped{}, 0, 0, false, 0);
    disconnect();
    PG_RETURN_VOID();
  });
}

