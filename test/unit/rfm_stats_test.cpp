#include "core/rfm_stats.h"

#include "core/decimal.h"
#include "core/error.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <string>

using cdp::Decimal;
using namespace cdp::rfm;

namespace {

Decimal money(const char* text) { return Decimal::parse(text); }

std::string sqlstate_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const cdp::Error& e) {
    return e.sqlstate();
  }
  return "none";
}

OrderStats sample_stats() {
  OrderStats stats;
  add_order(stats, 1000, money("10.50"));
  add_order(stats, 3000, money("-4.25"));  // refund: monetary only
  add_order(stats, 500, money("2.125"));
  add_order(stats, 9000, money("0"));      // zero: a row, not an order
  return stats;
}

}  // namespace

TEST(OrderStats, PositiveRowsAreOrdersAndAllRowsAreMoney) {
  const OrderStats stats = sample_stats();
  EXPECT_EQ(stats.rows, 4);
  EXPECT_EQ(stats.orders, 2);
  EXPECT_EQ(stats.first_order_at, 500);
  EXPECT_EQ(stats.last_order_at, 1000);  // the refund and the zero row are not orders
  EXPECT_EQ(stats.monetary.to_string(), "8.375");
  EXPECT_EQ(stats.positive_total.to_string(), "12.625");
}

TEST(OrderStats, OnlyRefundsGiveNoOrders) {
  OrderStats stats;
  add_order(stats, 7, money("-3.00"));
  EXPECT_EQ(stats.orders, 0);
  EXPECT_EQ(stats.rows, 1);
  EXPECT_EQ(stats.monetary.to_string(), "-3.00");
}

TEST(OrderStats, AnOrderAtMinusInfinityIsRefusedAndPlusInfinityIsATime) {
  OrderStats stats;
  const std::int64_t minus_infinity = std::numeric_limits<std::int64_t>::min();
  EXPECT_EQ(sqlstate_of([&] { add_order(stats, minus_infinity, money("5")); }), "22008");
  EXPECT_EQ(sqlstate_of([&] { add_order(stats, minus_infinity, money("-5")); }), "22008");  // a refund too
  EXPECT_EQ(stats.rows, 0);  // nothing folded in
  add_order(stats, std::numeric_limits<std::int64_t>::max(), money("5"));
  EXPECT_EQ(stats.last_order_at, std::numeric_limits<std::int64_t>::max());
}

TEST(OrderStats, MergeEqualsOneSerialPassInAnySplit) {
  std::mt19937_64 random(7);
  std::vector<std::pair<std::int64_t, Decimal>> rows;
  for (int i = 0; i < 200; ++i)
    rows.emplace_back(static_cast<std::int64_t>(random() % 100000) - 50000,
                      Decimal(static_cast<long long>(random() % 20001) - 2000, static_cast<int>(random() % 3)));
  OrderStats serial;
  for (const auto& [at, amount] : rows) add_order(serial, at, amount);
  for (std::size_t split : {0u, 1u, 57u, 199u, 200u}) {
    OrderStats left, right;
    for (std::size_t i = 0; i < rows.size(); ++i) add_order(i < split ? left : right, rows[i].first, rows[i].second);
    merge(right, left);  // order of the merge must not matter either
    EXPECT_EQ(right.rows, serial.rows);
    EXPECT_EQ(right.orders, serial.orders);
    EXPECT_EQ(right.first_order_at, serial.first_order_at);
    EXPECT_EQ(right.last_order_at, serial.last_order_at);
    EXPECT_TRUE(right.monetary == serial.monetary);
    EXPECT_TRUE(right.positive_total == serial.positive_total);
  }
}

TEST(OrderStats, MergeWithEmptyStateKeepsTheOther) {
  OrderStats empty, stats = sample_stats();
  merge(empty, stats);
  EXPECT_EQ(empty.orders, 2);
  EXPECT_EQ(empty.first_order_at, 500);
  merge(stats, OrderStats{});
  EXPECT_EQ(stats.rows, 4);
}

TEST(OrderStats, SerializeRoundTrips) {
  const OrderStats stats = sample_stats();
  std::uint8_t bytes[kSerializedSize];
  serialize(stats, bytes);
  const OrderStats back = deserialize(bytes, sizeof bytes);
  EXPECT_EQ(back.rows, stats.rows);
  EXPECT_EQ(back.orders, stats.orders);
  EXPECT_EQ(back.first_order_at, stats.first_order_at);
  EXPECT_EQ(back.last_order_at, stats.last_order_at);
  EXPECT_EQ(back.monetary.to_string(), "8.375");
  EXPECT_EQ(back.positive_total.to_string(), "12.625");
  // Extreme values survive too (-infinity itself is refused by add_order).
  OrderStats extreme;
  add_order(extreme, INT64_MIN + 1, Decimal(static_cast<__int128>(1) << 120, 30));
  add_order(extreme, INT64_MAX, money("-1"));
  serialize(extreme, bytes);
  const OrderStats extreme_back = deserialize(bytes, sizeof bytes);
  EXPECT_TRUE(extreme_back.monetary == extreme.monetary);
  EXPECT_EQ(extreme_back.first_order_at, INT64_MIN + 1);
}

