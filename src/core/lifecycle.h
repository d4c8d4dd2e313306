// Lifecycle stages judged by each customer's own buying rhythm (PostgreSQL-free).
//
// A customer's history is the sorted set of distinct ORDER DAYS (day numbers, day 0 = 2000-01-01 in the
// caller's time zone; several orders on one day are one order day). From it:
//   cadence      = median gap between consecutive order days (undefined with fewer than two order days);
//   cadence used = own cadence when the customer has at least policy.min_gaps_for_own_cadence gaps,
//                  else policy.one_time_cadence_days;
//   ratio        = days since the last order day / cadence used;
//   stage        = churned (ratio > churned_factor), lapsed (> lapsed_factor), at_risk (> at_risk_factor),
//                  otherwise new (one order day), reactivated (the last order came back after the customer
//                  had lapsed), loyal (>= loyal_min_order_days order days) or active.
// The exact rules, with a worked example per stage, are in docs/lifecycle.md.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace cdp::lifecycle {

enum class Stage : std::uint8_t { kProspect, kNew, kActive, kLoyal, kReactivated, kAtRisk, kLapsed, kChurned };
constexpr int kStageCount = 8;
const char* stage_name(Stage stage);

// Thresholds of a named policy (a row of cdp.lifecycle_policies).
struct Policy {
  double one_time_cadence_days = 90;  // cadence assumed for customers without enough gaps of their own
  double at_risk_factor = 1.5;        // ratio above which a customer is at risk
  double lapsed_factor = 3;           // ... lapsed
  double churned_factor = 6;          // ... churned
  std::int32_t loyal_min_order_days = 4;
  std::int32_t min_gaps_for_own_cadence = 1;
};
// Throws cdp::Error 22023 unless the policy is sane (the same rules as the table's CHECK constraints).
void check_policy(const Policy& policy);

// Everything the stage rule derives from one history as of one day.
struct Assessment {
  Stage stage = Stage::kProspect;
  std::int32_t order_days = 0;
  bool has_typical_gap = false;
  double typical_gap_days = 0;       // own median gap (valid when has_typical_gap)
  double cadence_days = 0;           // the cadence used (own or the policy's default); 0 for prospects
  std::int32_t days_since_last = 0;  // as_of_day - last order day (valid unless prospect)
  double overdue_ratio = 0;          // days_since_last / cadence_days (valid unless prospect)
  std::int32_t stage_since_day = 0;  // first day of the current, uninterrupted stage (valid unless prospect)
};

// PostgreSQL's timestamptz: microseconds since 2000-01-01 00:00 UTC, finite values below kEndTimestamp
// (END_TIMESTAMP; the glue checks that the two agree).
constexpr std::int64_t kUsecsPerDay = 86400000000LL;
constexpr std::int64_t kEndTimestamp = 9223371331200000000LL;

// The day number (day 0 = 2000-01-01) of a timestamp read in UTC: the day of a shop-local wall-clock
// time stored as UTC (how cdp.refresh_profiles feeds the rule), rounding toward the past.
inline std::int32_t utc_day(std::int64_t timestamp) {
  std::int64_t day = timestamp / kUsecsPerDay;
  if (timestamp % kUsecsPerDay != 0 && timestamp < 0) --day;
  return static_cast<std::int32_t>(day);
}

// What cdp.lifecycle returns for one history: the assessment, and when the next order is due. One
// rule for the aggregate's final function and for cdp.refresh_profiles.
struct Outcome {
  Assessment assessment;  // stage kProspect (no order day): the other fields mean nothing
  bool has_expected_next = false;
  std::int64_t expected_next_order_at = 0;  // last order + cadence used x 24 h, to the microsecond;
                                            // absent past the end of timestamptz
};
// days as for assess(); last_order_at = the last positive order's timestamp (any value for prospects).
Outcome outcome(const std::int32_t* days, std::size_t count, std::int32_t as_of_day, std::int64_t last_order_at,
                const Policy& policy);

// days: strictly increasing order days, all <= as_of_day. Allocation-free for histories up to a few
// hundred order days; longer ones use a temporary std::vector (may throw std::bad_alloc).
Assessment assess(const std::int32_t* days, std::size_t count, std::int32_t as_of_day, const Policy& policy);

// Just the stage (cheaper: no stage_since walk).
Stage stage_of(const std::int32_t* days, std::size_t count, std::int32_t as_of_day, const Policy& policy);

