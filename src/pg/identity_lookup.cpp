// cdp.normalize_identifier and cdp.person_id (docs/identity.md, section 2): one raw value normalised as
// runs do, and its person looked up, with the rules and the lookup plan cached per statement.
#include "pg/identity_internal.h"

extern "C" {
#include "utils/snapmgr.h"  // GetActiveSnapshot: rules cached per statement
PG_FUNCTION_INFO_V1(cdp_normalize_identifier);
PG_FUNCTION_INFO_V1(cdp_person_id);
}

using namespace cdp::pg;
using namespace cdp::pg::identity_glue;

namespace cdp::pg {
namespace {
// The rules normalize_identifier needs, cached as plain data in fn_extra for the rest of the statement
// (the function is STABLE), so person_id() over many rows reads cdp.identifier_types once. The same call
// site runs again for later statements (a PL/pgSQL loop keeps its expression state for the transaction),
// which must see rules changed in between: the cache is valid only under the snapshot it was read with.
struct CachedRules {
  static constexpr int kMaxTypes = 255;
  SPIPlanPtr lookup;  // person_id(): the prepared lookup, freed with fn_mcxt
  MemoryContextCallback free_lookup;
  bool loaded;
  TransactionId snapshot_xmin, snapshot_xmax;
  CommandId snapshot_command;
  int count;
  char region[8];
  char names[kMaxTypes][64];
  int normalisers[kMaxTypes];
};

// Whether the rules were read under the snapshot now active (the same statement). Plain C.
bool read_in_this_statement(const CachedRules* rules) {
  if (!rules->loaded || !ActiveSnapshotSet()) return false;
  const Snapshot snapshot = GetActiveSnapshot();
  return rules->snapshot_xmin == snapshot->xmin && rules->snapshot_xmax == snapshot->xmax &&
         rules->snapshot_command == snapshot->curcid;
}

const CachedRules* cached_rules(FunctionCallInfo fcinfo) {
  auto* rules = static_cast<CachedRules*>(fcinfo->flinfo->fn_extra);
  if (rules && read_in_this_statement(rules)) return rules;
  connect();
  const Config config = load_config(true);
  disconnect();
  if (!rules)
    rules = static_cast<CachedRules*>(
        pg_call([&]() -> void* { return MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(CachedRules)); }));
  rules->count = 0;  // reloading keeps the prepared lookup: it reads with each call's snapshot
  rules->loaded = false;
  if (ActiveSnapshotSet()) {
    const Snapshot snapshot = GetActiveSnapshot();
    rules->snapshot_xmin = snapshot->xmin;
    rules->snapshot_xmax = snapshot->xmax;
    rules->snapshot_command = snapshot->curcid;
    rules->loaded = true;
  }
  for (const TypeRule& rule : config.types) {
    if (rules->count >= CachedRules::kMaxTypes || rule.name.size() >= sizeof rules->names[0]) continue;
    std::memcpy(rules->names[rules->count], rule.name.c_str(), rule.name.size() + 1);
    rules->normalisers[rules->count] = static_cast<int>(rule.normaliser);
    ++rules->count;
  }
  std::memset(rules->region, 0, sizeof rules->region);
  std::strncpy(rules->region, config.phone_region.c_str(), sizeof rules->region - 1);
  fcinfo->flinfo->fn_extra = rules;
  return rules;
}
}  // namespace
}  // namespace cdp::pg

namespace cdp::pg {
namespace {
// Normalises argument 1 as a value of the type named by argument 0 (unknown type: 22023).
identity::Normalised normalise_arguments(FunctionCallInfo fcinfo, const CachedRules* rules, std::string& type_name) {
  type_name = arg_text(fcinfo, 0);
  const std::string raw = arg_text(fcinfo, 1);
  int type = -1;
  for (int t = 0; t < rules->count && type < 0; ++t)
    if (type_name == rules->names[t]) type = t;
  if (type < 0)
    fail(sqlstate::kInvalidParameterValue, "unknown id_type \"" + type_name + "\"", {},
         "cdp.identifier_types lists the identifier types.");
  identity::ValueNormaliser normaliser(rules->region);
  identity::Normalised value;
  normaliser.normalise(static_cast<identity::Normaliser>(rules->normalisers[type]), raw, value);
  return value;
}

void free_lookup_plan(void* arg) {
  auto* rules = static_cast<CachedRules*>(arg);
  if (rules->lookup) SPI_freeplan(rules->lookup);
  rules->lookup = nullptr;
}
}  // namespace
}  // namespace cdp::pg

extern "C" Datum cdp_normalize_identifier(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum {
    std::string type_name;
    const cdp::identity::Normalised value = normalise_arguments(fcinfo, cached_rules(fcinfo), type_name);
    if (value.outcome != cdp::identity::Outcome::kOk) PG_RETURN_NULL();
    return pg_call([&]() -> Datum {
      return PointerGetDatum(cstring_to_text_with_len(value.value.data(), value.value.size()));
    });
  });
}

// person_id(id_type, id_value): normalise as runs do, then one index lookup with a plan prepared once
// per query; NULL when unknown, excluded or invalid.
extern "C" Datum cdp_person_id(PG_FUNCTION_ARGS) {
  return guarded([&]() -> Datum {
    auto* rules = const_cast<CachedRules*>(cached_rules(fcinfo));
    std::string type_name;
    const cdp::identity::Normalised value = normalise_arguments(fcinfo, rules, type_name);
    if (value.outcome != cdp::identity::Outcome::kOk) PG_RETURN_NULL();
    connect();
    if (!rules->lookup) {
      pg_call([&] {
        Oid types[2] = {TEXTOID, TEXTOID};
        SPIPlanPtr plan = SPI_prepare(
            "SELECT person_id FROM cdp.person_identifiers WHERE id_type = $1 AND id_value = $2 AND status = 'linked'",
            2, types);
        if (!plan) elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
        SPI_keepplan(plan);
        rules->lookup = plan;
        rules->free_lookup.func = free_lookup_plan;
        rules->free_lookup.arg = rules;
        MemoryContextRegisterResetCallback(fcinfo->flinfo->fn_mcxt, &rules->free_lookup);
      });
    }
    struct Found {
      bool found;
      int64_t person;
    };
    const Found found = pg_call([&]() -> Found {
      Datum args[2] = {PointerGetDatum(cstring_to_text_with_len(type_name.data(), type_name.size())),
                       PointerGetDatum(cstring_to_text_with_len(value.value.data(), value.value.size()))};
      int rc = SPI_execute_plan(rules->lookup, args, nullptr, true, 1);
      if (rc != SPI_OK_SELECT) elog(ERROR, "SPI_execute_plan failed: %s", SPI_result_code_string(rc));
      if (SPI_processed == 0) return Found{false, 0};
      bool is_null = false;
      Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &is_null);
      return Found{!is_null, is_null ? 0 : DatumGetInt64(d)};
    });
    disconnect();
    if (!found.found) PG_RETURN_NULL();
    PG_RETURN_INT64(found.person);
  });
}

