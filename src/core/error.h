// Errors raised by the PostgreSQL-free core. Each carries a standard SQLSTATE so that the glue
// (src/pg/boundary.h) can report it unchanged; the core itself never sees a PostgreSQL header.
#pragma once

#include <stdexcept>
#include <string>

namespace cdp {

// SQLSTATE codes used by pg_cdp (see the PostgreSQL manual, Appendix A).
namespace sqlstate {
inline constexpr const char* kDataException = "22000";
inline constexpr const char* kNumericOutOfRange = "22003";
inline constexpr const char* kInvalidParameterValue = "22023";
inline constexpr const char* kNullValueNotAllowed = "22004";
inline constexpr const char* kInvalidBinaryRepresentation = "22P03";
inline constexpr const char* kInvalidTextRepresentation = "22P02";
inline constexpr const char* kDatatypeMismatch = "42804";
inline constexpr const char* kUndefinedColumn = "42703";
inline constexpr const char* kUndefinedObject = "42704";
inline constexpr const char* kUndefinedTable = "42P01";
inline constexpr const char* kProgramLimitExceeded = "54000";
inline constexpr const char* kOutOfMemory = "53200";
inline constexpr const char* kObjectNotInPrerequisiteState = "55000";
inline constexpr const char* kQueryCanceled = "57014";
inline constexpr const char* kInternalError = "XX000";
}  // namespace sqlstate

// A user-facing error: message, optional detail and hint, and the SQLSTATE to report.
class Error : public std::runtime_error {
 public:
  Error(const char* state, const std::string& message, std::string detail = {}, std::string hint = {})
      : std::runtime_error(message), detail_(std::move(detail)), hint_(std::move(hint)) {
    for (int i = 0; i < 5; ++i) state_[i] = state[i];
    state_[5] = '\0';
  }
  const char* sqlstate() const noexcept { return state_; }
  const std::string& detail() const noexcept { return detail_; }
  const std::string& hint() const noexcept { return hint_; }

 private:
  char state_[6];
  std::string detail_;
  std::string hint_;
};

}  // namespace cdp