// Sorts days in place and removes duplicates; returns the new count.
std::size_t sort_unique(std::int32_t* days, std::size_t count);
// Merges two strictly increasing arrays into out (room for a_count + b_count), dropping duplicates;
// returns the merged count.
std::size_t merge_unique(const std::int32_t* a, std::size_t a_count, const std::int32_t* b, std::size_t b_count,
                         std::int32_t* out);

// Whether a PostgreSQL numeric payload (the bytes after the varlena header) is a finite value > 0.
// Throws cdp::Error 22023 for NaN and +-Infinity (not an amount of money) and 22P03 for malformed bytes.
// Inline: it runs once per order row.
[[noreturn]] void throw_special_amount();
[[noreturn]] void throw_malformed_numeric();
inline bool numeric_payload_is_positive(const std::uint8_t* payload, std::size_t length) {
  if (length < 2) throw_malformed_numeric();
  std::uint16_t header;
  std::memcpy(&header, payload, sizeof header);
  std::size_t digits_at;
  switch (header & 0xC000) {
    case 0x8000:  // short format: sign bit 0x2000, 2-byte header
      if (header & 0x2000) return false;
      digits_at = 2;
      break;
    case 0xC000:  // NaN, +Infinity, -Infinity
      throw_special_amount();
    case 0x4000:  // long format, negative
      return false;
    default:  // long format, positive, 4-byte header
      digits_at = 4;
      break;
  }
  if (length < digits_at || (length - digits_at) % 2 != 0) throw_malformed_numeric();
  for (std::size_t at = digits_at; at < length; at += 2)  // zero has no non-zero base-10000 digit
    if (payload[at] != 0 || payload[at + 1] != 0) return true;
  return false;
}

// ---- The aggregates' transport format (serialize / deserialize for parallel and distributed plans) ----
// Little-endian-independent: written and read with memcpy on the same architecture, as PostgreSQL
// requires for internal-state aggregates (states never leave one cluster).
enum class StateKind : std::uint8_t { kLifecycle = 1, kTimeline = 2 };

struct StateHeader {
  StateKind kind = StateKind::kLifecycle;
  // lifecycle: the as_of instant (PostgreSQL timestamptz microseconds) and its day number
  std::int64_t as_of = 0;
  std::int32_t as_of_day = 0;
  // timeline: first and last period end (day numbers) and the step
  std::int32_t from_day = 0, to_day = 0, step_months = 0, step_days = 0;
  std::int64_t orders = 0;  // positive-amount rows counted
  std::int64_t first_order_at = 0, last_order_at = 0;
  std::string policy;
};
constexpr std::size_t kMaxPolicyNameLength = 63;

std::size_t serialized_size(const StateHeader& header, std::size_t day_count);
// Writes header and days into out (serialized_size bytes).
void serialize_state(const StateHeader& header, const std::int32_t* days, std::size_t day_count, std::uint8_t* out);

// Validates and decodes a serialized state: throws cdp::Error 22P03 on anything malformed (truncated,
// oversized, wrong kind, unsorted or duplicate days, counts that do not agree, bad policy name).
struct ParsedState {
  StateHeader header;
  std::size_t day_count = 0;
  const std::uint8_t* days = nullptr;  // day_count int32s, unaligned: read with read_days
};
ParsedState parse_state(const std::uint8_t* bytes, std::size_t length, StateKind expected_kind);
void read_days(const ParsedState& parsed, std::int32_t* out);

// ---- Calendar arithmetic for the timeline (proleptic Gregorian, day 0 = 2000-01-01) ----
// PostgreSQL's date + (months, days) interval: months first, clamping the day to the month's end, then days.
std::int64_t add_months_and_days(std::int32_t day, std::int64_t months, std::int64_t days);
constexpr std::size_t kMaxTimelinePeriods = 10000;
// Writes the period ends from_day + k * step (k = 0, 1, ...) that are <= to_day into out (room for
// kMaxTimelinePeriods) and returns how many. Throws cdp::Error 22023 for a step that is not positive or
// from_day > to_day, 54000 for more than kMaxTimelinePeriods periods.
std::size_t period_ends(std::int32_t from_day, std::int32_t to_day, std::int32_t step_months, std::int32_t step_days,
                        std::int32_t* out);

// The stage at the end of each period end day (orders on that day count), for strictly increasing days.
void timeline(const std::int32_t* days, std::size_t count, const std::int32_t* ends, std::size_t end_count,
              const Policy& policy, Stage* out);

}  // namespace cdp::lifecycle
