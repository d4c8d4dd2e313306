// Out-of-line halves of the error boundary; see boundary.h. These run after every C++ object of
// the failed call has been destroyed, so longjmp-based ereport is safe here.
#include "pg/boundary.h"

#include <cstdio>

extern "C" {
PG_MODULE_MAGIC;
}

namespace cdp::pg {

namespace {
void copy_text(char* to, std::size_t size, const char* from) {
  const std::size_t length = from ? strnlen(from, size - 1) : 0;
  if (length) std::memcpy(to, from, length);
  to[length] = '\0';
}
}  // namespace

void CapturedError::capture_current(const char* what_failed) noexcept {
  failed = true;
  detail[0] = hint[0] = '\0';
  try {
    throw;
  } catch (const cdp::Error& e) {
    copy_text(sqlstate, sizeof sqlstate, e.sqlstate());
    copy_text(message, sizeof message, e.what());
    copy_text(detail, sizeof detail, e.detail().c_str());
    copy_text(hint, sizeof hint, e.hint().c_str());
  } catch (const std::bad_alloc&) {
    copy_text(sqlstate, sizeof sqlstate, cdp::sqlstate::kOutOfMemory);
    snprintf(message, sizeof message, "%s ran out of memory", what_failed);
  } catch (const std::exception& e) {
    copy_text(sqlstate, sizeof sqlstate, cdp::sqlstate::kInternalError);
    copy_text(message, sizeof message, e.what());
  } catch (...) {
    copy_text(sqlstate, sizeof sqlstate, cdp::sqlstate::kInternalError);
    snprintf(message, sizeof message, "unexpected C++ exception in %s", what_failed);
  }
}

namespace detail {

void rethrow_pg_error(ErrorData* data) { ReThrowError(data); }

void report(const CapturedError& error) {
  const char* s = error.sqlstate;
  const int code = MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4]);
  ereport(ERROR, (errcode(code), errmsg("%s", error.message), error.detail[0] ? errdetail("%s", error.detail) : 0,
                  error.hint[0] ? errhint("%s", error.hint) : 0));
  pg_unreachable();
}

}  // namespace detail
}  // namespace cdp::pg
