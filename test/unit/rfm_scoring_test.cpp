#include "core/rfm_scoring.h"

#include "core/error.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <set>

using cdp::rfm::first_group_of_scores;
using cdp::rfm::score_tie_groups;
using cdp::rfm::score_values;
using cdp::rfm::tie_group_cuts;

namespace {

std::vector<int> sizes_per_score(const std::vector<int>& scores, int bins) {
  std::vector<int> count(static_cast<std::size_t>(bins), 0);
  for (int s : scores) ++count[static_cast<std::size_t>(s) - 1];
  return count;
}

// The rules, checked on any input: equal values share a score, larger never scores
// lower, every score used when there are >= bins distinct values, scores within 1..bins.
void expect_rules_hold(const std::vector<long>& values, int bins) {
  const std::vector<int> scores = score_values(values, bins);
  ASSERT_EQ(scores.size(), values.size());
  std::map<long, int> score_of;
  for (std::size_t i = 0; i < values.size(); ++i) {
    ASSERT_GE(scores[i], 1);
    ASSERT_LE(scores[i], bins);
    auto [it, inserted] = score_of.emplace(values[i], scores[i]);
    ASSERT_EQ(it->second, scores[i]) << "equal values must share a score";
  }
  int previous = 0;
  std::set<int> used;
  for (const auto& [value, score] : score_of) {
    ASSERT_GE(score, previous) << "a larger value scored lower at " << value;
    previous = score;
    used.insert(score);
  }
  if (score_of.size() >= static_cast<std::size_t>(bins)) {
    EXPECT_EQ(used.size(), static_cast<std::size_t>(bins));
  }
}

}  // namespace

TEST(RfmScoring, CheckBinsAcceptsOneToHundred) {
  EXPECT_NO_THROW(cdp::rfm::check_bins(1));
  EXPECT_NO_THROW(cdp::rfm::check_bins(100));
  for (int bad : {0, -1, 101, 1000}) {
    try {
      cdp::rfm::check_bins(bad);
      FAIL() << "bins " << bad << " accepted";
    } catch (const cdp::Error& e) {
      EXPECT_STREQ(e.sqlstate(), "22023");
    }
  }
  EXPECT_THROW(score_tie_groups({1, 2}, 0), cdp::Error);
  EXPECT_THROW(score_tie_groups({1, 2}, 101), cdp::Error);
}

TEST(RfmScoring, NoTiesAndDivisibleGiveExactlyEqualBins) {
  std::vector<std::size_t> singles(100, 1);
  EXPECT_EQ(sizes_per_score(score_tie_groups(singles, 5), 5), (std::vector<int>{20, 20, 20, 20, 20}));
  EXPECT_EQ(sizes_per_score(score_tie_groups(singles, 4), 4), (std::vector<int>{25, 25, 25, 25}));
  EXPECT_EQ(sizes_per_score(score_tie_groups(singles, 100), 100), std::vector<int>(100, 1));
  std::vector<std::size_t> ten(10, 1);
  EXPECT_EQ(score_tie_groups(ten, 5), (std::vector<int>{1, 1, 2, 2, 3, 3, 4, 4, 5, 5}));
}

TEST(RfmScoring, NotDivisibleCutsAtNearestPosition) {
  // n = 7, bins = 5: targets 7/5 = 1.4 -> 1; 1 + 6/4 = 2.5 -> 2 (tie: lower); 2 + 5/3 = 3.67 -> 4;
  // 4 + 3/2 = 5.5 -> 5. The mirrored pass is equally balanced, so the left-to-right one is kept.
  EXPECT_EQ(tie_group_cuts(std::vector<std::size_t>(7, 1), 5), (std::vector<std::size_t>{0, 1, 2, 4, 5, 7}));
  EXPECT_EQ(sizes_per_score(score_tie_groups(std::vector<std::size_t>(7, 1), 5), 5),
            (std::vector<int>{1, 1, 2, 1, 2}));
  // n = 6, bins = 4: targets 1.5 -> 1 (tie: lower); 1 + 5/3 -> 3; 3 + 3/2 = 4.5 -> 4.
  EXPECT_EQ(tie_group_cuts(std::vector<std::size_t>(6, 1), 4), (std::vector<std::size_t>{0, 1, 3, 4, 6}));
}

