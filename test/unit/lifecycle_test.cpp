#include "core/lifecycle.h"

#include "core/decimal.h"
#include "core/error.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace lc = cdp::lifecycle;
using lc::Stage;

namespace {

const lc::Policy kDefault{};  // 90 days, 1.5 / 3 / 6, loyal from 4 order days, own cadence from 1 gap
constexpr std::int32_t kAsOf = 9678;  // 2026-07-01

std::vector<std::int32_t> every(std::int32_t first, std::int32_t gap, int count) {
  std::vector<std::int32_t> days;
  for (int i = 0; i < count; ++i) days.push_back(first + i * gap);
  return days;
}

lc::Assessment assess(const std::vector<std::int32_t>& days, std::int32_t as_of = kAsOf,
                      const lc::Policy& policy = kDefault) {
  return lc::assess(days.data(), days.size(), as_of, policy);
}

// The stage on day t, from the order days known on t (the definition the timeline uses).
Stage stage_on(const std::vector<std::int32_t>& days, std::int32_t t, const lc::Policy& policy) {
  const std::size_t known = std::upper_bound(days.begin(), days.end(), t) - days.begin();
  return lc::stage_of(days.data(), known, t, policy);
}

}  // namespace

TEST(LifecycleStage, WeeklyBuyerSilentForTwoMonthsIsNotActive) {
  const auto days = every(kAsOf - 60 - 7 * 9, 7, 10);  // ten weekly orders, the last 60 days ago
  const auto a = assess(days);
  EXPECT_EQ(a.typical_gap_days, 7);
  EXPECT_EQ(a.days_since_last, 60);
  EXPECT_EQ(a.stage, Stage::kChurned);  // 60 / 7 = 8.6 > 6
  // and three weeks of silence already flags them
  EXPECT_EQ(assess(days, days.back() + 21).stage, Stage::kAtRisk);  // 21 / 7 = 3, not > 3
  EXPECT_EQ(assess(days, days.back() + 22).stage, Stage::kLapsed);
}

TEST(LifecycleStage, YearlyBuyerSilentForSixMonthsIsActive) {
  const auto days = every(kAsOf - 182 - 365 * 3, 365, 4);
  const auto a = assess(days);
  EXPECT_EQ(a.typical_gap_days, 365);
  EXPECT_EQ(a.stage, Stage::kLoyal);  // active with 4 order days
  EXPECT_NEAR(a.overdue_ratio, 182.0 / 365, 1e-12);
  const auto three = every(kAsOf - 182 - 365 * 2, 365, 3);
  EXPECT_EQ(assess(three).stage, Stage::kActive);
}

TEST(LifecycleStage, OneWorkedExamplePerStage) {
  // prospect: no order
  EXPECT_EQ(assess({}).stage, Stage::kProspect);
  // new: one order 30 days ago; cadence used = 90 (policy default), ratio 0.33
  auto a = assess({kAsOf - 30});
  EXPECT_EQ(a.stage, Stage::kNew);
  EXPECT_FALSE(a.has_typical_gap);
  EXPECT_EQ(a.cadence_days, 90);
  EXPECT_EQ(a.stage_since_day, kAsOf - 30);
  // at_risk: one order 150 days ago, 150 / 90 = 1.67; since day 136 after the order (136 / 90 > 1.5)
  a = assess({kAsOf - 150});
  EXPECT_EQ(a.stage, Stage::kAtRisk);
  EXPECT_EQ(a.stage_since_day, kAsOf - 150 + 136);
  // active: orders 50, 30 and 10 days ago; gaps 20, 20: ratio 10 / 20; active since the 2nd order
  a = assess({kAsOf - 50, kAsOf - 30, kAsOf - 10});
  EXPECT_EQ(a.stage, Stage::kActive);
  EXPECT_EQ(a.cadence_days, 20);
  EXPECT_EQ(a.stage_since_day, kAsOf - 30);
  // loyal: four monthly orders, the last 20 days ago
  a = assess(every(kAsOf - 20 - 90, 30, 4));
  EXPECT_EQ(a.stage, Stage::kLoyal);
  EXPECT_EQ(a.stage_since_day, kAsOf - 20);  // loyal from the 4th order day
  // reactivated: monthly buyer, silent 200 days, back 5 days ago
  a = assess({kAsOf - 265, kAsOf - 235, kAsOf - 205, kAsOf - 5});
  EXPECT_EQ(a.stage, Stage::kReactivated);
  EXPECT_EQ(a.stage_since_day, kAsOf - 5);
  // lapsed: monthly buyer silent 100 days (100 / 30 = 3.33)
  a = assess({kAsOf - 160, kAsOf - 130, kAsOf - 100});
  EXPECT_EQ(a.stage, Stage::kLapsed);
  EXPECT_EQ(a.stage_since_day, kAsOf - 100 + 91);
  // churned: monthly buyer silent 200 days
  a = assess({kAsOf - 260, kAsOf - 230, kAsOf - 200});
  EXPECT_EQ(a.stage, Stage::kChurned);
  EXPECT_EQ(a.stage_since_day, kAsOf - 200 + 181);
}

