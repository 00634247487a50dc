#include "writer/signing_keys.h"

#include "absl/strings/str_cat.h"

namespace mlc::writer {

SigningKeys::SigningKeys(const std::vector<ConnectionConfig>& connections) {
  for (const ConnectionConfig& c : connections) {
    std::vector<KeyEntry>& keys = keys_[c.id];
    for (size_t i = 0; i < c.freshbooks.verifiers.size(); ++i) {
      keys.push_back({absl::StrCat("config:", i), c.freshbooks.verifiers[i]});
    }
  }
}

bool SigningKeys::HasConnection(const std::string& connection_id) const {
  absl::MutexLock lock(&mu_);
  return keys_.count(connection_id) > 0;
}

std::map<std::string, std::vector<KeyEntry>> SigningKeys::Snapshot(uint64_t* version) const {
  absl::MutexLock lock(&mu_);
  if (version != nullptr) *version = version_;
  return keys_;
}

bool SigningKeys::AddKey(const std::string& connection_id, KeyEntry key) {
  absl::MutexLock lock(&mu_);
  auto it = keys_.find(connection_id);
  if (it == keys_.end()) return false;
  for (KeyEntry& k : it->second) {
    if (k.key_id == key.key_id) {
      k = std::move(key);
      ++version_;
      return true;
    }
  }
  it->second.push_back(std::move(key));
  ++version_;
  return true;
}

void SigningKeys::RecordHandshake(const std::string& connection_id, const std::string& callback_id,
                                  std::string verifier) {
  HandshakeListener listener;
  {
    absl::MutexLock lock(&mu_);
    pending_[{connection_id, callback_id}] = std::move(verifier);
    listener = listener_;
  }
  if (listener) listener(connection_id, callback_id);
}

void SigningKeys::ForgetHandshake(const std::string& connection_id,
                                  const std::string& callback_id) {
  absl::MutexLock lock(&mu_);
  pending_.erase({connection_id, callback_id});
}

void SigningKeys::SetHandshakeListener(HandshakeListener listener) {
  absl::MutexLock lock(&mu_);
  listener_ = std::move(listener);
}

std::optional<std::string> SigningKeys::PendingVerifier(const std::string& connection_id,
                                                        const std::string& callback_id) const {
  absl::MutexLock lock(&mu_);
  auto it = pending_.find({connection_id, callback_id});
  if (it == pending_.end()) return std::nullopt;
  return it->second;
}

}  // namespace mlc::writer
