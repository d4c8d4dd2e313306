// Identity merge glue shared by every entry point: the rules, the SPI connection, argument helpers.
#include "pg/identity_internal.h"

namespace cdp::pg::identity_glue {

// read_only: for callers that may run in a parallel worker (normalize_identifier, person_id), where SPI
// must not start new commands.
Config load_config(bool read_only) {
  Config config;
  uint64 n = spi_run(
      "SELECT id_type, normaliser, coalesce(max_per_person, 0)::int8, priority::int8, coalesce(hub_threshold, 0)::int8 "
      "FROM cdp.identifier_types WHERE enabled ORDER BY id_type",
      {}, read_only);
  for (uint64 r = 0; r < n; ++r) {
    TypeRule rule;
    rule.name = result_text(r, 1);
    rule.normaliser = identity::parse_normaliser(result_text(r, 2));
    rule.max_per_person = static_cast<int>(result_int64(r, 3));
    rule.priority = static_cast<int>(result_int64(r, 4));
    rule.hub_threshold = result_int64(r, 5);
    config.types.push_back(std::move(rule));
  }
  n = spi_run("SELECT default_phone_region, bulk_index_first_load::int4::int8 FROM cdp.identity_settings LIMIT 1", {},
              read_only);
  if (n > 0 && !result_is_null(0, 1)) config.phone_region = result_text(0, 1);
  if (n > 0) config.bulk_index_first_load = result_int64(0, 2) != 0;
  return config;
}

identity::Blocklist load_blocklist(const IdentityGraph& graph, const identity::ValueNormaliser& normaliser) {
  identity::Blocklist blocklist;
  uint64 n = spi_run("SELECT id_type, value, (match = 'like')::int4::int8, reason FROM cdp.identifier_blocklist WHERE enabled");
  for (uint64 r = 0; r < n; ++r) {
    identity::Blocklist::Entry entry;
    if (!result_is_null(r, 1)) {
      entry.type = graph.type_index(result_text(r, 1));
      if (entry.type < 0) continue;  // the FK makes this impossible; be safe anyway
    }
    entry.pattern = result_text(r, 2);
    entry.is_like = result_int64(r, 3) != 0;
    entry.reason = result_text(r, 4);
    // An exact entry for a typed value also blocks its normalised spelling ("(555) 000-0000" etc.).
    if (!entry.is_like && entry.type >= 0) {
      identity::Normalised normalised;
      normaliser.normalise(graph.types()[entry.type].normaliser, entry.pattern, normalised);
      if (normalised.outcome == identity::Outcome::kOk && normalised.value != entry.pattern) {
        identity::Blocklist::Entry copy = entry;
        copy.pattern = normalised.value;
        blocklist.add(std::move(copy));
      }
    }
    blocklist.add(std::move(entry));
  }
  return blocklist;
}


void connect() {
  pg_call([] {
    if (SPI_connect() != SPI_OK_CONNECT) elog(ERROR, "SPI_connect failed");
  });
}
void disconnect() {
  pg_call([] { SPI_finish(); });
}

Interrupts pg_interrupts() {
  return Interrupts([] { check_for_interrupts(); });
}

// Normalises (type, raw value) with the stored rules; throws 22023 for an unknown type.
identity::Normalised normalise_one(const Config& config, std::string_view type_name, std::string_view raw,
                                   int* type_out) {
  IdentityGraph probe(config.types);
  const int type = probe.type_index(type_name);
  if (type < 0)
    fail(sqlstate::kInvalidParameterValue, "unknown id_type \"" + std::string(type_name) + "\"", {},
         "cdp.identifier_types lists the identifier types.");
  identity::ValueNormaliser normaliser(config.phone_region);
  identity::Normalised out;
  normaliser.normalise(probe.types()[type].normaliser, raw, out);
  if (type_out) *type_out = type;
  return out;
}

std::string arg_text(FunctionCallInfo fcinfo, int n) {
  struct Span {
    const char* data;
    int len;
  };
  Span span = pg_call([&]() -> Span {
    text* t = PG_GETARG_TEXT_PP(n);
    return Span{VARDATA_ANY(t), static_cast<int>(VARSIZE_ANY_EXHDR(t))};
  });
  return std::string(span.data, span.len);
}

void require_args(FunctionCallInfo fcinfo, int count, const char* what) {
  for (int i = 0; i < count; ++i)
    if (PG_ARGISNULL(i)) fail(sqlstate::kNullValueNotAllowed, std::string(what) + " must not be NULL");
}


}  // namespace cdp::pg::identity_glue