TEST(OrderStats, CorruptBytesAreAnErrorNeverACrash) {
  std::uint8_t bytes[kSerializedSize];
  serialize(sample_stats(), bytes);
  EXPECT_EQ(sqlstate_of([&] { deserialize(bytes, sizeof bytes - 1); }), "22P03");   // truncated
  std::uint8_t longer[kSerializedSize + 1] = {};
  std::memcpy(longer, bytes, sizeof bytes);
  EXPECT_EQ(sqlstate_of([&] { deserialize(longer, sizeof longer); }), "22P03");     // oversized
  EXPECT_EQ(sqlstate_of([&] { deserialize(bytes, 0); }), "22P03");                  // empty
  auto corrupted = [&](std::size_t offset, std::uint8_t value) {
    std::uint8_t copy[kSerializedSize];
    std::memcpy(copy, bytes, sizeof copy);
    copy[offset] = value;
    return sqlstate_of([&] { deserialize(copy, sizeof copy); });
  };
  EXPECT_EQ(corrupted(0, 99), "22P03");         // unknown version
  EXPECT_EQ(corrupted(1 + 7, 0x80), "22P03");   // negative row count
  EXPECT_EQ(corrupted(1 + 8, 200), "22P03");    // more orders than rows
  EXPECT_EQ(corrupted(1 + 16 + 6, 0x7F), "22P03");  // first order after last order
  EXPECT_EQ(corrupted(1 + 32 + 16, 31), "22P03");         // monetary scale out of range
  EXPECT_EQ(corrupted(1 + 32 + 17 + 15, 0x80), "22P03");  // negative total of positive orders
  // Every single-byte flip either decodes to a consistent state or throws 22P03.
  for (std::size_t offset = 0; offset < kSerializedSize; ++offset)
    for (int bit = 0; bit < 8; ++bit) {
      const std::string state = corrupted(offset, static_cast<std::uint8_t>(bytes[offset] ^ (1u << bit)));
      EXPECT_TRUE(state == "none" || state == "22P03") << offset << ":" << bit << " -> " << state;
    }
}

TEST(OrderStats, ExactOverflowIsAnError) {
  OrderStats stats;
  const Decimal huge = Decimal::parse("99999999999999999999999999999999999999");
  add_order(stats, 1, huge);
  EXPECT_EQ(sqlstate_of([&] { add_order(stats, 2, huge); add_order(stats, 3, huge); }), "22003");
}

TEST(Amount, NonFiniteNumericsAreRejected) {
  const std::uint8_t nan[] = {0x00, 0xC0}, pos_inf[] = {0x00, 0xD0}, neg_inf[] = {0x00, 0xF0};
  EXPECT_EQ(sqlstate_of([&] { amount_from_numeric(nan, 2); }), "22023");
  EXPECT_EQ(sqlstate_of([&] { amount_from_numeric(pos_inf, 2); }), "22023");
  EXPECT_EQ(sqlstate_of([&] { amount_from_numeric(neg_inf, 2); }), "22023");
  const std::string encoded = cdp::encode_numeric(money("-12.34"));
  EXPECT_EQ(amount_from_numeric(reinterpret_cast<const std::uint8_t*>(encoded.data()), encoded.size()).to_string(),
            "-12.34");
}

TEST(CustomerTable, AggregatesIntegerKeysLikeAReferenceMap) {
  cdp::MemoryBudget budget(1u << 30, "test");
  CustomerTable table(budget);
  std::map<std::int64_t, std::tuple<std::int64_t, std::int64_t, Decimal>> expected;  // last, orders, money
  std::mt19937_64 random(11);
  for (int i = 0; i < 300000; ++i) {
    const std::int64_t key = static_cast<std::int64_t>(random() % 50000) * 7919 - 1000000;
    const std::int64_t at = static_cast<std::int64_t>(random() % 1000000);
    const Decimal amount(static_cast<long long>(random() % 10000) - 500, 2);
    table.add(key, at, amount);
    auto& [last, orders, total] = expected[key];
    total += amount;
    if (amount.sign() > 0) {
      if (orders == 0 || at > last) last = at;
      ++orders;
    }
  }
  ASSERT_EQ(table.size(), expected.size());
  for (std::size_t i = 0; i < table.size(); ++i) {
    const CustomerTotals& totals = table.at(i);
    const auto& [last, orders, total] = expected.at(totals.key);
    EXPECT_EQ(totals.orders, orders);
    if (orders > 0) {
      EXPECT_EQ(totals.last_order_at, last);
    }
    EXPECT_TRUE(totals.monetary() == total);
  }
}

