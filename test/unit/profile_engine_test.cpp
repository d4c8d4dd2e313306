#include "core/profile_engine.h"

#include "core/error.h"

#include <gtest/gtest.h>

#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace {

namespace lc = cdp::lifecycle;
using cdp::Decimal;
using cdp::profiles::ProfileEngine;

constexpr std::int64_t kDay = lc::kUsecsPerDay;

cdp::Interrupts no_interrupts() { return cdp::Interrupts([] {}); }

// The per-person reference: what cdp.rfm_agg and cdp.lifecycle computed from the same rows.
struct Reference {
  cdp::rfm::OrderStats rfm;
  std::set<std::int32_t> days;
  bool has_last = false;
  std::int64_t last = 0;
};

TEST(ProfileEngine, MatchesTheAggregateRulesPerPerson) {
  std::mt19937_64 random(11);
  const std::int64_t local_as_of = 9000 * kDay + 5 * 3600 * 1000000LL;
  cdp::MemoryBudget budget(std::size_t{1} << 30, "maintenance_work_mem");
  ProfileEngine engine(local_as_of, budget);
  std::map<std::string, Reference> expected;  // "i:<n>" integer keys, "b:<bytes>" byte keys
  const lc::Policy policy;
  for (int row = 0; row < 200000; ++row) {
    const bool integer = random() % 3 != 0;
    const std::int64_t n = static_cast<std::int64_t>(random() % 5000) - 100;
    const std::string bytes = "k" + std::to_string(n);
    // Times around as_of (some after it) and before 2000-01-01 (negative day numbers).
    const std::int64_t at = static_cast<std::int64_t>(random() % (12000 * kDay)) - 2500 * kDay;
    const int kind = static_cast<int>(random() % 10);
    Decimal amount(static_cast<__int128>(random() % 100000) - 3000, static_cast<int>(random() % 3));
    if (kind == 0) amount = Decimal(0, 2);
    const Decimal* given = kind == 1 ? nullptr : &amount;
    if (integer)
      engine.add(n, at, given);
    else
      engine.add(bytes.data(), bytes.size(), at, given);
    Reference& ref = expected[(integer ? "i:" : "b:") + (integer ? std::to_string(n) : bytes)];
    if (given) cdp::rfm::add_order(ref.rfm, at, amount);
    if (given && at <= local_as_of && amount.sign() > 0) {
      ref.days.insert(lc::utc_day(at));
      if (!ref.has_last || at > ref.last) ref.last = at;
      ref.has_last = true;
    }
  }
  cdp::Interrupts interrupts = no_interrupts();
  engine.finish_rows(interrupts);
  ASSERT_EQ(engine.size(), expected.size());
  std::size_t checked = 0;
  for (std::size_t p = 0; p < engine.size(); ++p) {
    const cdp::profiles::PersonStats& person = engine.at(p);
    const std::string key = person.integer_key() ? "i:" + std::to_string(person.key)
                                                 : "b:" + std::string(person.key_bytes(), person.key_length);
    const auto found = expected.find(key);
    ASSERT_NE(found, expected.end()) << key;
    const Reference& ref = found->second;
    EXPECT_EQ(person.rfm.rows, ref.rfm.rows) << key;
    EXPECT_EQ(person.rfm.orders, ref.rfm.orders) << key;
    EXPECT_TRUE(person.rfm.monetary == ref.rfm.monetary) << key;
    EXPECT_EQ(person.rfm.monetary.scale(), ref.rfm.monetary.scale()) << key;
    EXPECT_TRUE(person.rfm.positive_total == ref.rfm.positive_total) << key;
    if (ref.rfm.orders > 0) {
      EXPECT_EQ(person.rfm.first_order_at, ref.rfm.first_order_at) << key;
      EXPECT_EQ(person.rfm.last_order_at, ref.rfm.last_order_at) << key;
      EXPECT_EQ(engine.recency_days(p), engine.as_of_day() - lc::utc_day(ref.rfm.last_order_at));
    }
    const std::vector<std::int32_t> days(ref.days.begin(), ref.days.end());
    const lc::Outcome want = lc::outcome(days.data(), days.size(), lc::utc_day(local_as_of), ref.last, policy);
    const lc::Outcome got = engine.lifecycle(p, policy);
    EXPECT_EQ(got.assessment.stage, want.assessment.stage) << key;
    EXPECT_EQ(got.assessment.order_days, want.assessment.order_days) << key;
    EXPECT_EQ(got.assessment.stage_since_day, want.assessment.stage_since_day) << key;
    EXPECT_EQ(got.assessment.typical_gap_days, want.assessment.typical_gap_days) << key;
    EXPECT_EQ(got.assessment.overdue_ratio, want.assessment.overdue_ratio) << key;
    EXPECT_EQ(got.has_expected_next, want.has_expected_next) << key;
    EXPECT_EQ(got.expected_next_order_at, want.expected_next_order_at) << key;
    ++checked;
  }
  EXPECT_EQ(checked, expected.size());
  EXPECT_EQ(engine.order_rows(), 200000u);
}

