#include "core/lifecycle.h"

#include "core/error.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "core/no_postgres.h"

namespace cdp::lifecycle {
namespace {

// Histories up to this many order days are assessed with stack buffers only.
constexpr std::size_t kStackDays = 256;

// Buffers for one assessment: the gaps seen so far in ascending order, and the cadence used after
// each prefix of gaps (cadence_after[j] = the cadence used by a customer whose first j gaps are known).
class Scratch {
 public:
  explicit Scratch(std::size_t count) {
    if (count <= kStackDays) {
      sorted_gaps_ = stack_gaps_;
      cadence_after_ = stack_cadence_;
    } else {
      heap_gaps_.resize(count);
      heap_cadence_.resize(count);
      sorted_gaps_ = heap_gaps_.data();
      cadence_after_ = heap_cadence_.data();
    }
  }
  std::int32_t* sorted_gaps_;
  double* cadence_after_;

 private:
  std::int32_t stack_gaps_[kStackDays];
  double stack_cadence_[kStackDays];
  std::vector<std::int32_t> heap_gaps_;
  std::vector<double> heap_cadence_;
};

double median_of_sorted(const std::int32_t* sorted, std::size_t count) {
  const std::size_t middle = count / 2;
  return count % 2 ? sorted[middle] : (static_cast<double>(sorted[middle - 1]) + sorted[middle]) / 2.0;
}

// The part of the stage rule that needs the whole prefix structure of one history.
class Rhythm {
 public:
  // Fills cadence_after[0 .. count-1] (count >= 1) and the own median over all gaps.
  Rhythm(const std::int32_t* days, std::size_t count, const Policy& policy, Scratch& scratch)
      : days_(days), count_(count), policy_(policy), cadence_after_(scratch.cadence_after_) {
    std::int32_t* sorted = scratch.sorted_gaps_;
    cadence_after_[0] = policy.one_time_cadence_days;
    for (std::size_t j = 1; j < count; ++j) {  // j gaps known after order day j
      const std::int32_t gap = days[j] - days[j - 1];
      std::int32_t* at = std::upper_bound(sorted, sorted + (j - 1), gap);
      std::memmove(at + 1, at, static_cast<std::size_t>(sorted + (j - 1) - at) * sizeof *sorted);
      *at = gap;
      const double own = median_of_sorted(sorted, j);
      cadence_after_[j] = j >= static_cast<std::size_t>(policy.min_gaps_for_own_cadence) ? own
                                                                                        : policy.one_time_cadence_days;
      if (j == count - 1) typical_gap_ = own;
    }
  }

  double typical_gap() const { return typical_gap_; }
  bool has_typical_gap() const { return count_ >= 2; }
  // Cadence used when order days [0, k] are known (k = index of the last order day).
  double cadence_at(std::size_t k) const { return cadence_after_[k]; }

  // The stage on the day of order day k (days since = 0), judged with order days [0, k]:
  // new, reactivated, loyal or active.
  Stage stage_on_order_day(std::size_t k) const {
    if (k == 0) return Stage::kNew;
    if (came_back_after_lapse(k)) return Stage::kReactivated;
    return static_cast<std::int64_t>(k) + 1 >= policy_.loyal_min_order_days ? Stage::kLoyal : Stage::kActive;
  }

  // The customer was lapsed (or churned) at the end of the day before order day k.
  bool came_back_after_lapse(std::size_t k) const {
    const double silent_days = static_cast<double>(days_[k] - days_[k - 1] - 1);
    return silent_days / cadence_after_[k - 1] > policy_.lapsed_factor;
  }

  // Stage with order days [0, k] known, days_since days after order day k.
  Stage stage(std::size_t k, std::int32_t days_since) const {
    const double ratio = static_cast<double>(days_since) / cadence_after_[k];
    if (ratio > policy_.churned_factor) return Stage::kChurned;
    if (ratio > policy_.lapsed_factor) return Stage::kLapsed;
    if (ratio > policy_.at_risk_factor) return Stage::kAtRisk;
    return stage_on_order_day(k);
  }

  // First day of the uninterrupted run of `stage` that includes the day days_since after order day k.
  std::int32_t stage_since(std::size_t k, Stage stage) const {
    switch (stage) {
      case Stage::kAtRisk:
        return days_[k] + first_day_beyond(policy_.at_risk_factor, cadence_after_[k]);
      case Stage::kLapsed:
        return days_[k] + first_day_beyond(policy_.lapsed_factor, cadence_after_[k]);
      case Stage::kChurned:
        return days_[k] + first_day_beyond(policy_.churned_factor, cadence_after_[k]);
      default:
        break;
    }
    // An order-day stage held since order day j if it held on every order day back to j and the
    // customer never became overdue in between.
    std::size_t since = k;
    while (since > 0) {
      const double silent_days = static_cast<double>(days_[since] - days_[since - 1] - 1);
      if (silent_days / cadence_after_[since - 1] > policy_.at_risk_factor) break;
      if (stage_on_order_day(since - 1) != stage) break;
      --since;
    }
    return days_[since];
  }

