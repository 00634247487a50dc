// The writer's view of which connections exist and which keys sign their webhooks.
// Static verifiers come from config; keys learned at webhook registration are added
// with AddKey once FreshBooks has accepted them. ingress polls Snapshot() (through
// Ingest.ListSigningKeys), so a new key is honoured without a restart.
//
// Verification handshakes arrive unauthenticated; their verifiers are held here,
// in memory only, until registration confirms them with FreshBooks. They never
// reach the journal or logs. Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/config.h"

namespace mlc::writer {

struct KeyEntry {
  std::string key_id;  // non-secret name, e.g. "config:0", "callback:123"
  std::string secret;
};

class SigningKeys {
 public:
  explicit SigningKeys(const std::vector<ConnectionConfig>& connections);

  bool HasConnection(const std::string& connection_id) const;
  // All connections and their keys, with a version that changes on every change.
  std::map<std::string, std::vector<KeyEntry>> Snapshot(uint64_t* version) const;
  // Adds (or replaces, by key_id) a key of a known connection.
  bool AddKey(const std::string& connection_id, KeyEntry key);

  void RecordHandshake(const std::string& connection_id, const std::string& callback_id,
                       std::string verifier);
  std::optional<std::string> PendingVerifier(const std::string& connection_id,
                                             const std::string& callback_id) const;
  // Drops a pending verifier (after FreshBooks accepted it and it became a key).
  void ForgetHandshake(const std::string& connection_id, const std::string& callback_id);
  // Called (outside the lock) after every RecordHandshake; set once at startup.
  using HandshakeListener =
      std::function<void(const std::string& connection_id, const std::string& callback_id)>;
  void SetHandshakeListener(HandshakeListener listener);

 private:
  mutable absl::Mutex mu_;
  std::map<std::string, std::vector<KeyEntry>> keys_ ABSL_GUARDED_BY(mu_);
  std::map<std::pair<std::string, std::string>, std::string> pending_ ABSL_GUARDED_BY(mu_);
  uint64_t version_ ABSL_GUARDED_BY(mu_) = 1;
  HandshakeListener listener_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mlc::writer