TEST(LifecycleStage, ActiveSinceSecondOrderWhenNeverOverdue) {
  // new on day 0, active from the 2nd order (day 20) on: stage_since is the first day of the run.
  const std::vector<std::int32_t> days{kAsOf - 50, kAsOf - 30, kAsOf - 10};
  EXPECT_EQ(stage_on(days, kAsOf - 31, kDefault), Stage::kNew);
  EXPECT_EQ(stage_on(days, kAsOf - 30, kDefault), Stage::kActive);
}

TEST(LifecycleStage, ReactivatedEndsWithTheNextOrder) {
  std::vector<std::int32_t> days{kAsOf - 300, kAsOf - 270, kAsOf - 240, kAsOf - 40};
  EXPECT_EQ(assess(days).stage, Stage::kReactivated);  // back after 199 silent days; 40 / 30 = 1.33
  days.push_back(kAsOf - 10);
  EXPECT_EQ(assess(days).stage, Stage::kLoyal);  // the next cycle closed normally
}

TEST(LifecycleStage, OneTimeBuyerComingBackLateIsReactivated) {
  // 90-day default cadence: silent 300 days (> 3 x 90) and back today
  const auto a = assess({kAsOf - 300, kAsOf});
  EXPECT_EQ(a.stage, Stage::kReactivated);
  EXPECT_EQ(a.typical_gap_days, 300);
}

TEST(LifecycleStage, MinGapsForOwnCadenceFallsBackToPolicyDefault) {
  lc::Policy policy;
  policy.min_gaps_for_own_cadence = 3;
  const auto a = assess({kAsOf - 20, kAsOf - 13, kAsOf - 6}, kAsOf, policy);
  EXPECT_EQ(a.typical_gap_days, 7);
  EXPECT_EQ(a.cadence_days, 90);  // two gaps < 3
  EXPECT_EQ(a.stage, Stage::kActive);
}

TEST(LifecycleStage, MedianOfEvenGapCountIsTheMiddleMean) {
  const auto a = assess({0, 10, 30, 60, 100});  // gaps 10 20 30 40
  EXPECT_EQ(a.typical_gap_days, 25);
}

TEST(LifecycleStage, StageSinceIsTheFirstDayOfTheCurrentRun) {
  std::mt19937 random(7);
  lc::Policy policy;
  for (int history = 0; history < 400; ++history) {
    policy.loyal_min_order_days = 2 + static_cast<int>(random() % 4);
    policy.min_gaps_for_own_cadence = 1 + static_cast<int>(random() % 2);
    std::vector<std::int32_t> days;
    std::int32_t day = static_cast<std::int32_t>(random() % 50);
    const int count = 1 + static_cast<int>(random() % 8);
    for (int i = 0; i < count; ++i) {
      days.push_back(day);
      day += 1 + static_cast<std::int32_t>(random() % (random() % 2 ? 15 : 200));
    }
    const std::int32_t as_of = days.back() + static_cast<std::int32_t>(random() % 400);
    const auto a = assess(days, as_of, policy);
    ASSERT_EQ(a.stage, stage_on(days, as_of, policy));
    std::int32_t since = as_of;
    while (since > days.front() && stage_on(days, since - 1, policy) == a.stage) --since;
    ASSERT_EQ(a.stage_since_day, since) << "history " << history;
  }
}

TEST(LifecycleStage, LongHistoriesUseTheHeapAndStayExact) {
  const auto days = every(-5000, 3, 3000);  // beyond the stack buffers
  const auto a = assess(days, days.back() + 1);
  EXPECT_EQ(a.typical_gap_days, 3);
  EXPECT_EQ(a.stage, Stage::kLoyal);
  EXPECT_EQ(a.stage_since_day, days[3]);
}

TEST(LifecycleTimeline, MatchesTheStageOnEachPeriodEnd) {
  const std::vector<std::int32_t> days{100, 107, 114, 300, 307};
  std::vector<std::int32_t> ends{50, 100, 113, 130, 200, 300, 320, 800};
  std::vector<Stage> stages(ends.size());
  lc::timeline(days.data(), days.size(), ends.data(), ends.size(), kDefault, stages.data());
  for (std::size_t i = 0; i < ends.size(); ++i) EXPECT_EQ(stages[i], stage_on(days, ends[i], kDefault)) << ends[i];
  EXPECT_EQ(stages[0], Stage::kProspect);
  EXPECT_EQ(stages[1], Stage::kNew);
  EXPECT_EQ(stages[5], Stage::kReactivated);
}