TEST(CustomerTable, ByteKeysIncludingEmptyAndLongOnes) {
  cdp::MemoryBudget budget(1u << 30, "test");
  CustomerTable table(budget);
  const std::string long_key(600000, 'x');
  std::map<std::string, int> orders;
  for (int round = 0; round < 3; ++round)
    for (int i = 0; i < 20000; ++i) {
      const std::string key = i == 0 ? std::string() : i == 1 ? long_key : "customer-" + std::to_string(i);
      table.add(key.data(), key.size(), round, Decimal::from_int(1 + i % 3));
      ++orders[key];
    }
  ASSERT_EQ(table.size(), 20000u);
  for (std::size_t i = 0; i < table.size(); ++i) {
    const CustomerTotals& totals = table.at(i);
    const std::string key(totals.key_bytes(), totals.key_length);
    EXPECT_EQ(totals.orders, orders.at(key));
    EXPECT_EQ(totals.last_order_at, 2);
  }
}

TEST(CustomerTable, MemoryBudgetEndsInError54000) {
  cdp::MemoryBudget budget(1u << 20, "maintenance_work_mem");
  EXPECT_EQ(sqlstate_of([&] {
              CustomerTable table(budget);
              for (std::int64_t key = 0; key < 1000000; ++key) table.add(key, 0, Decimal::from_int(1));
            }),
            "54000");
}

TEST(ScoreCustomers, ScoresOnlyCustomersWithOrdersAndMatchesTheCoreRule) {
  cdp::MemoryBudget budget(1u << 30, "test");
  cdp::Interrupts interrupts;
  CustomerTable table(budget);
  // Ten customers with distinct last order, frequency and monetary; one with only a refund.
  for (std::int64_t c = 1; c <= 10; ++c)
    for (std::int64_t k = 0; k < c; ++k) table.add(c, 100 * c - k, Decimal::from_int(11 - c));
  table.add(99, 5000, Decimal::from_int(-7));
  const RfmScores scores = score_customers(table, 5, interrupts, budget);
  ASSERT_EQ(scores.customers.size(), 10u);
  for (std::size_t k = 0; k < scores.customers.size(); ++k) {
    const std::int64_t c = table.at(scores.customers[k]).key;
    const int expected_rank = static_cast<int>((c - 1) / 2) + 1;  // 2 customers per score
    EXPECT_EQ(scores.r[k], expected_rank) << c;                   // later last order -> higher
    EXPECT_EQ(scores.f[k], expected_rank) << c;                   // more orders -> higher
    // monetary = c * (11 - c): ties between c and 11-c share a score
    EXPECT_GE(scores.m[k], 1);
  }
  std::map<std::int64_t, int> m;
  for (std::size_t k = 0; k < scores.customers.size(); ++k) m[table.at(scores.customers[k]).key] = scores.m[k];
  for (std::int64_t c = 1; c <= 10; ++c) {
    EXPECT_EQ(m[c], m[11 - c]);                       // equal values share a score
    if (c < 5) {
      EXPECT_LE(m[c], m[c + 1]);  // a larger value never scores lower
    }
  }
}

TEST(ScoreCustomers, ScoresAreInRangeForEveryBinCount) {
  cdp::MemoryBudget budget(1u << 30, "test");
  cdp::Interrupts interrupts;
  CustomerTable table(budget);
  std::mt19937_64 random(3);
  for (int i = 0; i < 5000; ++i)
    table.add(static_cast<std::int64_t>(random() % 1000), static_cast<std::int64_t>(random() % 50),
              Decimal(static_cast<long long>(random() % 100), 1));
  for (int bins : {1, 2, 5, 7, 100}) {
    const RfmScores scores = score_customers(table, bins, interrupts, budget);
    for (std::size_t k = 0; k < scores.customers.size(); ++k) {
      EXPECT_GE(scores.r[k], 1);
      EXPECT_LE(scores.r[k], bins);
      EXPECT_GE(scores.m[k], 1);
      EXPECT_LE(scores.m[k], bins);
    }
  }
  EXPECT_EQ(sqlstate_of([&] { score_customers(table, 0, interrupts, budget); }), "22023");
  EXPECT_EQ(sqlstate_of([&] { score_customers(table, 101, interrupts, budget); }), "22023");
}
