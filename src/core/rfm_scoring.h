// RFM quantile scoring with ties (PostgreSQL-free). The exact rule is documented in
// docs/rfm_scoring.md and implemented in rfm_scoring.cpp. Values are handled as "tie groups": runs
// of equal values in ascending order, so the rule is the same for every SQL type.
#pragma once
#include "core/error.h"
#include "core/interrupt.h"

#include <algorithm>
#include <cstddef>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

namespace cdp::rfm {

constexpr int kMinBins = 1;
constexpr int kMaxBins = 100;

// Throws cdp::Error 22023 unless kMinBins <= bins <= kMaxBins.
void check_bins(int bins);

// group_sizes: number of equal values in each tie group, in ascending value order (all > 0).
// Returns the score (1..bins) of each group.
std::vector<int> score_tie_groups(const std::vector<std::size_t>& group_sizes, int bins);

// The cut positions behind score_tie_groups: element b (0..bins) is the index of the first group
// whose score is greater than b, so score b holds groups [cuts[b-1], cuts[b]); cuts[0] = 0 and
// cuts[bins] = number of groups. Exposed so the rule can be tested and explained directly.
std::vector<std::size_t> tie_group_cuts(const std::vector<std::size_t>& group_sizes, int bins);

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

// A value to score together with the caller's identifier for it (row position, array index...).
template <typename Key>
struct Keyed {
  Key key;
  std::size_t id;
};

// Sorts entries ascending by key and returns the sizes of the runs of equal keys (the tie groups),
// so that group g is entries [sum of sizes before g, + sizes[g]). The comparison polls interrupts,
// so a huge sort can be cancelled. Less must be a strict weak order.
template <typename Key, typename Less>
std::vector<std::size_t> sort_into_tie_groups(std::vector<Keyed<Key>>& entries, Less less, Interrupts& interrupts) {
  std::sort(entries.begin(), entries.end(), [&](const Keyed<Key>& a, const Keyed<Key>& b) {
    interrupts.tick();
    return less(a.key, b.key);
  });
  std::vector<std::size_t> group_sizes;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (i == 0 || less(entries[i - 1].key, entries[i].key)) group_sizes.push_back(0);
    ++group_sizes.back();
  }
  return group_sizes;
}

// Validates thresholds for bucket_score: count in 1..kMaxBins, at least one present, present
// thresholds non-decreasing. Throws cdp::Error 22023 otherwise. present[i] false = SQL NULL.
template <typename T, typename Less>
void check_breaks(const T* breaks, const bool* present, int count, Less less) {
  if (count < kMinBins || count > kMaxBins)
    throw Error(sqlstate::kInvalidParameterValue, "breaks must have between 1 and 100 elements",
                "The array has " + std::to_string(count) + " elements.");
  int previous = -1;
  for (int i = 0; i < count; ++i) {
    if (!present[i]) continue;
    if (previous >= 0 && less(breaks[i], breaks[previous]))
      throw Error(sqlstate::kInvalidParameterValue, "breaks must be non-decreasing",
                  "Element " + std::to_string(i + 1) + " is smaller than element " + std::to_string(previous + 1) + ".",
                  "NULL elements are skipped; every other element must be at least the one before it.");
    previous = i;
  }
  if (previous < 0)
    throw Error(sqlstate::kInvalidParameterValue, "breaks must contain at least one non-NULL element");
}

// The score of value under thresholds already checked by check_breaks: the largest b (1-based)
// whose threshold is present and <= value; a value below every threshold gets the lowest score
// that has a threshold.
template <typename T, typename Less>
int bucket_score(const T& value, const T* breaks, const bool* present, int count, Less less) {
  int lowest = 0;
  int best = 0;
  for (int i = 0; i < count; ++i) {
    if (!present[i]) continue;
    if (lowest == 0) lowest = i + 1;
    if (less(value, breaks[i])) break;  // thresholds are non-decreasing: none further can be <= value
    best = i + 1;
  }
  return best != 0 ? best : lowest;
}

}  // namespace cdp::rfm