TEST(ProfileEngine, IntegerAndByteKeysAreDifferentPersons) {
  cdp::MemoryBudget budget(std::size_t{64} << 20, "maintenance_work_mem");
  ProfileEngine engine(100 * kDay, budget);
  const Decimal ten(10, 0);
  engine.add(1, kDay, &ten);
  engine.add("1", 1, kDay, &ten);
  engine.add(1, 2 * kDay, &ten);
  engine.add("", 0, 2 * kDay, &ten);
  EXPECT_EQ(engine.size(), 3u);
  EXPECT_EQ(engine.find(1), 0u);
  EXPECT_EQ(engine.find(2), ProfileEngine::npos);
  EXPECT_EQ(engine.at(0).rfm.orders, 2);
  EXPECT_EQ(engine.at(1).rfm.orders, 1);
  EXPECT_EQ(engine.at(2).key_length, 0u);
}

TEST(ProfileEngine, LaterLocalTimesCountForMoneyButNotForTheLifecycle) {
  cdp::MemoryBudget budget(std::size_t{64} << 20, "maintenance_work_mem");
  const std::int64_t as_of = 100 * kDay;
  ProfileEngine engine(as_of, budget);
  const Decimal amount(500, 2);
  engine.add(7, 90 * kDay, &amount);
  engine.add(7, as_of + 1, &amount);  // the fall-back hour: after as_of in local time
  cdp::Interrupts interrupts = no_interrupts();
  engine.finish_rows(interrupts);
  EXPECT_EQ(engine.at(0).rfm.orders, 2);
  EXPECT_EQ(engine.at(0).rfm.last_order_at, as_of + 1);
  EXPECT_EQ(engine.at(0).lifecycle_last_order_at, 90 * kDay);
  const lc::Outcome outcome = engine.lifecycle(0, lc::Policy());
  EXPECT_EQ(outcome.assessment.order_days, 1);
  EXPECT_EQ(outcome.assessment.days_since_last, 10);
}

TEST(ProfileEngine, NullAmountsAndRefundsOnly) {
  cdp::MemoryBudget budget(std::size_t{64} << 20, "maintenance_work_mem");
  ProfileEngine engine(100 * kDay, budget);
  const Decimal refund(-250, 2);
  engine.add(1, 10 * kDay, nullptr);
  engine.add(2, 10 * kDay, &refund);
  engine.add(2, 11 * kDay, nullptr);
  cdp::Interrupts interrupts = no_interrupts();
  engine.finish_rows(interrupts);
  EXPECT_EQ(engine.at(0).rfm.rows, 0);  // nothing to sum: the SQL refresh stops on such a person
  EXPECT_EQ(engine.at(1).rfm.rows, 1);
  EXPECT_EQ(engine.at(1).rfm.orders, 0);
  EXPECT_EQ(engine.at(1).rfm.monetary.to_string(), "-2.50");
  EXPECT_EQ(engine.lifecycle(1, lc::Policy()).assessment.stage, lc::Stage::kProspect);
  EXPECT_FALSE(engine.lifecycle(1, lc::Policy()).has_expected_next);
}

TEST(ProfileEngine, MinusInfinityIsRefusedAsByTheLifecycleAggregate) {
  cdp::MemoryBudget budget(std::size_t{64} << 20, "maintenance_work_mem");
  ProfileEngine engine(100 * kDay, budget);
  const Decimal amount(1, 0);
  try {
    engine.add(1, std::numeric_limits<std::int64_t>::min(), &amount);
    FAIL() << "no error";
  } catch (const cdp::Error& e) {
    EXPECT_STREQ(e.sqlstate(), "22008");
  }
}

TEST(ProfileEngine, MemoryBudgetStopsWith54000) {
  cdp::MemoryBudget budget(std::size_t{1} << 20, "maintenance_work_mem");
  ProfileEngine engine(100 * kDay, budget);
  const Decimal amount(1, 0);
  try {
    for (std::int64_t key = 0; key < 1000000; ++key) engine.add(key, kDay, &amount);
    FAIL() << "no error";
  } catch (const cdp::Error& e) {
    EXPECT_STREQ(e.sqlstate(), "54000");
    EXPECT_NE(e.hint().find("maintenance_work_mem"), std::string::npos);
  }
}

TEST(ProfileEngine, BudgetIsReleasedWithTheEngine) {
  cdp::MemoryBudget budget(std::size_t{256} << 20, "maintenance_work_mem");
  {
    ProfileEngine engine(100 * kDay, budget);
    const Decimal amount(1, 0);
    for (std::int64_t key = 0; key < 100000; ++key) {
      const std::string text = std::to_string(key);
      engine.add(text.data(), text.size(), (key % 50) * kDay, &amount);
    }
    cdp::Interrupts interrupts = no_interrupts();
    engine.finish_rows(interrupts);
    EXPECT_GT(budget.used(), 100000 * sizeof(cdp::profiles::PersonStats));
  }
  EXPECT_EQ(budget.used(), 0u);
}

TEST(LifecycleOutcome, ExpectedNextOrderStopsAtTheEndOfTimestamptz) {
  const lc::Policy policy;
  const std::int32_t days[] = {0};
  const lc::Outcome near_end = lc::outcome(days, 1, 10, lc::kEndTimestamp - kDay, policy);
  EXPECT_FALSE(near_end.has_expected_next);
  const lc::Outcome ordinary = lc::outcome(days, 1, 10, 3600, policy);
  ASSERT_TRUE(ordinary.has_expected_next);
  EXPECT_EQ(ordinary.expected_next_order_at, 3600 + 90 * kDay);
  EXPECT_EQ(lc::utc_day(-1), -1);
  EXPECT_EQ(lc::utc_day(0), 0);
  EXPECT_EQ(lc::utc_day(-kDay), -1);
  EXPECT_EQ(lc::utc_day(kDay - 1), 0);
}

}  // namespace
