// ingress's copy of the writer's connections and signing keys, held in memory only
// (never logged). Refreshed from the writer in the background and, rate-limited, on
// demand when a delivery names an unknown connection or fails verification - so a
// key registered a moment ago works without a restart, and a flood of bad requests
// cannot turn into a flood of writer calls. Thread-safe.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "ingress/limits.h"
#include "ingress/writer_client.h"

namespace mlc::ingress {

struct Key {
  std::string key_id;
  std::string secret;
};

class KeyCache {
 public:
  KeyCache(WriterClient* writer, Limits limits);
  ~KeyCache();  // stops the refresher

  void StartRefresher();

  // Fetches now unless a fetch happened less than keys_min_refetch_interval ago.
  // Returns the outcome of the fetch (OK when skipped and the cache is loaded).
  absl::Status RefreshIfStale();
  // Fetches now, unconditionally.
  absl::Status Refresh();

  // Wakes the refresher now (after a failed writer call): its fetch waits for the
  // channel, which is what drives gRPC to reconnect to a restarted writer.
  void Nudge();

  bool loaded() const;
  // nullopt: connection unknown (or never loaded).
  std::optional<std::vector<Key>> Lookup(const std::string& connection_id) const;

 private:
  void RefresherLoop();

  WriterClient* writer_;
  Limits limits_;
  mutable absl::Mutex mu_;
  bool loaded_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, std::vector<Key>> keys_ ABSL_GUARDED_BY(mu_);
  absl::Time last_fetch_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Mutex fetch_mu_;  // one fetch at a time
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool nudged_ ABSL_GUARDED_BY(mu_) = false;
  std::thread refresher_;
};

}  // namespace mlc::ingress
