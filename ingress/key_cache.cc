#include "ingress/key_cache.h"

#include "common/logging.h"

namespace mlc::ingress {

KeyCache::KeyCache(WriterClient* writer, Limits limits) : writer_(writer), limits_(limits) {}

KeyCache::~KeyCache() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  if (refresher_.joinable()) refresher_.join();
}

void KeyCache::StartRefresher() {
  refresher_ = std::thread([this] { RefresherLoop(); });
}

void KeyCache::RefresherLoop() {
  bool last_ok = true;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      const absl::Duration every = absl::FromChrono(limits_.keys_refresh_interval);
      const absl::Duration wait = loaded_ ? every : std::min(every, absl::Milliseconds(200));
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || nudged_; };
      mu_.AwaitWithTimeout(absl::Condition(&wake), wait);
      if (stopping_) return;
      nudged_ = false;
    }
    absl::Status s = Refresh();
    if (!s.ok() && last_ok) {
      log::Warn("cannot refresh signing keys from the writer; keeping the last known keys",
                {{"error", s.ToString()}});
    } else if (s.ok() && !last_ok) {
      log::Info("signing keys refreshed from the writer again");
    }
    last_ok = s.ok();
  }
}

absl::Status KeyCache::RefreshIfStale() {
  {
    absl::MutexLock lock(&mu_);
    if (absl::Now() - last_fetch_ < absl::FromChrono(limits_.keys_min_refetch_interval)) {
      return loaded_ ? absl::OkStatus() : absl::UnavailableError("signing keys not loaded yet");
    }
  }
  return Refresh();
}

absl::Status KeyCache::Refresh() {
  absl::MutexLock fetch_lock(&fetch_mu_);
  {
    absl::MutexLock lock(&mu_);
    last_fetch_ = absl::Now();
  }
  auto response = writer_->ListSigningKeys(limits_.keys_fetch_deadline);
  if (!response.ok()) return response.status();
  std::map<std::string, std::vector<Key>> keys;
  for (const auto& c : response->connections()) {
    std::vector<Key>& list = keys[c.connection_id()];
    for (const auto& k : c.keys()) list.push_back({k.key_id(), k.secret()});
  }
  absl::MutexLock lock(&mu_);
  if (!loaded_ || version_ != response->version()) {
    log::Info("signing keys loaded", {{"connections", static_cast<int64_t>(keys.size())},
                                      {"version", static_cast<uint64_t>(response->version())}});
  }
  keys_ = std::move(keys);
  version_ = response->version();
  loaded_ = true;
  return absl::OkStatus();
}

void KeyCache::Nudge() {
  absl::MutexLock lock(&mu_);
  nudged_ = true;
}

bool KeyCache::loaded() const {
  absl::MutexLock lock(&mu_);
  return loaded_;
}

std::optional<std::vector<Key>> KeyCache::Lookup(const std::string& connection_id) const {
  absl::MutexLock lock(&mu_);
  auto it = keys_.find(connection_id);
  if (it == keys_.end()) return std::nullopt;
  return it->second;
}

}  // namespace mlc::ingress
