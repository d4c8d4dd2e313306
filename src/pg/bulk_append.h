// Appends rows straight into one of pg_cdp's own tables as COPY does: batches of rows go through the
// table access method's multi-insert (one WAL record per page instead of one per row), then each
// row's index entries are inserted. No SQL and no per-row executor.
//
// Only for pg_cdp's own tables, and only where a plain INSERT would do exactly the same: usable()
// is false (and the caller must fall back to SQL INSERT) unless the caller has INSERT privilege on
// the table and it has no triggers and no row-level security, and its columns are exactly the ones
// the caller expects. Takes RowExclusiveLock like INSERT, so readers are never blocked.
//
// defer_indexes (a first load into an empty table): rows go in without index entries and finish()
// rebuilds the table's indexes once (reindex_relation, as REINDEX TABLE), several times cheaper than
// inserting millions of entries one by one. Only when the caller owns the table (as REINDEX requires);
// otherwise the indexes are maintained row by row as usual (indexes_deferred() says which). The rebuild
// locks the indexes exclusively until commit, so readers of the table wait for the writer's transaction.
// Its sort uses at most 64 MB (or maintenance_work_mem if lower) on top of the caller's memory.
//
// Every method calls PostgreSQL through pg_call, so C++ callers may hold objects across them.
#pragma once
#include "pg/boundary.h"

struct BulkInsertStateData;

namespace cdp::pg {

class BulkAppender {
 public:
  // schema.table must have exactly `columns` live columns of the types in column_types.
  BulkAppender(const char* schema, const char* table, int columns, const Oid* column_types,
               bool defer_indexes = false);
  ~BulkAppender();
  BulkAppender(const BulkAppender&) = delete;
  BulkAppender& operator=(const BulkAppender&) = delete;

  bool usable() const { return usable_; }
  bool indexes_deferred() const { return defer_indexes_; }
  // The next row's values and nulls (columns entries each). By-reference values must stay valid
  // until the next flush: allocate them in row_memory(), which is reset after every flush.
  Datum* values();
  bool* nulls();
  MemoryContext row_memory() const { return rows_context_; }
  // A text datum of `length` bytes copied into row_memory() (pg_call inside).
  Datum text(const char* data, std::size_t length);
  // Queues the row filled through values()/nulls(); writes a batch when the buffer is full.
  void append();
  // Writes what is queued and releases everything (no-op when not usable). Call exactly once on
  // success; on error the transaction's abort releases the relation and memory.
  void finish();
  long long rows() const { return rows_; }

 private:
  void flush();

  Relation rel_ = nullptr;
  bool usable_ = false;
  bool finished_ = false;
  bool defer_indexes_ = false;
  int columns_ = 0;
  TupleTableSlot** slots_ = nullptr;
  int queued_ = 0;
  BulkInsertStateData* bistate_ = nullptr;
  MemoryContext rows_context_ = nullptr;
  CommandId command_ = 0;
  EState* estate_ = nullptr;
  ResultRelInfo* result_ = nullptr;
  long long rows_ = 0;
};

}  // namespace cdp::pg
