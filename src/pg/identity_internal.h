// Shared declarations of the identity-merge glue, one file per part of the run (docs/identity.md):
//   identity.cpp             CALL cdp.merge_identities: the run, its report row
//   identity_read.cpp        reading and normalising observations, storing the links
//   identity_write.cpp       loading the stored state, resolving, writing what changed
//   identity_incremental.cpp incremental runs over the subgraph new links touch
//   identity_erasure.cpp     forget_identifier, forget_person
//   identity_lookup.cpp      normalize_identifier, person_id
//   identity_common.cpp      rules, SPI connection, argument helpers
//   identity_spi.h           the SPI / executor toolbox
#pragma once
#include "pg/identity_spi.h"

#include "core/worker_thread.h"

namespace cdp::pg::identity_glue {

// Serialises merge runs and erasures: pg_advisory_xact_lock(kLockClass, kLockObject).
constexpr int32_t kLockClass = 0x63647069;  // "cdpi"
constexpr int32_t kLockObject = 1;

// ---------------------------------------------------------------------------------------------
// Configuration.

struct Config {
  std::vector<TypeRule> types;
  std::string phone_region = "US";
  bool bulk_index_first_load = false;  // identity_settings.bulk_index_first_load
};

// read_only: for callers that may run in a parallel worker (normalize_identifier, person_id), where SPI
// must not start new commands.
Config load_config(bool read_only = false);
identity::Blocklist load_blocklist(const IdentityGraph& graph, const identity::ValueNormaliser& normaliser);

// ---------------------------------------------------------------------------------------------
// The run.

using Clock = std::chrono::steady_clock;

struct Phases {
  Clock::time_point start = Clock::now(), last = start;
  std::vector<std::pair<std::string, int64_t>> ms;
  int64_t lap(const char* name) {
    Clock::time_point now = Clock::now();
    int64_t elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(now - last).count();
    last = now;
    ms.emplace_back(name, elapsed);
    return elapsed;
  }
  std::string json() const {
    std::string out = "{";
    for (std::size_t i = 0; i < ms.size(); ++i)
      out += (i ? ", \"" : "\"") + ms[i].first + "\": " + std::to_string(ms[i].second);
    return out + "}";
  }
};

struct Skipped {
  int64_t null_field = 0, empty = 0, too_long = 0, forgotten = 0;
  std::string json() const {
    return "{\"null_field\": " + std::to_string(null_field) + ", \"empty\": " + std::to_string(empty) +
           ", \"too_long\": " + std::to_string(too_long) + ", \"forgotten\": " + std::to_string(forgotten) + "}";
  }
};

class MemoryGuard {
 public:
  MemoryGuard() : budget_(kilobytes(maintenance_work_mem), "maintenance_work_mem") {}
  void check(std::size_t bytes) {
    peak_ = std::max(peak_, bytes);
    budget_.release(budget_.used());
    budget_.charge(bytes);
  }
  std::size_t peak() const { return peak_; }

 private:
  MemoryBudget budget_;
  std::size_t peak_ = 0;
};

struct Removed {
  std::string source, key;
  int64_t person;
};
struct Gone {
  std::string type, value;
};
// The stored state a resolved graph is compared with, so that only changes are written.
struct Previous {
  std::vector<Removed> removed;             // records in identity_map that the graph no longer has
  int64_t map_rows = 0, identifier_rows = 0;  // stored rows read (0: the table is empty)
  std::vector<uint64_t> row;                // per identifier: fingerprint of its stored person_identifiers row
  std::vector<Gone> gone;                   // person_identifiers rows the graph no longer has
  int64_t unknown_links = 0;
  const std::vector<int64_t>* component_persons = nullptr;  // incremental subgraph: the persons it covers
};

// Fingerprint of a person_identifiers row (odd, so 0 can mean "no stored row"): the stored row and the row a
// run would write compare equal exactly when nothing in it changed, so only changed rows are written.
inline uint64_t identifier_row_fingerprint(int64_t person, std::string_view reason, int64_t records,
                                           int64_t first_seen, int64_t last_seen) {
  const std::string text = std::to_string(person) + '/' + std::string(reason) + '/' + std::to_string(records) + '/' +
                           std::to_string(first_seen) + '/' + std::to_string(last_seen);
  return identity::hash_bytes(text) | 1;
}

// A distinct link an incremental run stored (indexes into the staged graph of the run's observations).
struct NewLink {
  int32_t record, identifier;
  int64_t first_seen, last_seen;
};

// A full rebuild's graph resolved on a worker thread while the backend stores its links (docs/identity.md,
// section 4): storing is PostgreSQL's work on the backend's core, resolving is pure C++, and both only read
// the graph's strings. The worker polls only its own stop flag (no PostgreSQL call off the backend's
// thread); leaving by an exception (cancel, an error while storing) stops and joins it before the graph goes.
class BackgroundResolve {
 public:
  ~BackgroundResolve() { worker_.reset(); }
  // Loads the previous results (which needs the graph's lookups; they are freed then) and the blocklist.
  void prepare(IdentityGraph& graph, const Config& config, MemoryGuard& memory, Phases& phases);
  // Starts resolving once the graph has its links. held_bytes: what the backend holds meanwhile (the links
  // it stores), counted against the memory limit.
  void start(std::size_t held_bytes);
  bool started() const { return started_; }
  // Waits for the resolver, polling the backend's interrupts meanwhile, and rethrows its error; the graph
  // polls `interrupts` again from here on.
  void finish(Interrupts& interrupts, MemoryGuard& memory);
  // Stops and joins the worker if it still runs (no-op after finish()): before the graph goes on any way out.
  void stop() noexcept {
    if (worker_) worker_->stop();
  }
  Previous previous;  // what prepare() loaded