TEST(RfmScoring, TiesShareAScoreAndCutsMoveToGroupEdges) {
  // Values 1,1,1,2,3,3,4,5,5,5 (n=10), bins=5: c = 0,3,4,6,7,10; ideal cuts 2,4,6,8.
  // b=1: nearest to 2 is c1=3; b=2: 4 -> c2; b=3: 6 -> c3; b=4: 8 -> c4=7 (|7-8| < |10-8|).
  const std::vector<std::size_t> groups{3, 1, 2, 1, 3};
  EXPECT_EQ(tie_group_cuts(groups, 5), (std::vector<std::size_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(score_tie_groups(groups, 5), (std::vector<int>{1, 2, 3, 4, 5}));
  EXPECT_EQ(score_values(std::vector<int>{5, 1, 3, 1, 2, 4, 3, 5, 1, 5}, 5),
            (std::vector<int>{5, 1, 3, 1, 2, 4, 3, 5, 1, 5}));
}

TEST(RfmScoring, HeavySkewHalfEqualValues) {
  // 50 equal lowest values (think one-time buyers' frequency) and 50 distinct larger ones.
  std::vector<std::size_t> groups{50};
  for (int i = 0; i < 50; ++i) groups.push_back(1);
  const std::vector<int> scores = score_tie_groups(groups, 5);
  EXPECT_EQ(scores[0], 1);
  // The tie group takes score 1 alone (the first target, 20, lies inside it); each later cut aims
  // at an equal share of what is left: 50 + 50/4 = 62.5 -> 62; 62 + 38/3 -> 75; 75 + 25/2 -> 87.
  EXPECT_EQ(tie_group_cuts(groups, 5), (std::vector<std::size_t>{0, 1, 13, 26, 38, 51}));
  EXPECT_EQ(sizes_per_score(score_values(std::vector<int>{}, 5), 5), (std::vector<int>{0, 0, 0, 0, 0}));
  std::vector<int> per_value;
  for (std::size_t g = 0; g < groups.size(); ++g)
    for (std::size_t k = 0; k < groups[g]; ++k) per_value.push_back(scores[g]);
  EXPECT_EQ(sizes_per_score(per_value, 5), (std::vector<int>{50, 12, 13, 12, 13}));
}

TEST(RfmScoring, HeavySkewAtTheTopIsBalancedByTheDownwardPass) {
  // 50 distinct values below one value repeated 50 times: the mirror image of the case above.
  std::vector<std::size_t> groups(50, 1);
  groups.push_back(50);
  std::vector<int> per_value;
  const std::vector<int> scores = score_tie_groups(groups, 5);
  for (std::size_t g = 0; g < groups.size(); ++g)
    for (std::size_t k = 0; k < groups[g]; ++k) per_value.push_back(scores[g]);
  EXPECT_EQ(sizes_per_score(per_value, 5), (std::vector<int>{13, 12, 13, 12, 50}));
}

TEST(RfmScoring, SkewedTopGroupStillUsesEveryScore) {
  // 4 distinct small values and one value repeated 96 times: every score is still used.
  const std::vector<std::size_t> groups{1, 1, 1, 1, 96};
  EXPECT_EQ(score_tie_groups(groups, 5), (std::vector<int>{1, 2, 3, 4, 5}));
}

TEST(RfmScoring, FewerDistinctValuesThanBinsLeavesScoresEmpty) {
  // One value only: c = 0, 100; ideal cuts 20, 40, 60, 80 -> 0, 0, 100, 100: everyone scores 3.
  EXPECT_EQ(score_tie_groups({100}, 5), (std::vector<int>{3}));
  // Two equal halves, 5 bins: cuts 0, 50, 50, 100 -> scores 2 and 4 (their quantile positions).
  EXPECT_EQ(score_tie_groups({50, 50}, 5), (std::vector<int>{2, 4}));
  // Three groups, 4 bins: c = 0,10,20,30; ideal 7.5, 15, 22.5 -> 10, 10 (tie -> lower), 20.
  EXPECT_EQ(tie_group_cuts({10, 10, 10}, 4), (std::vector<std::size_t>{0, 1, 1, 2, 3}));
  EXPECT_EQ(score_tie_groups({10, 10, 10}, 4), (std::vector<int>{1, 3, 4}));
  // Constant values with bins=2 sit exactly between the two scores: the tie goes to the lower cut.
  EXPECT_EQ(score_tie_groups({8}, 2), (std::vector<int>{2}));
}

TEST(RfmScoring, DistinctValuesEqualToBinsGetOneScoreEach) {
  EXPECT_EQ(score_tie_groups({1, 1, 1, 1, 1}, 5), (std::vector<int>{1, 2, 3, 4, 5}));
  EXPECT_EQ(score_tie_groups({90, 2, 3, 1, 4}, 5), (std::vector<int>{1, 2, 3, 4, 5}));
  EXPECT_EQ(score_tie_groups({1, 1, 1, 1, 96}, 5), (std::vector<int>{1, 2, 3, 4, 5}));
}

TEST(RfmScoring, OneBinScoresEverythingOne) {
  EXPECT_EQ(score_tie_groups({3, 1, 7}, 1), (std::vector<int>{1, 1, 1}));
  EXPECT_EQ(first_group_of_scores({1, 1, 1}, 1), (std::vector<long>{0}));
}

TEST(RfmScoring, HundredBins) {
  std::vector<std::size_t> singles(1000, 1);
  EXPECT_EQ(sizes_per_score(score_tie_groups(singles, 100), 100), std::vector<int>(100, 10));
  std::vector<std::size_t> fifty(50, 3);
  const std::vector<int> scores = score_tie_groups(fifty, 100);
  for (std::size_t g = 1; g < scores.size(); ++g) EXPECT_LT(scores[g - 1], scores[g]);
  EXPECT_EQ(first_group_of_scores(scores, 100)[0], -1);  // fewer groups than bins: some scores empty
}

TEST(RfmScoring, EmptyInputHasNoGroupsAndNoBreaks) {
  EXPECT_TRUE(score_tie_groups({}, 5).empty());
  EXPECT_EQ(first_group_of_scores({}, 3), (std::vector<long>{-1, -1, -1}));
}

TEST(RfmScoring, FirstGroupOfScoresGivesLowerBoundsAndGaps) {
  EXPECT_EQ(first_group_of_scores({1, 1, 2, 4, 4}, 5), (std::vector<long>{0, 2, -1, 3, -1}));
  EXPECT_EQ(first_group_of_scores({2, 4}, 5), (std::vector<long>{-1, 0, -1, 1, -1}));
  EXPECT_THROW(first_group_of_scores({2, 1}, 5), cdp::Error);  // scores must ascend with values
  EXPECT_THROW(first_group_of_scores({6}, 5), cdp::Error);
}

TEST(RfmScoring, RulesHoldOnRandomData) {
  std::mt19937 random(20261128);
  for (int round = 0; round < 400; ++round) {
    const int bins = 1 + static_cast<int>(random() % 12) + (round % 50 == 0 ? 88 : 0);
    const std::size_t n = random() % 300;
    const long range = 1 + static_cast<long>(random() % (round % 3 == 0 ? 5 : 1000));
    std::vector<long> values(n);
    for (auto& v : values) v = static_cast<long>(random() % static_cast<unsigned long>(range));
    SCOPED_TRACE("round " + std::to_string(round));
    expect_rules_hold(values, bins);
  }
}

TEST(RfmScoring, BalancedAsTiesAllowOnRandomDistinctData) {
  // Without ties, each score holds floor(n/bins) or ceil(n/bins) values.
  std::mt19937 random(7);
  for (int round = 0; round < 100; ++round) {
    const int bins = 1 + static_cast<int>(random() % 20);
    const std::size_t n = static_cast<std::size_t>(bins) + random() % 500;
    const std::vector<int> counts = sizes_per_score(score_tie_groups(std::vector<std::size_t>(n, 1), bins), bins);
    for (int c : counts) {
      EXPECT_GE(static_cast<std::size_t>(c), n / static_cast<std::size_t>(bins));
      EXPECT_LE(static_cast<std::size_t>(c), (n + static_cast<std::size_t>(bins) - 1) / static_cast<std::size_t>(bins));
    }
  }
}

TEST(RfmScoring, SortIntoTieGroupsAndBucketAgreeWithScores) {
  std::mt19937 random(11);
  cdp::Interrupts interrupts;
  for (int round = 0; round < 100; ++round) {
    const int bins = 1 + static_cast<int>(random() % 10);
    std::vector<cdp::rfm::Keyed<double>> entries;
    const std::size_t n = random() % 200;
    for (std::size_t i = 0; i < n; ++i) entries.push_back({static_cast<double>(random() % 40) / 4.0, i});
    std::vector<double> original(n);
    for (const auto& e : entries) original[e.id] = e.key;
    auto groups = cdp::rfm::sort_into_tie_groups(entries, std::less<double>(), interrupts);
    const std::vector<int> group_scores = score_tie_groups(groups, bins);
    const std::vector<long> first = first_group_of_scores(group_scores, bins);
    // Breaks: the lowest value of each score (absent where the score is empty).
    std::vector<double> breaks(static_cast<std::size_t>(bins), 0.0);
    bool present[100] = {};
    std::vector<std::size_t> start(groups.size() + 1, 0);
    for (std::size_t g = 0; g < groups.size(); ++g) start[g + 1] = start[g] + groups[g];
    for (int b = 0; b < bins; ++b)
      if (first[static_cast<std::size_t>(b)] >= 0) {
        breaks[static_cast<std::size_t>(b)] = entries[start[static_cast<std::size_t>(first[static_cast<std::size_t>(b)])]].key;
        present[b] = true;
      }
    const std::vector<int> expected = score_values(original, bins);
    if (n == 0) continue;
    cdp::rfm::check_breaks(breaks.data(), present, bins, std::less<double>());
    for (std::size_t i = 0; i < n; ++i)
      ASSERT_EQ(cdp::rfm::bucket_score(original[i], breaks.data(), present, bins, std::less<double>()), expected[i]);
  }
}

TEST(RfmScoring, SortPollsInterruptsAndCanBeCancelled) {
  int polls = 0;
  cdp::Interrupts interrupts([&] {
    if (++polls == 2) throw cdp::Error("57014", "canceling statement due to user request");
  });
  std::vector<cdp::rfm::Keyed<long>> entries;
  for (long i = 0; i < 100000; ++i) entries.push_back({(i * 7919) % 100003, static_cast<std::size_t>(i)});
  EXPECT_THROW(cdp::rfm::sort_into_tie_groups(entries, std::less<long>(), interrupts), cdp::Error);
  EXPECT_EQ(polls, 2);
}

TEST(RfmScoring, BucketRules) {
  const double breaks[] = {10, 0, 20, 20, 30};
  const bool present[] = {true, false, true, true, true};
  auto less = std::less<double>();
  cdp::rfm::check_breaks(breaks, present, 5, less);
  EXPECT_EQ(cdp::rfm::bucket_score(5.0, breaks, present, 5, less), 1);   // below every threshold
  EXPECT_EQ(cdp::rfm::bucket_score(10.0, breaks, present, 5, less), 1);
  EXPECT_EQ(cdp::rfm::bucket_score(19.0, breaks, present, 5, less), 1);  // score 2 has no threshold
  EXPECT_EQ(cdp::rfm::bucket_score(20.0, breaks, present, 5, less), 4);  // equal thresholds: the larger score
  EXPECT_EQ(cdp::rfm::bucket_score(99.0, breaks, present, 5, less), 5);
  const double only_high[] = {0, 0, 7};
  const bool high_present[] = {false, false, true};
  EXPECT_EQ(cdp::rfm::bucket_score(1.0, only_high, high_present, 3, less), 3);  // lowest used score
  const double decreasing[] = {3, 2};
  const bool both[] = {true, true};
  EXPECT_THROW(cdp::rfm::check_breaks(decreasing, both, 2, less), cdp::Error);
  const bool none[] = {false, false};
  EXPECT_THROW(cdp::rfm::check_breaks(decreasing, none, 2, less), cdp::Error);
  EXPECT_THROW(cdp::rfm::check_breaks(decreasing, both, 0, less), cdp::Error);
}

namespace {

// The rule exactly as docs/rfm_scoring.md states it, written the slow and obvious way (doubles are
// exact here: the test keeps n small), to check the implementation against the documentation.
std::vector<std::size_t> documented_cuts(const std::vector<std::size_t>& sizes, int bins) {
  const std::size_t d = sizes.size();
  std::vector<double> c(d + 1, 0);
  for (std::size_t j = 0; j < d; ++j) c[j + 1] = c[j] + static_cast<double>(sizes[j]);
  const double n = c[d];
  auto nearest = [&](std::size_t low, std::size_t high, double target) {
    std::size_t best = low;
    for (std::size_t j = low; j <= high; ++j)
      if (std::abs(c[j] - target) < std::abs(c[best] - target)) best = j;  // strict: ties keep the smaller j
    return best;
  };
  std::vector<std::size_t> cuts(static_cast<std::size_t>(bins) + 1, 0);
  cuts[static_cast<std::size_t>(bins)] = d;
  if (d < static_cast<std::size_t>(bins)) {
    for (int b = 1; b < bins; ++b) cuts[b] = nearest(0, d, b * n / bins);
    return cuts;
  }
  auto upward = [&](const std::vector<double>& cum) {
    std::vector<std::size_t> up(static_cast<std::size_t>(bins) + 1, 0);
    up[static_cast<std::size_t>(bins)] = d;
    for (int b = 1; b < bins; ++b) {
      const double p = cum[up[b - 1]];
      const double target = p + (n - p) / (bins - b + 1);
      std::size_t best = up[b - 1] + 1;
      for (std::size_t j = up[b - 1] + 1; j <= d - static_cast<std::size_t>(bins - b); ++j)
        if (std::abs(cum[j] - target) < std::abs(cum[best] - target)) best = j;
      up[b] = best;
    }
    return up;
  };
  const std::vector<std::size_t> up = upward(c);
  std::vector<double> mirrored_c(d + 1, 0);
  for (std::size_t j = 0; j < d; ++j) mirrored_c[j + 1] = mirrored_c[j] + static_cast<double>(sizes[d - 1 - j]);
  const std::vector<std::size_t> mirrored = upward(mirrored_c);
  std::vector<std::size_t> down(mirrored.size());
  for (std::size_t b = 0; b < mirrored.size(); ++b) down[b] = d - mirrored[mirrored.size() - 1 - b];
  auto squares = [&](const std::vector<std::size_t>& cut) {
    double sum = 0;
    for (std::size_t b = 1; b < cut.size(); ++b) sum += (c[cut[b]] - c[cut[b - 1]]) * (c[cut[b]] - c[cut[b - 1]]);
    return sum;
  };
  return squares(down) < squares(up) ? down : up;
}

}  // namespace

TEST(RfmScoring, MatchesTheDocumentedRuleOnRandomGroups) {
  std::mt19937 random(31337);
  for (int round = 0; round < 3000; ++round) {
    const int bins = 1 + static_cast<int>(random() % (round % 10 == 0 ? 100 : 9));
    const std::size_t groups = random() % 40;
    std::vector<std::size_t> sizes(groups);
    for (auto& s : sizes) s = 1 + (random() % 4 == 0 ? random() % 60 : random() % 3);
    ASSERT_EQ(tie_group_cuts(sizes, bins), documented_cuts(sizes, bins)) << "round " << round << ", bins " << bins;
  }
}
