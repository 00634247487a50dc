// Exponential backoff with full jitter (the AWS architecture blog's "Full Jitter"):
// the n-th retry waits a uniformly random time in [0, min(max, initial * 2^n)],
// which spreads retries of many clients instead of synchronising them. A
// server-given Retry-After is a floor. Thread-safe (BitGen per call site).
#pragma once

#include "absl/random/bit_gen_ref.h"
#include "absl/random/random.h"
#include "absl/time/time.h"

namespace mlc {

struct BackoffPolicy {
  absl::Duration initial = absl::Seconds(1);
  absl::Duration max = absl::Minutes(5);
};

// The cap for attempt `attempt` (0-based): min(max, initial * 2^attempt).
absl::Duration BackoffCap(const BackoffPolicy& policy, int attempt);

// A random delay in [0, cap], at least `retry_after`.
absl::Duration FullJitterDelay(const BackoffPolicy& policy, int attempt, absl::BitGenRef gen,
                               absl::Duration retry_after = absl::ZeroDuration());

}  // namespace mlc
