// cdp::pg::BulkAppender (see bulk_append.h): the multi-insert path COPY uses, for pg_cdp's own tables.
#include "pg/bulk_append.h"

// Table access for the bulk path; not in pg/pg.h because only the writers need it.
extern "C" {
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "executor/executor.h"
#include "executor/tuptable.h"
#include "nodes/makefuncs.h"
}

namespace cdp::pg {

namespace {
constexpr int kBatchRows = 1000;  // as COPY's MAX_BUFFERED_TUPLES
constexpr int kIndexBuildKilobytes = 64 * 1024;  // sort memory of a deferred index build (maintenance_work_mem)
}

BulkAppender::BulkAppender(const char* schema, const char* table, int columns, const Oid* column_types,
                           bool defer_indexes)
    : columns_(columns) {
  pg_call([&] {
    rel_ = table_openrv(makeRangeVar(pstrdup(schema), pstrdup(table), -1), RowExclusiveLock);
    bool ok = rel_->rd_att->natts == columns && rel_->rd_rel->relkind == RELKIND_RELATION;
    for (int c = 0; ok && c < columns; ++c) {
      Form_pg_attribute attribute = TupleDescAttr(rel_->rd_att, c);
      ok = !attribute->attisdropped && attribute->atttypid == column_types[c];
    }
    usable_ = ok && pg_class_aclcheck(RelationGetRelid(rel_), GetUserId(), ACL_INSERT) == ACLCHECK_OK &&
              rel_->trigdesc == nullptr && !rel_->rd_rel->relrowsecurity;
    if (!usable_) return;
    rows_context_ = AllocSetContextCreate(CurrentMemoryContext, "cdp bulk rows", ALLOCSET_DEFAULT_SIZES);
    slots_ = static_cast<TupleTableSlot**>(palloc(sizeof(TupleTableSlot*) * kBatchRows));
    for (int i = 0; i < kBatchRows; ++i) slots_[i] = table_slot_create(rel_, nullptr);
    bistate_ = GetBulkInsertState();
    command_ = GetCurrentCommandId(true);
    estate_ = CreateExecutorState();
    result_ = makeNode(ResultRelInfo);
    InitResultRelInfo(result_, rel_, 1, nullptr, 0);
    defer_indexes_ = defer_indexes && rel_->rd_rel->relhasindex && pg_class_ownercheck(RelationGetRelid(rel_), GetUserId());
    if (!defer_indexes_) ExecOpenIndices(result_, false);
  });
  if (usable_) pg_call([&] { ExecClearTuple(slots_[0]); });
}

BulkAppender::~BulkAppender() = default;  // resources are released by finish() or by the abort

Datum BulkAppender::text(const char* data, std::size_t length) {
  return pg_call([&]() -> Datum {
    MemoryContext old = MemoryContextSwitchTo(rows_context_);
    Datum d = PointerGetDatum(cstring_to_text_with_len(data, static_cast<int>(length)));
    MemoryContextSwitchTo(old);
    return d;
  });
}

Datum* BulkAppender::values() { return slots_[queued_]->tts_values; }
bool* BulkAppender::nulls() { return slots_[queued_]->tts_isnull; }

void BulkAppender::append() {
  pg_call([&] { ExecStoreVirtualTuple(slots_[queued_]); });
  ++rows_;
  if (++queued_ == kBatchRows) flush();
  pg_call([&] { ExecClearTuple(slots_[queued_]); });
}

void BulkAppender::flush() {
  if (queued_ == 0) return;
  pg_call([&] {
    table_multi_insert(rel_, slots_, queued_, command_, 0, bistate_);
    if (result_->ri_NumIndices > 0) {
      for (int i = 0; i < queued_; ++i) {
        ExprContext* per_row = GetPerTupleExprContext(estate_);
        per_row->ecxt_scantuple = slots_[i];
        List* unused = ExecInsertIndexTuples(result_, slots_[i], estate_, false, false, nullptr, NIL);
        list_free(unused);
        ResetPerTupleExprContext(estate_);
      }
    }
    for (int i = 0; i < queued_; ++i) ExecClearTuple(slots_[i]);
    MemoryContextReset(rows_context_);
  });
  queued_ = 0;
  check_for_interrupts();
}

void BulkAppender::finish() {
  if (finished_) return;
  finished_ = true;
  if (!usable_) {
    pg_call([&] { table_close(rel_, NoLock); });
    return;
  }
  flush();
  pg_call([&] {
    ExecCloseIndices(result_);
    FreeExecutorState(estate_);
    for (int i = 0; i < kBatchRows; ++i) ExecDropSingleTupleTableSlot(slots_[i]);
    pfree(slots_);
    FreeBulkInsertState(bistate_);
    table_finish_bulk_insert(rel_, 0);
    MemoryContextDelete(rows_context_);
    const Oid relation = RelationGetRelid(rel_);
    table_close(rel_, NoLock);
    CommandCounterIncrement();
    if (defer_indexes_) {
      // The sort memory of the rebuild comes on top of what the caller holds (e.g. a whole identity
      // graph), so it is capped: with rows appended in key order the sort spills cheaply.
      const int saved = maintenance_work_mem;
      PG_TRY();
      {
        maintenance_work_mem = saved < kIndexBuildKilobytes ? saved : kIndexBuildKilobytes;
        ReindexParams params = {};
        reindex_relation(relation, REINDEX_REL_PROCESS_TOAST | REINDEX_REL_CHECK_CONSTRAINTS, &params);
      }
      PG_FINALLY();
      { maintenance_work_mem = saved; }
      PG_END_TRY();
      CommandCounterIncrement();
    }
  });
}

}  // namespace cdp::pg