TEST(LifecycleSets, SortUniqueAndMergeAreOrderIndependent) {
  std::vector<std::int32_t> days{5, 3, 5, 9, 3, -2};
  days.resize(lc::sort_unique(days.data(), days.size()));
  EXPECT_EQ(days, (std::vector<std::int32_t>{-2, 3, 5, 9}));
  const std::vector<std::int32_t> other{1, 3, 10};
  std::vector<std::int32_t> merged(days.size() + other.size());
  merged.resize(lc::merge_unique(days.data(), days.size(), other.data(), other.size(), merged.data()));
  EXPECT_EQ(merged, (std::vector<std::int32_t>{-2, 1, 3, 5, 9, 10}));
}

TEST(LifecyclePolicy, RejectsNonsense) {
  EXPECT_NO_THROW(lc::check_policy(kDefault));
  lc::Policy p;
  p.lapsed_factor = 1.2;
  EXPECT_THROW(lc::check_policy(p), cdp::Error);
  p = lc::Policy{};
  p.one_time_cadence_days = 0;
  EXPECT_THROW(lc::check_policy(p), cdp::Error);
  p = lc::Policy{};
  p.at_risk_factor = 0.5;
  EXPECT_THROW(lc::check_policy(p), cdp::Error);
  p = lc::Policy{};
  p.churned_factor = std::nan("");
  EXPECT_THROW(lc::check_policy(p), cdp::Error);
}

