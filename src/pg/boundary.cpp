// Out-of-line halves of the error boundary; see boundary.h. These run after every C++ object of
// the failed call has been destroyed, so longjmp-based ereport is safe here.
#include "pg/boundary.h"

extern "C" {
PG_MODULE_MAGIC;
}

namespace cdp::pg::detail {

void rethrow_pg_error(ErrorData* data) { ReThrowError(data); }

void report(const char* sqlstate, const char* message, const char* detail, const char* hint) {
  int code = MAKE_SQLSTATE(sqlstate[0], sqlstate[1], sqlstate[2], sqlstate[3], sqlstate[4]);
  ereport(ERROR, (errcode(code), errmsg("%s", message), detail[0] ? errdetail("%s", detail) : 0,
                  hint[0] ? errhint("%s", hint) : 0));
  pg_unreachable();
}

}  // namespace cdp::pg::detail
