// The writer's encrypted credential store (DESIGN.md §5): FreshBooks client secret,
// access and refresh tokens, webhook verifiers and the Databricks client secret,
// kept in SQLite (`<data_dir>/credentials.db`, synchronous=FULL) and encrypted at
// rest with AES-256-GCM under the master key.
//
// Format of a stored secret (versioned so the master key can rotate):
//   byte 0       format version (1)
//   bytes 1..8   key id: the first 8 bytes of SHA-256("mlc-master-key-id" || key)
//   then         nonce(12) || ciphertext || tag(16)
// The associated data is "mlc-secret/v1/" + name, so a value copied to another
// name (or another row) fails authentication instead of being used.
//
// The store also keeps non-secret connection state (account ids, OAuth `state`
// values' expiry, sync watermarks, "needs re-authorization") in plaintext in a
// second table: State* methods. Secrets and state can change together in one
// transaction (Update), which is how a rotated refresh token and its access
// token are stored atomically.
//
// The file also records the key id of the master key in use (table `meta`, set
// at first open), so opening with a master key other than the one the secrets
// were sealed with fails at Open - even before any secret exists - with
// FailedPrecondition naming the file and what to do (never the key). A stored
// value whose format version is unknown is FailedPrecondition; one that fails
// authentication is DataLoss. Every write is durable (fsync'd) when the call
// returns. Values never appear in errors or logs. The file (and its -wal/-shm)
// is mode 0600. Thread-safe: one connection, serialized by a mutex; use one
// CredentialStore per file per process.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace mlc::writer {

class Db;

class CredentialStore {
 public:
  // `master_key` is the raw 32-byte key (not base64).
  static absl::StatusOr<std::unique_ptr<CredentialStore>> Open(const std::string& path,
                                                               std::string master_key);
  ~CredentialStore();
  CredentialStore(const CredentialStore&) = delete;
  CredentialStore& operator=(const CredentialStore&) = delete;

  // One transaction's worth of changes; nullopt values delete.
  struct Change {
    std::vector<std::pair<std::string, std::optional<std::string>>> secrets;
    std::vector<std::pair<std::string, std::optional<std::string>>> state;
  };
  // Applies `change` atomically and durably, in order (a name given twice ends
  // with its last value). An empty name is InvalidArgument.
  absl::Status Update(const Change& change);

  absl::Status PutSecret(const std::string& name, std::string_view value);
  // nullopt if absent. DataLoss if the stored value fails authentication or is
  // truncated; FailedPrecondition if its format version is unknown or it was
  // sealed under another master key.
  absl::StatusOr<std::optional<std::string>> GetSecret(const std::string& name);
  absl::Status DeleteSecret(const std::string& name);
  // Names (not values) of secrets starting with `prefix`, sorted.
  absl::StatusOr<std::vector<std::string>> ListSecrets(const std::string& prefix);

  absl::Status PutState(const std::string& name, std::string_view value);
  absl::StatusOr<std::optional<std::string>> GetState(const std::string& name);
  absl::Status DeleteState(const std::string& name);
  // (name, value) pairs of state entries starting with `prefix`, sorted by name.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ListState(
      const std::string& prefix);

  // Re-encrypts every secret under `new_master_key` (raw 32 bytes) in one
  // transaction and returns how many; afterwards the store must be opened with
  // the new key. A crash midway leaves everything under the old key. Fails,
  // changing nothing, if any secret does not authenticate under the current key
  // or the new key equals the current one. Run it with the service stopped:
  // another process still holding the old key gets FailedPrecondition on its
  // next write (and on reads) instead of mixing keys.
  absl::StatusOr<int> RotateMasterKey(const std::string& new_master_key);

 private:
  CredentialStore(std::unique_ptr<Db> db, std::string master_key);

  absl::Mutex mu_;
  std::unique_ptr<Db> db_ ABSL_GUARDED_BY(mu_);
  std::string master_key_ ABSL_GUARDED_BY(mu_);
};

// The store's file name inside `writer.data_dir`.
inline constexpr char kCredentialStoreFile[] = "credentials.db";

// Decodes a config `master_key` (base64 of 32 bytes) to raw bytes. InvalidArgument
// otherwise (also when empty); the error names writer.master_key and how to make
// one (`openssl rand -base64 32`), never the value.
absl::StatusOr<std::string> DecodeMasterKey(const std::string& base64_key);

}  // namespace mlc::writer