namespace {
std::vector<std::uint8_t> short_numeric(bool negative, std::vector<std::uint16_t> digits) {
  std::uint16_t header = 0x8000 | (negative ? 0x2000 : 0);
  std::vector<std::uint8_t> bytes(2 + 2 * digits.size());
  std::memcpy(bytes.data(), &header, 2);
  if (!digits.empty()) std::memcpy(bytes.data() + 2, digits.data(), 2 * digits.size());
  return bytes;
}
bool positive(const std::vector<std::uint8_t>& b) { return lc::numeric_payload_is_positive(b.data(), b.size()); }
bool positive(const std::string& s) {
  return lc::numeric_payload_is_positive(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}
}  // namespace

TEST(LifecycleAmount, OnlyFinitePositiveAmountsAreOrders) {
  EXPECT_TRUE(positive(short_numeric(false, {5})));
  EXPECT_FALSE(positive(short_numeric(true, {5})));
  EXPECT_FALSE(positive(short_numeric(false, {})));  // zero
  EXPECT_TRUE(positive(cdp::encode_numeric(cdp::Decimal::parse("0.01"))));
  EXPECT_FALSE(positive(cdp::encode_numeric(cdp::Decimal::parse("-12.50"))));
  EXPECT_FALSE(positive(cdp::encode_numeric(cdp::Decimal::parse("0.00"))));
  for (std::uint16_t special : {0xC000, 0xD000, 0xF000}) {
    std::vector<std::uint8_t> b(2);
    std::memcpy(b.data(), &special, 2);
    try {
      positive(b);
      ADD_FAILURE() << "special numeric accepted";
    } catch (const cdp::Error& e) {
      EXPECT_STREQ(e.sqlstate(), "22023");
    }
  }
  EXPECT_THROW(positive(std::vector<std::uint8_t>{0x00}), cdp::Error);
  EXPECT_THROW(positive(std::vector<std::uint8_t>{0x00, 0x80, 0x01}), cdp::Error);  // odd digit bytes
}

namespace {
std::vector<std::uint8_t> serialized(const lc::StateHeader& h, const std::vector<std::int32_t>& days) {
  std::vector<std::uint8_t> bytes(lc::serialized_size(h, days.size()));
  lc::serialize_state(h, days.data(), days.size(), bytes.data());
  return bytes;
}
lc::StateHeader sample_header() {
  lc::StateHeader h;
  h.as_of = 836179200000000LL;
  h.as_of_day = kAsOf;
  h.orders = 5;
  h.first_order_at = 1;
  h.last_order_at = 2;
  h.policy = "default";
  return h;
}
void expect_corrupt(const std::vector<std::uint8_t>& bytes, lc::StateKind kind = lc::StateKind::kLifecycle) {
  try {
    lc::parse_state(bytes.data(), bytes.size(), kind);
    ADD_FAILURE() << "corrupt state accepted";
  } catch (const cdp::Error& e) {
    EXPECT_STREQ(e.sqlstate(), "22P03") << e.what();
  }
}
}  // namespace

TEST(LifecycleSerialization, RoundTrips) {
  const std::vector<std::int32_t> days{9000, 9100, 9200, 9300};
  const auto bytes = serialized(sample_header(), days);
  const auto parsed = lc::parse_state(bytes.data(), bytes.size(), lc::StateKind::kLifecycle);
  EXPECT_EQ(parsed.header.policy, "default");
  EXPECT_EQ(parsed.header.orders, 5);
  EXPECT_EQ(parsed.header.as_of_day, kAsOf);
  std::vector<std::int32_t> back(parsed.day_count);
  lc::read_days(parsed, back.data());
  EXPECT_EQ(back, days);
}

TEST(LifecycleSerialization, RejectsCorruptBytesCleanly) {
  const std::vector<std::int32_t> days{9000, 9100, 9200, 9300};
  const auto good = serialized(sample_header(), days);
  auto truncated = good;
  truncated.pop_back();
  expect_corrupt(truncated);
  auto oversized = good;
  oversized.push_back(0);
  expect_corrupt(oversized);
  expect_corrupt(std::vector<std::uint8_t>(good.begin(), good.begin() + 10));
  expect_corrupt(good, lc::StateKind::kTimeline);  // another aggregate's state
  auto magic = good;
  magic[0] ^= 1;
  expect_corrupt(magic);
  expect_corrupt(serialized(sample_header(), {9000, 8000, 9200, 9300}));  // unsorted
  expect_corrupt(serialized(sample_header(), {9000, 9000, 9200, 9300}));  // duplicate
  expect_corrupt(serialized(sample_header(), {9000, 9100, 9200, 9300, 9400, 9500}));  // 6 days, 5 orders
  expect_corrupt(serialized(sample_header(), {9000, 9700}));                          // day after as_of
  auto h = sample_header();
  h.orders = 0;
  expect_corrupt(serialized(h, {}) .size() ? serialized(sample_header(), {}) : good);  // orders without days
  h = sample_header();
  h.policy = std::string("def\0ult", 7);
  expect_corrupt(serialized(h, days));
  h.policy = "";
  expect_corrupt(serialized(h, days));
  // a huge day count in a small buffer
  auto count = good;
  const std::uint32_t huge = 0x40000000;
  std::memcpy(count.data() + 64, &huge, 4);
  expect_corrupt(count);
}

TEST(LifecycleSerialization, RandomDamageNeverCrashes) {
  const std::vector<std::int32_t> days{9000, 9100, 9200, 9300};
  const auto good = serialized(sample_header(), days);
  std::mt19937 random(11);
  for (int trial = 0; trial < 20000; ++trial) {
    auto bytes = good;
    const int flips = 1 + static_cast<int>(random() % 4);
    for (int f = 0; f < flips; ++f) bytes[random() % bytes.size()] = static_cast<std::uint8_t>(random());
    if (random() % 3 == 0) bytes.resize(random() % (bytes.size() + 8));
    try {
      const auto parsed = lc::parse_state(bytes.data(), bytes.size(), lc::StateKind::kLifecycle);
      ASSERT_LE(parsed.day_count * 4 + 72, bytes.size());
    } catch (const cdp::Error& e) {
      ASSERT_STREQ(e.sqlstate(), "22P03");
    }
  }
}

TEST(LifecycleCalendar, AddsMonthsLikePostgres) {
  EXPECT_EQ(lc::add_months_and_days(9162, 1, 0), 9190);   // 2025-01-31 + 1 month = 2025-02-28
  EXPECT_EQ(lc::add_months_and_days(9162, 2, 0), 9221);   // + 2 months = 2025-03-31
  EXPECT_EQ(lc::add_months_and_days(8825, 12, 0), 9190);  // 2024-02-29 + 1 year = 2025-02-28
  EXPECT_EQ(lc::add_months_and_days(0, 0, -1), -1);
  EXPECT_EQ(lc::add_months_and_days(0, -1199, 0), -36493);  // 1900-02-01
}

TEST(LifecycleCalendar, PeriodEnds) {
  std::vector<std::int32_t> out(lc::kMaxTimelinePeriods);
  std::size_t n = lc::period_ends(9162, 9221, 1, 0, out.data());
  ASSERT_EQ(n, 3u);
  EXPECT_EQ(out[1], 9190);
  EXPECT_EQ(out[2], 9221);
  n = lc::period_ends(0, 6, 0, 3, out.data());
  EXPECT_EQ(n, 3u);
  EXPECT_EQ(out[2], 6);
  EXPECT_THROW(lc::period_ends(0, 10, 0, 0, out.data()), cdp::Error);
  EXPECT_THROW(lc::period_ends(0, 10, -1, 0, out.data()), cdp::Error);
  EXPECT_THROW(lc::period_ends(10, 0, 0, 1, out.data()), cdp::Error);
  try {
    lc::period_ends(0, 20000, 0, 1, out.data());
    ADD_FAILURE();
  } catch (const cdp::Error& e) {
    EXPECT_STREQ(e.sqlstate(), "54000");
  }
}
