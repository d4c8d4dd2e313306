// RFM quantile scoring with ties; the rule is spelled out in docs/rfm_scoring.md.
#include "core/rfm_scoring.h"

#include "core/error.h"

#include <string>

#include "core/no_postgres.h"

namespace cdp::rfm {

void check_bins(int bins) {
  if (bins < kMinBins || bins > kMaxBins)
    throw Error(sqlstate::kInvalidParameterValue, "bins must be between 1 and 100",
                "bins is " + std::to_string(bins) + ".");
}

namespace {

// cumulative[j] = number of values in groups 0..j-1 (c_j in the documentation).
std::vector<std::size_t> cumulative_counts(const std::vector<std::size_t>& group_sizes) {
  std::vector<std::size_t> cumulative(group_sizes.size() + 1, 0);
  for (std::size_t j = 0; j < group_sizes.size(); ++j) {
    if (group_sizes[j] == 0)
      throw Error(sqlstate::kInternalError, "tie group " + std::to_string(j) + " is empty");
    cumulative[j + 1] = cumulative[j] + group_sizes[j];
  }
  return cumulative;
}

// Enough distinct values for every score (groups >= bins), cuts placed left to right. Each cut aims
// at an equal share of the values not yet scored: t_b = p + (n - p) / k with p = values below the
// previous cut and k = bins - b + 1 scores left, so a large tie group does not starve the scores
// after it. The cut must leave at least one group for this score and for every score above it.
// Distances are compared scaled by k (|c_j*k - (p*(k-1) + n)|): exact integer arithmetic.
// |c_j - t_b| falls and then rises with j (c is strictly increasing), so walking forward from the
// lowest allowed j finds the nearest (the lower on a tie); walks never go back: O(groups + bins).
std::vector<std::size_t> greedy_cuts(const std::vector<std::size_t>& cumulative, int bins) {
  const std::size_t groups = cumulative.size() - 1;
  const unsigned __int128 n = cumulative[groups];
  std::vector<std::size_t> cuts(static_cast<std::size_t>(bins) + 1, 0);
  cuts[static_cast<std::size_t>(bins)] = groups;
  for (int b = 1; b < bins; ++b) {
    const std::size_t previous = cuts[static_cast<std::size_t>(b) - 1];
    const unsigned __int128 k = static_cast<unsigned>(bins - b + 1);
    const unsigned __int128 want = static_cast<unsigned __int128>(cumulative[previous]) * (k - 1) + n;
    auto distance = [&](std::size_t j) {
      const unsigned __int128 have = static_cast<unsigned __int128>(cumulative[j]) * k;
      return have > want ? have - want : want - have;
    };
    const std::size_t high = groups - static_cast<std::size_t>(bins - b);
    std::size_t cut = previous + 1;
    while (cut < high && distance(cut + 1) < distance(cut)) ++cut;
    cuts[static_cast<std::size_t>(b)] = cut;
  }
  return cuts;
}

// Spread of a cut: the sum of squared score sizes (smaller = more balanced).
long double spread(const std::vector<std::size_t>& cumulative, const std::vector<std::size_t>& cuts) {
  long double sum = 0;
  for (std::size_t b = 1; b < cuts.size(); ++b) {
    const long double size = static_cast<long double>(cumulative[cuts[b]] - cumulative[cuts[b - 1]]);
    sum += size * size;
  }
  return sum;
}

}  // namespace

std::vector<std::size_t> tie_group_cuts(const std::vector<std::size_t>& group_sizes, int bins) {
  check_bins(bins);
  const std::size_t groups = group_sizes.size();
  const std::vector<std::size_t> cumulative = cumulative_counts(group_sizes);
  if (groups >= static_cast<std::size_t>(bins)) {
    // The left-to-right pass cannot see a large tie group coming near the top; the same pass run
    // from the top down (on the mirrored groups) cannot see one near the bottom. Keep the more
    // balanced of the two, the left-to-right one when they are equally balanced.
    std::vector<std::size_t> cuts = greedy_cuts(cumulative, bins);
    const std::vector<std::size_t> mirrored_sizes(group_sizes.rbegin(), group_sizes.rend());
    const std::vector<std::size_t> mirrored = greedy_cuts(cumulative_counts(mirrored_sizes), bins);
    std::vector<std::size_t> downward(mirrored.size());
    for (std::size_t b = 0; b < mirrored.size(); ++b) downward[b] = groups - mirrored[mirrored.size() - 1 - b];
    if (spread(cumulative, downward) < spread(cumulative, cuts)) cuts = downward;
    return cuts;
  }
  // Fewer distinct values than scores: some scores must stay empty. Cut at the group edge nearest
  // to the fixed quantile position t_b = b*n/bins, so each value keeps the score of its position
  // (a constant column scores in the middle, two equal halves score 2 and 4 of 5). Distances are
  // compared scaled by bins; the nearest j (the lower on a tie) never moves back as b grows.
  const unsigned __int128 n = cumulative[groups];
  const unsigned __int128 b_count = static_cast<unsigned>(bins);
  std::vector<std::size_t> cuts(static_cast<std::size_t>(bins) + 1, 0);
  cuts[static_cast<std::size_t>(bins)] = groups;
  std::size_t nearest = 0;
  for (int b = 1; b < bins; ++b) {
    const unsigned __int128 want = n * static_cast<unsigned>(b);
    auto distance = [&](std::size_t j) {
      const unsigned __int128 have = static_cast<unsigned __int128>(cumulative[j]) * b_count;
      return have > want ? have - want : want - have;
    };
    while (nearest < groups && distance(nearest + 1) < distance(nearest)) ++nearest;
    cuts[static_cast<std::size_t>(b)] = nearest;
  }
  return cuts;
}

std::vector<int> score_tie_groups(const std::vector<std::size_t>& group_sizes, int bins) {
  const std::vector<std::size_t> cuts = tie_group_cuts(group_sizes, bins);
  std::vector<int> scores(group_sizes.size(), 0);
  for (int b = 1; b <= bins; ++b)
    for (std::size_t j = cuts[static_cast<std::size_t>(b) - 1]; j < cuts[static_cast<std::size_t>(b)]; ++j)
      scores[j] = b;
  return scores;
}

std::vector<long> first_group_of_scores(const std::vector<int>& group_scores, int bins) {
  check_bins(bins);
  std::vector<long> first(static_cast<std::size_t>(bins), -1);
  int previous = 0;
  for (std::size_t g = 0; g < group_scores.size(); ++g) {
    const int score = group_scores[g];
    if (score < 1 || score > bins || score < previous)
      throw Error(sqlstate::kInternalError, "group scores must be ascending within 1.." + std::to_string(bins));
    if (first[static_cast<std::size_t>(score) - 1] < 0) first[static_cast<std::size_t>(score) - 1] = static_cast<long>(g);
    previous = score;
  }
  return first;
}

}  // namespace cdp::rfm
