#include "common/backoff.h"

#include <algorithm>

namespace mlc {

absl::Duration BackoffCap(const BackoffPolicy& policy, int attempt) {
  absl::Duration cap = policy.initial;
  for (int i = 0; i < attempt && cap < policy.max; ++i) cap *= 2;
  return std::min(cap, policy.max);
}

absl::Duration FullJitterDelay(const BackoffPolicy& policy, int attempt, absl::BitGenRef gen,
                               absl::Duration retry_after) {
  const absl::Duration cap = BackoffCap(policy, std::max(attempt, 0));
  const int64_t cap_us = absl::ToInt64Microseconds(cap);
  const int64_t us = cap_us <= 0 ? 0 : absl::Uniform<int64_t>(absl::IntervalClosed, gen, 0, cap_us);
  return std::max(absl::Microseconds(us), retry_after);
}

}  // namespace mlc
