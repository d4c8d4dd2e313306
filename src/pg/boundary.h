// The one C++/PostgreSQL error boundary (ENGINEERING.md §2). Every SQL-callable function body runs
// inside cdp::pg::guarded(); every call from C++ into PostgreSQL code that may ereport runs inside
// cdp::pg::pg_call(). Together they guarantee:
//   - no C++ exception ever reaches PostgreSQL's C frames;
//   - no longjmp ever skips a live C++ destructor;
//   - PostgreSQL errors (including cancel and statement_timeout) keep their SQLSTATE and message.
#pragma once
#include "pg/pg.h"

#include "core/error.h"

#include <cstring>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

namespace cdp::pg {

// A PostgreSQL error caught by pg_call and carried through C++ frames as an exception.
class PgError : public std::exception {
 public:
  explicit PgError(ErrorData* data) : data_(data) {}
  const char* what() const noexcept override { return data_ && data_->message ? data_->message : "error"; }
  ErrorData* data() const noexcept { return data_; }

 private:
  ErrorData* data_;  // palloc'd in the caller's memory context by CopyErrorData
};

namespace detail {
[[noreturn]] void rethrow_pg_error(ErrorData* data);
[[noreturn]] void report(const char* sqlstate, const char* message, const char* detail, const char* hint);
}  // namespace detail

// Runs body (which returns Datum) so that any C++ exception becomes a PostgreSQL ERROR raised
// after every C++ object of the body is destroyed.
template <typename Body>
Datum guarded(Body&& body) {
  // Plain buffers only: they outlive the catch blocks without destructors.
  char sqlstate[6] = "XX000";
  char message[1024];
  char detail[1024];
  char hint[512];
  message[0] = detail[0] = hint[0] = '\0';
  ErrorData* pg_error = nullptr;
  bool failed = false;
  Datum result = (Datum)0;
  auto copy = [](char* to, std::size_t size, const char* from) {
    const std::size_t length = from ? strnlen(from, size - 1) : 0;
    if (length) std::memcpy(to, from, length);
    to[length] = '\0';
  };
  try {
    result = body();
  } catch (const PgError& e) {
    pg_error = e.data();
  } catch (const cdp::Error& e) {
    failed = true;
    copy(sqlstate, sizeof sqlstate, e.sqlstate());
    copy(message, sizeof message, e.what());
    copy(detail, sizeof detail, e.detail().c_str());
    copy(hint, sizeof hint, e.hint().c_str());
  } catch (const std::bad_alloc&) {
    failed = true;
    copy(sqlstate, sizeof sqlstate, cdp::sqlstate::kOutOfMemory);
    copy(message, sizeof message, "pg_cdp ran out of memory");
  } catch (const std::exception& e) {
    failed = true;
    copy(message, sizeof message, e.what());
  } catch (...) {
    failed = true;
    copy(message, sizeof message, "unknown C++ exception in pg_cdp");
  }
  if (pg_error) detail::rethrow_pg_error(pg_error);
  if (failed) detail::report(sqlstate, message, detail, hint);
  return result;
}

// Runs fn, a call into PostgreSQL that may ereport, and turns such an error into a PgError
// exception so that C++ destructors run. fn must hold no C++ objects with destructors itself.
template <typename Fn>
auto pg_call(Fn&& fn) -> decltype(fn()) {
  using Result = decltype(fn());
  MemoryContext caller_context = CurrentMemoryContext;
  ErrorData* volatile error = nullptr;
  if constexpr (std::is_void_v<Result>) {
    PG_TRY();
    { fn(); }
    PG_CATCH();
    {
      MemoryContextSwitchTo(caller_context);
      error = CopyErrorData();
      FlushErrorState();
    }
    PG_END_TRY();
    if (error) throw PgError(error);
  } else {
    static_assert(std::is_trivially_copyable_v<Result>, "pg_call returns plain data only");
    Result result{};
    PG_TRY();
    { result = fn(); }
    PG_CATCH();
    {
      MemoryContextSwitchTo(caller_context);
      error = CopyErrorData();
      FlushErrorState();
    }
    PG_END_TRY();
    if (error) throw PgError(error);
    return result;
  }
}

// For long C++ loops: if a cancel, statement_timeout or termination is pending, throw (as PgError)
// so the loop unwinds and the boundary reports PostgreSQL's own error (SQLSTATE 57014 etc.).
inline void check_for_interrupts() {
  if (unlikely(InterruptPending)) pg_call([] { CHECK_FOR_INTERRUPTS(); });
}

// Memory limit in bytes from a GUC measured in kB (work_mem, maintenance_work_mem).
inline std::size_t kilobytes(int setting_kb) { return static_cast<std::size_t>(setting_kb) * 1024; }

// Raise a user error from C++ code (unwinds to the boundary).
[[noreturn]] inline void fail(const char* state, const std::string& message, std::string detail = {},
                              std::string hint = {}) {
  throw cdp::Error(state, message, std::move(detail), std::move(hint));
}

}  // namespace cdp::pg
