// RFM quantile scoring with ties (PostgreSQL-free). The exact rule is documented in the README
// and implemented in rfm_scoring.cpp. Values are handled as "tie groups": runs of equal values in
// ascending order, so the rule is the same for every SQL type.
#pragma once
#include <algorithm>
#include <cstddef>
#include <numeric>
#include <vector>

namespace cdp::rfm {

constexpr int kMinBins = 1;
constexpr int kMaxBins = 100;

// Throws cdp::Error 22023 unless kMinBins <= bins <= kMaxBins.
void check_bins(int bins);

// group_sizes: number of equal values in each tie group, in ascending value order (all > 0).
// Returns the score (1..bins) of each group.
std::vector<int> score_tie_groups(const std::vector<std::size_t>& group_sizes, int bins);

// For each score 1..bins (index score-1): the index of the first (lowest) group with that score,
// or -1 when no group has it. These are the lower bounds ("breaks") of the scores.
std::vector<long> first_group_of_scores(const std::vector<int>& group_scores, int bins);

// Scores each value (input order preserved) with score_tie_groups. Less must be a strict weak order.
template <typename T, typename Less = std::less<T>>
std::vector<int> score_values(const std::vector<T>& values, int bins, Less less = Less{}) {
  std::vector<std::size_t> order(values.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return less(values[a], values[b]); });
  std::vector<std::size_t> group_sizes;
  std::vector<std::size_t> group_of(values.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    if (i == 0 || less(values[order[i - 1]], values[order[i]])) group_sizes.push_back(0);
    ++group_sizes.back();
    group_of[order[i]] = group_sizes.size() - 1;
  }
  const std::vector<int> group_scores = score_tie_groups(group_sizes, bins);
  std::vector<int> scores(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) scores[i] = group_scores[group_of[i]];
  return scores;
}

}  // namespace cdp::rfm