 private:
  IdentityGraph* graph_ = nullptr;
  bool started_ = false;
  std::size_t held_bytes_ = 0;
  identity::Blocklist blocklist_;
  Interrupts worker_interrupts_;
  std::unique_ptr<WorkerThread> worker_;  // last: destroyed (joined) first
};

// Totals of the latest successful run (merge or erasure), which an incremental run adjusts.
struct PreviousRun {
  bool found = false;
  std::string fingerprint;
  int64_t links = 0, records = 0, identifiers = 0, persons = 0, cut_links = 0;
  int64_t invalid = 0, blocklisted = 0, hubs = 0, conflict_cut = 0;
};

// identity_common.cpp
void connect();
void disconnect();
Interrupts pg_interrupts();
// Normalises (type, raw value) with the stored rules; throws 22023 for an unknown type.
identity::Normalised normalise_one(const Config& config, std::string_view type_name, std::string_view raw,
                                   int* type_out = nullptr);
std::string arg_text(FunctionCallInfo fcinfo, int n);
void require_args(FunctionCallInfo fcinfo, int count, const char* what);

// identity_read.cpp: reads the observations (only rows after the previous high-water mark unless
// full_rebuild), normalises them and adds the new links to cdp.identity_links. A full rebuild whose graph
// is the links read (no tombstones) starts `background` resolving it before the links are stored.
void ingest(Oid relation, bool full_rebuild, const Config& config, Interrupts& interrupts, MemoryGuard& memory,
            Phases& phases, Skipped& skipped, int64_t& read, int64_t& new_links, int64_t& high_water_mark,
            bool& has_hwm, std::unique_ptr<IdentityGraph>& reuse, std::unique_ptr<IdentityGraph>& staged_out,
            std::vector<NewLink>& new_pairs, BackgroundResolve& background);

// identity_write.cpp
// The stored identity_map and person_identifiers rows the graph is compared with.
void load_previous(IdentityGraph& graph, MemoryGuard& memory, Previous& previous);
// background: started on `built` (its previous results loaded, resolving under way) or not.
void resolve_and_write(int64_t run_id, const Config& config, Interrupts& interrupts, MemoryGuard& memory,
                       Phases& phases, identity::ResolveStats& stats, std::unique_ptr<IdentityGraph> built,
                       BackgroundResolve* background = nullptr);
void resolve_write(int64_t run_id, const Config& config, Interrupts& interrupts, MemoryGuard& memory,
                   Phases& phases, identity::ResolveStats& stats, IdentityGraph& graph, Previous& previous,
                   BackgroundResolve* background = nullptr);
void report_written(const Phases& phases, const MemoryGuard& memory);
// The person-forming part shared by merge and erasure runs: every stored link re-resolved.
// fingerprint: the rules the run used (empty: read them now, after an erasure stored its tombstone).
void recompute(int64_t run_id, const Config& config, Interrupts& interrupts, MemoryGuard& memory, Phases& phases,
               const Skipped& skipped, int64_t read, int64_t new_links, bool has_hwm, int64_t hwm,
               std::unique_ptr<IdentityGraph> built = nullptr, std::string fingerprint = {},
               BackgroundResolve* background = nullptr);

// identity_incremental.cpp
std::string rules_fingerprint();
PreviousRun previous_run(int64_t run_id);
bool resolve_subgraph(int64_t run_id, const Config& config, Interrupts& interrupts, MemoryGuard& memory,
                      Phases& phases, const IdentityGraph& staged,
                      const std::vector<NewLink>& new_pairs, const PreviousRun& prev,
                      identity::ResolveStats& totals, int64_t& resolved_links);

// identity.cpp
int64_t start_run(const char* kind, Oid relation, bool full_rebuild);
bool links_lost();  // cdp.identity_links emptied (unlogged: a crash) while results exist
void finish_run(int64_t run_id, const identity::ResolveStats& s, const Skipped& skipped, int64_t read,
                int64_t new_links, bool has_hwm, int64_t hwm, const MemoryGuard& memory, const Phases& phases,
                const std::string& fingerprint, int64_t resolved_links);

}  // namespace cdp::pg::identity_glue
