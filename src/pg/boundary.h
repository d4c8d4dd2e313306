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
}  // namespace detail

// A C++ error held as plain data (no destructor), so it can be carried past frames where neither a
// C++ exception nor ereport may pass: the boundary below, and executor callbacks (DestReceiver) that
// PostgreSQL calls in the middle of a scan. Zero-initialise it (memset or `= {}`).
struct CapturedError {
  bool failed;
  char sqlstate[6];
  char message[1024];
  char detail[1024];
  char hint[512];

  // Call inside a catch block: records the exception being handled. what_failed names the
  // function for the messages of out-of-memory and unknown exceptions.
  void capture_current(const char* what_failed) noexcept;
  // Throws the captured error again as a cdp::Error (for callers that are inside guarded()).
  [[noreturn]] void rethrow() const { throw cdp::Error(sqlstate, message, detail, hint); }
};

namespace detail {
[[noreturn]] void report(const CapturedError& error);
}  // namespace detail

// Runs body (which returns Datum) so that any C++ exception becomes a PostgreSQL ERROR raised
// after every C++ object of the body is destroyed.
template <typename Body>
Datum guarded(Body&& body) {
  // Plain data only: it outlives the catch blocks without destructors.
  CapturedError error = {};
  ErrorData* pg_error = nullptr;
  Datum result = (Datum)0;
  try {
    result = body();
  } catch (const PgError& e) {
    pg_error = e.data();
  } catch (...) {
    error.capture_current("pg_cdp");
  }
  if (pg_error) detail::rethrow_pg_error(pg_error);
  if (error.failed) detail::report(error);
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