 private:
  // The smallest whole number of days x with x / cadence > factor (the same comparison as stage()).
  static std::int32_t first_day_beyond(double factor, double cadence) {
    double x = std::floor(factor * cadence) + 1;
    while (x > 1 && (x - 1) / cadence > factor) x -= 1;
    while (!(x / cadence > factor)) x += 1;
    return static_cast<std::int32_t>(x);
  }

  const std::int32_t* days_;
  std::size_t count_;
  const Policy& policy_;
  double* cadence_after_;
  double typical_gap_ = 0;
};

[[noreturn]] void corrupt(const std::string& why) {
  throw Error(sqlstate::kInvalidBinaryRepresentation, "corrupt pg_cdp lifecycle state: " + why,
              "The serialized aggregate state did not come from this version of pg_cdp.");
}

template <typename T>
void put(std::uint8_t*& out, T value) {
  std::memcpy(out, &value, sizeof value);
  out += sizeof value;
}

template <typename T>
T get(const std::uint8_t*& in) {
  T value;
  std::memcpy(&value, in, sizeof value);
  in += sizeof value;
  return value;
}

constexpr std::uint32_t kMagic = 0x314C4443;  // "CDL1"
// magic, kind, policy length, 2 pad | as_of, as_of_day, from, to, months, days, pad | orders, first, last
// | day count, pad
constexpr std::size_t kFixedBytes = 8 + 32 + 24 + 8;

}  // namespace

const char* stage_name(Stage stage) {
  switch (stage) {
    case Stage::kProspect: return "prospect";
    case Stage::kNew: return "new";
    case Stage::kActive: return "active";
    case Stage::kLoyal: return "loyal";
    case Stage::kReactivated: return "reactivated";
    case Stage::kAtRisk: return "at_risk";
    case Stage::kLapsed: return "lapsed";
    case Stage::kChurned: return "churned";
  }
  return "unknown";
}

void check_policy(const Policy& p) {
  auto bad = [](const std::string& what) {
    throw Error(sqlstate::kInvalidParameterValue, "invalid lifecycle policy: " + what);
  };
  if (!(p.one_time_cadence_days >= 1 && p.one_time_cadence_days <= 36500))
    bad("one_time_cadence_days must be between 1 and 36500");
  if (!(p.at_risk_factor >= 1)) bad("at_risk_factor must be at least 1");
  if (!(p.lapsed_factor > p.at_risk_factor)) bad("lapsed_factor must exceed at_risk_factor");
  if (!(p.churned_factor > p.lapsed_factor)) bad("churned_factor must exceed lapsed_factor");
  if (!(p.churned_factor <= 1000)) bad("churned_factor must be at most 1000");
  if (p.loyal_min_order_days < 2) bad("loyal_min_order_days must be at least 2");
  if (p.min_gaps_for_own_cadence < 1) bad("min_gaps_for_own_cadence must be at least 1");
}

Assessment assess(const std::int32_t* days, std::size_t count, std::int32_t as_of_day, const Policy& policy) {
  Assessment result;
  if (count == 0) return result;
  Scratch scratch(count);
  const Rhythm rhythm(days, count, policy, scratch);
  const std::size_t last = count - 1;
  result.order_days = static_cast<std::int32_t>(count);
  result.has_typical_gap = rhythm.has_typical_gap();
  result.typical_gap_days = rhythm.typical_gap();
  result.cadence_days = rhythm.cadence_at(last);
  result.days_since_last = as_of_day - days[last];
  result.overdue_ratio = static_cast<double>(result.days_since_last) / result.cadence_days;
  result.stage = rhythm.stage(last, result.days_since_last);
  result.stage_since_day = rhythm.stage_since(last, result.stage);
  return result;
}

Outcome outcome(const std::int32_t* days, std::size_t count, std::int32_t as_of_day, std::int64_t last_order_at,
                const Policy& policy) {
  Outcome result;
  result.assessment = assess(days, count, as_of_day, policy);
  if (result.assessment.stage == Stage::kProspect) return result;
  const double offset_us = result.assessment.cadence_days * static_cast<double>(kUsecsPerDay);
  std::int64_t expected = 0;
  result.has_expected_next = offset_us < 1e18 &&
                             !__builtin_add_overflow(last_order_at, static_cast<std::int64_t>(std::llround(offset_us)),
                                                     &expected) &&
                             expected < kEndTimestamp;
  if (result.has_expected_next) result.expected_next_order_at = expected;
  return result;
}

Stage stage_of(const std::int32_t* days, std::size_t count, std::int32_t as_of_day, const Policy& policy) {
  if (count == 0) return Stage::kProspect;
  Scratch scratch(count);
  const Rhythm rhythm(days, count, policy, scratch);
  return rhythm.stage(count - 1, as_of_day - days[count - 1]);
}

void timeline(const std::int32_t* days, std::size_t count, const std::int32_t* ends, std::size_t end_count,
              const Policy& policy, Stage* out) {
  if (count == 0) {
    std::fill(out, out + end_count, Stage::kProspect);
    return;
  }
  Scratch scratch(count);
  const Rhythm rhythm(days, count, policy, scratch);
  for (std::size_t i = 0; i < end_count; ++i) {
    const std::size_t known = static_cast<std::size_t>(std::upper_bound(days, days + count, ends[i]) - days);
    out[i] = known == 0 ? Stage::kProspect : rhythm.stage(known - 1, ends[i] - days[known - 1]);
  }
}

std::size_t sort_unique(std::int32_t* days, std::size_t count) {
  std::sort(days, days + count);
  return static_cast<std::size_t>(std::unique(days, days + count) - days);
}

std::size_t merge_unique(const std::int32_t* a, std::size_t a_count, const std::int32_t* b, std::size_t b_count,
                         std::int32_t* out) {
  std::size_t i = 0, j = 0, n = 0;
  while (i < a_count && j < b_count) {
    if (a[i] < b[j]) {
      out[n++] = a[i++];
    } else if (b[j] < a[i]) {
      out[n++] = b[j++];
    } else {
      out[n++] = a[i++];
      ++j;
    }
  }
  while (i < a_count) out[n++] = a[i++];
  while (j < b_count) out[n++] = b[j++];
  return n;
}

void throw_special_amount() {
  throw Error(sqlstate::kInvalidParameterValue, "amount must be a finite number",
              "NaN and infinite amounts are neither orders nor refunds.");
}

void throw_malformed_numeric() { throw Error(sqlstate::kInvalidBinaryRepresentation, "malformed numeric value"); }

std::size_t serialized_size(const StateHeader& header, std::size_t day_count) {
  return kFixedBytes + header.policy.size() + day_count * sizeof(std::int32_t);
}

void serialize_state(const StateHeader& h, const std::int32_t* days, std::size_t day_count, std::uint8_t* out) {
  put<std::uint32_t>(out, kMagic);
  put<std::uint8_t>(out, static_cast<std::uint8_t>(h.kind));
  put<std::uint8_t>(out, static_cast<std::uint8_t>(h.policy.size()));
  put<std::uint16_t>(out, 0);
  put<std::int64_t>(out, h.as_of);
  put<std::int32_t>(out, h.as_of_day);
  put<std::int32_t>(out, h.from_day);
  put<std::int32_t>(out, h.to_day);
  put<std::int32_t>(out, h.step_months);
  put<std::int32_t>(out, h.step_days);
  put<std::int32_t>(out, 0);
  put<std::int64_t>(out, h.orders);
  put<std::int64_t>(out, h.first_order_at);
  put<std::int64_t>(out, h.last_order_at);
  put<std::uint32_t>(out, static_cast<std::uint32_t>(day_count));
  put<std::uint32_t>(out, 0);
  std::memcpy(out, h.policy.data(), h.policy.size());
  out += h.policy.size();
  if (day_count) std::memcpy(out, days, day_count * sizeof *days);
}

ParsedState parse_state(const std::uint8_t* bytes, std::size_t length, StateKind expected_kind) {
  ParsedState parsed;
  StateHeader& h = parsed.header;
  if (length < kFixedBytes) corrupt("truncated header");
  const std::uint8_t* in = bytes;
  if (get<std::uint32_t>(in) != kMagic) corrupt("bad magic number");
  const auto kind = get<std::uint8_t>(in);
  if (kind != static_cast<std::uint8_t>(expected_kind)) corrupt("state of another aggregate");
  h.kind = expected_kind;
  const std::size_t policy_length = get<std::uint8_t>(in);
  if (get<std::uint16_t>(in) != 0) corrupt("bad padding");
  h.as_of = get<std::int64_t>(in);
  h.as_of_day = get<std::int32_t>(in);
  h.from_day = get<std::int32_t>(in);
  h.to_day = get<std::int32_t>(in);
  h.step_months = get<std::int32_t>(in);
  h.step_days = get<std::int32_t>(in);
  if (get<std::int32_t>(in) != 0) corrupt("bad padding");
  h.orders = get<std::int64_t>(in);
  h.first_order_at = get<std::int64_t>(in);
  h.last_order_at = get<std::int64_t>(in);
  const std::size_t day_count = get<std::uint32_t>(in);
  if (get<std::uint32_t>(in) != 0) corrupt("bad padding");
  if (policy_length == 0 || policy_length > kMaxPolicyNameLength) corrupt("bad policy name length");
  // Exact size: a truncated or oversized buffer is rejected before any day is read.
  const std::size_t remaining = length - kFixedBytes;
  if (remaining < policy_length || (remaining - policy_length) / sizeof(std::int32_t) != day_count ||
      (remaining - policy_length) % sizeof(std::int32_t) != 0)
    corrupt("length does not match the number of order days");
  h.policy.assign(reinterpret_cast<const char*>(in), policy_length);
  if (h.policy.find('\0') != std::string::npos) corrupt("policy name contains a NUL byte");
  in += policy_length;
  parsed.days = in;
  parsed.day_count = day_count;

  if (h.orders < 0 || static_cast<std::uint64_t>(h.orders) < day_count) corrupt("fewer orders than order days");
  if ((day_count == 0) != (h.orders == 0)) corrupt("orders without order days");
  if (day_count > 0 && h.first_order_at > h.last_order_at) corrupt("first order after last order");
  std::int32_t previous = 0;
  for (std::size_t i = 0; i < day_count; ++i) {
    const std::int32_t day = get<std::int32_t>(in);
    if (i > 0 && day <= previous) corrupt("order days not strictly increasing");
    previous = day;
  }
  if (expected_kind == StateKind::kLifecycle) {
    if (day_count > 0 && previous > h.as_of_day) corrupt("order day after as_of");
  } else {
    if (h.from_day > h.to_day || h.step_months < 0 || h.step_days < 0 || (h.step_months == 0 && h.step_days == 0))
      corrupt("bad timeline periods");
    if (day_count > 0 && previous > h.to_day) corrupt("order day after the last period");
  }
  return parsed;
}

void read_days(const ParsedState& parsed, std::int32_t* out) {
  if (parsed.day_count) std::memcpy(out, parsed.days, parsed.day_count * sizeof *out);
}

// ---- calendar ----
namespace {
// Howard Hinnant's civil-from-days algorithms, shifted so that day 0 is 2000-01-01.
constexpr std::int64_t kUnixToY2k = 10957;

void civil_from_days(std::int64_t day, std::int64_t& year, int& month, int& mday) {
  std::int64_t z = day + kUnixToY2k + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  mday = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  month = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  year = yoe + era * 400 + (month <= 2);
}

std::int64_t days_from_civil(std::int64_t year, int month, int mday) {
  year -= month <= 2;
  const std::int64_t era = (year >= 0 ? year : year - 399) / 400;
  const std::int64_t yoe = year - era * 400;
  const std::int64_t doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + mday - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468 - kUnixToY2k;
}

int days_in_month(std::int64_t year, int month) {
  static const int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return month == 2 && leap ? 29 : kDays[month - 1];
}
}  // namespace

std::int64_t add_months_and_days(std::int32_t day, std::int64_t months, std::int64_t days) {
  std::int64_t year;
  int month, mday;
  civil_from_days(day, year, month, mday);
  std::int64_t month_index = year * 12 + (month - 1) + months;
  const std::int64_t new_year = month_index >= 0 ? month_index / 12 : -((-month_index + 11) / 12);
  const int new_month = static_cast<int>(month_index - new_year * 12) + 1;
  mday = std::min(mday, days_in_month(new_year, new_month));
  return days_from_civil(new_year, new_month, mday) + days;
}

std::size_t period_ends(std::int32_t from_day, std::int32_t to_day, std::int32_t step_months, std::int32_t step_days,
                        std::int32_t* out) {
  if (step_months < 0 || step_days < 0 || (step_months == 0 && step_days == 0))
    throw Error(sqlstate::kInvalidParameterValue, "step must be a positive number of days or months",
                "Steps with hours, minutes or seconds, and negative or zero steps, are not allowed.");
  if (from_day > to_day) throw Error(sqlstate::kInvalidParameterValue, "from_date must not be after to_date");
  std::size_t count = 0;
  for (std::int64_t k = 0;; ++k) {
    const std::int64_t end = add_months_and_days(from_day, k * step_months, k * step_days);
    if (end > to_day) break;
    if (count == kMaxTimelinePeriods)
      throw Error(sqlstate::kProgramLimitExceeded,
                  "a lifecycle timeline has at most " + std::to_string(kMaxTimelinePeriods) + " periods",
                  "", "Use a longer step or a shorter date range.");
    out[count++] = static_cast<std::int32_t>(end);
  }
  return count;
}

}  // namespace cdp::lifecycle
