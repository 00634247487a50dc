#include "writer/credential_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/status_macros.h"
#include "writer/sqlite_db.h"

namespace mlc::writer {
namespace {

constexpr size_t kMasterKeyBytes = 32;
constexpr char kFormatVersion = 1;
constexpr size_t kKeyIdBytes = 8;
constexpr size_t kHeaderBytes = 1 + kKeyIdBytes;
constexpr size_t kGcmOverheadBytes = 12 + 16;  // nonce + tag
constexpr int kSchemaVersion = 1;

constexpr char kMasterKeyHowTo[] =
    "writer.master_key must be base64 of 32 random bytes (make one with: openssl rand -base64 32)";

// Secrets hold sealed blobs (see the header for the format); state is plaintext
// by design. `meta` holds the key id of the master key the secrets are sealed
// with, so a wrong key is caught at Open.
constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS secrets (
  name  TEXT PRIMARY KEY,
  value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS state (
  name  TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
)sql";

// Not secret: 8 bytes of a domain-separated hash identify the key without
// revealing anything useful about it.
std::string KeyId(std::string_view master_key) {
  return Sha256(absl::StrCat("mlc-master-key-id", std::string(master_key))).substr(0, kKeyIdBytes);
}

std::string Aad(const std::string& name) { return absl::StrCat("mlc-secret/v1/", name); }

absl::StatusOr<std::string> SealSecret(const std::string& master_key, const std::string& name,
                                       std::string_view value) {
  MLC_ASSIGN_OR_RETURN(std::string sealed, Aes256GcmSeal(master_key, value, Aad(name)));
  std::string out;
  out.reserve(kHeaderBytes + sealed.size());
  out.push_back(kFormatVersion);
  out.append(KeyId(master_key));
  out.append(sealed);
  return out;
}

absl::StatusOr<std::string> OpenSecret(const std::string& path, const std::string& master_key,
                                       const std::string& name, std::string_view blob) {
  const std::string what = absl::StrCat("credential store ", path, ": secret \"", name, "\"");
  if (blob.empty()) return absl::DataLossError(absl::StrCat(what, " is empty; store it again"));
  if (blob[0] != kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, " has format version ", static_cast<int>(static_cast<unsigned char>(blob[0])),
        " but this mlc-writer reads only version ", static_cast<int>(kFormatVersion),
        " (written by a newer release? otherwise the file is damaged)"));
  }
  if (blob.size() < kHeaderBytes + kGcmOverheadBytes) {
    return absl::DataLossError(absl::StrCat(what, " is truncated; store it again"));
  }
  if (!ConstantTimeEquals(blob.substr(1, kKeyIdBytes), KeyId(master_key))) {
    return absl::FailedPreconditionError(absl::StrCat(
        what,
        " is encrypted with a different master key than the one in use (was the key rotated "
        "while this process was running? restart it with the current writer.master_key)"));
  }
  absl::StatusOr<std::string> value =
      Aes256GcmOpen(master_key, blob.substr(kHeaderBytes), Aad(name));
  if (!value.ok()) {
    if (value.status().code() != absl::StatusCode::kDataLoss) return value.status();
    return absl::DataLossError(
        absl::StrCat(what,
                     " failed authentication (modified on disk, or copied from another "
                     "name); store it again"));
  }
  return value;
}

absl::Status WrongKeyError(const std::string& path) {
  return absl::FailedPreconditionError(absl::StrCat(
      "credential store ", path,
      ": writer.master_key is not the key this store's secrets are encrypted with; set "
      "writer.master_key to that key (after `mlc-writer rotate-master-key`, the new one). If the "
      "key is lost, move the file aside and enter the credentials again (re-authorize each "
      "connection)"));
}

absl::Status ErrnoError(const std::string& path, const char* what, int err) {
  return absl::InternalError(
      absl::StrCat("credential store ", path, ": cannot ", what, ": ", std::strerror(err)));
}

// Creates `path` if needed and makes it (and any leftover -wal/-shm) 0600 before
// SQLite opens it; SQLite gives the -wal and -shm files it creates the database
// file's mode.
absl::Status MakePrivateFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoError(path, "create", errno);
  const int rc = ::fchmod(fd, 0600);
  const int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoError(path, "chmod 0600", err);
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::string side = path + suffix;
    if (::chmod(side.c_str(), 0600) != 0 && errno != ENOENT) {
      return ErrnoError(side, "chmod 0600", errno);
    }
  }
  return absl::OkStatus();
}

// Runs `body` between BEGIN IMMEDIATE and COMMIT; rolls back if anything fails.
absl::Status InTransaction(Db& db, const std::function<absl::Status()>& body) {
  MLC_RETURN_IF_ERROR(db.Exec("BEGIN IMMEDIATE"));
  absl::Status s = body();
  if (s.ok()) s = db.Exec("COMMIT");
  if (!s.ok()) {
    // Fails only when there is no transaction left to roll back.
    db.Exec("ROLLBACK").IgnoreError();
  }
  return s;
}

absl::StatusOr<std::optional<std::string>> ReadMeta(Db& db, std::string_view key) {
  MLC_ASSIGN_OR_RETURN(Stmt st, db.Prepare("SELECT value FROM meta WHERE key = ?1"));
  st.BindText(1, key);
  MLC_ASSIGN_OR_RETURN(const bool row, st.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(st.ColumnText(0));
}

absl::Status WriteMeta(Db& db, std::string_view key, std::string_view value) {
  MLC_ASSIGN_OR_RETURN(Stmt st,
                       db.Prepare("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)"));
  st.BindText(1, key);
  st.BindText(2, value);
  return st.Run();
}

// Inside a transaction: the file still belongs to `master_key`. Catches a
// rotation by another process since this one opened the store.
absl::Status CheckKeyStillCurrent(Db& db, const std::string& master_key) {
  MLC_ASSIGN_OR_RETURN(std::optional<std::string> stored, ReadMeta(db, "key_id"));
  if (stored.has_value() && *stored == HexEncode(KeyId(master_key))) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "credential store ", db.path(),
      ": the master key was rotated by another process; restart with the new writer.master_key"));
}

absl::Status CheckName(const char* kind, const std::string& name) {
  if (!name.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("credential store: ", kind, " name is empty"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<CredentialStore>> CredentialStore::Open(const std::string& path,
                                                                       std::string master_key) {
  if (master_key.size() != kMasterKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("credential store ", path, ": master key is ",
                                                   master_key.size(), " bytes, must be 32"));
  }
  MLC_RETURN_IF_ERROR(MakePrivateFile(path));
  MLC_ASSIGN_OR_RETURN(std::unique_ptr<Db> db, Db::Open(path, Durability::kFull));
  // Zero deleted content, so replaced or rotated ciphertexts do not linger in free pages.
  MLC_RETURN_IF_ERROR(db->Exec("PRAGMA secure_delete=ON"));
  MLC_RETURN_IF_ERROR(db->Exec(kSchema));
  const std::string key_id = HexEncode(KeyId(master_key));
  Db& d = *db;
  const absl::Status opened = InTransaction(d, [&]() -> absl::Status {
    MLC_ASSIGN_OR_RETURN(Stmt version_stmt, d.Prepare("PRAGMA user_version"));
    MLC_ASSIGN_OR_RETURN(const bool has_version, version_stmt.Step());
    const int64_t version = has_version ? version_stmt.ColumnInt(0) : 0;
    if (version > kSchemaVersion) {
      return absl::FailedPreconditionError(
          absl::StrCat("credential store ", path, ": schema version ", version,
                       " is newer than this mlc-writer understands (", kSchemaVersion,
                       "); run the release that wrote it"));
    }
    if (version < kSchemaVersion) {
      MLC_RETURN_IF_ERROR(d.Exec(absl::StrCat("PRAGMA user_version=", kSchemaVersion)));
    }
    MLC_ASSIGN_OR_RETURN(std::optional<std::string> stored, ReadMeta(d, "key_id"));
    if (!stored.has_value()) return WriteMeta(d, "key_id", key_id);
    if (!ConstantTimeEquals(*stored, key_id)) return WrongKeyError(path);
    return absl::OkStatus();
  });
  if (!opened.ok()) return opened;
  return std::unique_ptr<CredentialStore>(
      new CredentialStore(std::move(db), std::move(master_key)));
}

CredentialStore::CredentialStore(std::unique_ptr<Db> db, std::string master_key)
    : db_(std::move(db)), master_key_(std::move(master_key)) {}

CredentialStore::~CredentialStore() = default;

absl::Status CredentialStore::Update(const Change& change) {
  for (const auto& entry : change.secrets) {
    MLC_RETURN_IF_ERROR(CheckName("secret", entry.first));
  }
  for (const auto& entry : change.state) {
    MLC_RETURN_IF_ERROR(CheckName("state", entry.first));
  }
  if (change.secrets.empty() && change.state.empty()) return absl::OkStatus();

  absl::MutexLock lock(&mu_);
  // Seal before the transaction starts: nothing but the database can fail in it.
  std::vector<std::optional<std::string>> sealed;
  sealed.reserve(change.secrets.size());
  for (const auto& [name, value] : change.secrets) {
    if (!value.has_value()) {
      sealed.emplace_back();
      continue;
    }
    MLC_ASSIGN_OR_RETURN(std::string blob, SealSecret(master_key_, name, *value));
    sealed.emplace_back(std::move(blob));
  }
  Db& db = *db_;
  const std::string& key = master_key_;
  return InTransaction(db, [&]() -> absl::Status {
    MLC_RETURN_IF_ERROR(CheckKeyStillCurrent(db, key));
    MLC_ASSIGN_OR_RETURN(
        Stmt put_secret,
        db.Prepare("INSERT OR REPLACE INTO secrets (name, value) VALUES (?1, ?2)"));
    MLC_ASSIGN_OR_RETURN(Stmt delete_secret, db.Prepare("DELETE FROM secrets WHERE name = ?1"));
    MLC_ASSIGN_OR_RETURN(Stmt put_state,
                         db.Prepare("INSERT OR REPLACE INTO state (name, value) VALUES (?1, ?2)"));
    MLC_ASSIGN_OR_RETURN(Stmt delete_state, db.Prepare("DELETE FROM state WHERE name = ?1"));
    for (size_t i = 0; i < change.secrets.size(); ++i) {
      const std::string& name = change.secrets[i].first;
      if (sealed[i].has_value()) {
        put_secret.BindText(1, name);
        put_secret.BindBlob(2, *sealed[i]);
        MLC_RETURN_IF_ERROR(put_secret.Run());
      } else {
        delete_secret.BindText(1, name);
        MLC_RETURN_IF_ERROR(delete_secret.Run());
      }
    }
    for (const auto& [name, value] : change.state) {
      if (value.has_value()) {
        put_state.BindText(1, name);
        put_state.BindText(2, *value);
        MLC_RETURN_IF_ERROR(put_state.Run());
      } else {
        delete_state.BindText(1, name);
        MLC_RETURN_IF_ERROR(delete_state.Run());
      }
    }
    return absl::OkStatus();
  });
}

absl::Status CredentialStore::PutSecret(const std::string& name, std::string_view value) {
  Change change;
  change.secrets.emplace_back(name, std::string(value));
  return Update(change);
}

absl::StatusOr<std::optional<std::string>> CredentialStore::GetSecret(const std::string& name) {
  absl::MutexLock lock(&mu_);
  MLC_ASSIGN_OR_RETURN(Stmt st, db_->Prepare("SELECT value FROM secrets WHERE name = ?1"));
  st.BindText(1, name);
  MLC_ASSIGN_OR_RETURN(const bool row, st.Step());
  if (!row) return std::optional<std::string>();
  // ColumnText returns the column's bytes, BLOB or not.
  MLC_ASSIGN_OR_RETURN(std::string value,
                       OpenSecret(db_->path(), master_key_, name, st.ColumnText(0)));
  return std::optional<std::string>(std::move(value));
}

absl::Status CredentialStore::DeleteSecret(const std::string& name) {
  Change change;
  change.secrets.emplace_back(name, std::nullopt);
  return Update(change);
}

absl::StatusOr<std::vector<std::string>> CredentialStore::ListSecrets(const std::string& prefix) {
  absl::MutexLock lock(&mu_);
  // Names sort bytewise (BINARY collation), so those with `prefix` are one run
  // starting at `prefix`.
  MLC_ASSIGN_OR_RETURN(Stmt st,
                       db_->Prepare("SELECT name FROM secrets WHERE name >= ?1 ORDER BY name"));
  st.BindText(1, prefix);
  std::vector<std::string> names;
  while (true) {
    MLC_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) break;
    std::string name = st.ColumnText(0);
    if (!absl::StartsWith(name, prefix)) break;
    names.push_back(std::move(name));
  }
  return names;
}

absl::Status CredentialStore::PutState(const std::string& name, std::string_view value) {
  Change change;
  change.state.emplace_back(name, std::string(value));
  return Update(change);
}

absl::StatusOr<std::optional<std::string>> CredentialStore::GetState(const std::string& name) {
  absl::MutexLock lock(&mu_);
  MLC_ASSIGN_OR_RETURN(Stmt st, db_->Prepare("SELECT value FROM state WHERE name = ?1"));
  st.BindText(1, name);
  MLC_ASSIGN_OR_RETURN(const bool row, st.Step());
  if (!row) return std::optional<std::string>();
  return std::optional<std::string>(st.ColumnText(0));
}

absl::Status CredentialStore::DeleteState(const std::string& name) {
  Change change;
  change.state.emplace_back(name, std::nullopt);
  return Update(change);
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> CredentialStore::ListState(
    const std::string& prefix) {
  absl::MutexLock lock(&mu_);
  MLC_ASSIGN_OR_RETURN(
      Stmt st, db_->Prepare("SELECT name, value FROM state WHERE name >= ?1 ORDER BY name"));
  st.BindText(1, prefix);
  std::vector<std::pair<std::string, std::string>> entries;
  while (true) {
    MLC_ASSIGN_OR_RETURN(const bool row, st.Step());
    if (!row) break;
    std::string name = st.ColumnText(0);
    if (!absl::StartsWith(name, prefix)) break;
    entries.emplace_back(std::move(name), st.ColumnText(1));
  }
  return entries;
}

absl::StatusOr<int> CredentialStore::RotateMasterKey(const std::string& new_master_key) {
  if (new_master_key.size() != kMasterKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("credential store: new master key is ",
                                                   new_master_key.size(), " bytes, must be 32"));
  }
  absl::MutexLock lock(&mu_);
  Db& db = *db_;
  if (ConstantTimeEquals(new_master_key, master_key_)) {
    return absl::InvalidArgumentError(
        absl::StrCat("credential store ", db.path(),
                     ": the new master key is the same as the current one; nothing to rotate"));
  }
  const std::string& old_key = master_key_;
  int count = 0;
  const absl::Status rotated = InTransaction(db, [&]() -> absl::Status {
    MLC_RETURN_IF_ERROR(CheckKeyStillCurrent(db, old_key));
    std::vector<std::pair<std::string, std::string>> rows;
    {
      MLC_ASSIGN_OR_RETURN(Stmt select, db.Prepare("SELECT name, value FROM secrets"));
      while (true) {
        MLC_ASSIGN_OR_RETURN(const bool row, select.Step());
        if (!row) break;
        rows.emplace_back(select.ColumnText(0), select.ColumnText(1));
      }
    }
    MLC_ASSIGN_OR_RETURN(Stmt update, db.Prepare("UPDATE secrets SET value = ?2 WHERE name = ?1"));
    for (const auto& [name, blob] : rows) {
      absl::StatusOr<std::string> value = OpenSecret(db.path(), old_key, name, blob);
      if (!value.ok()) {
        return absl::Status(value.status().code(),
                            absl::StrCat(value.status().message(),
                                         "; the master key was not rotated (delete that secret "
                                         "and re-enter it after rotating)"));
      }
      MLC_ASSIGN_OR_RETURN(std::string resealed, SealSecret(new_master_key, name, *value));
      update.BindText(1, name);
      update.BindBlob(2, resealed);
      MLC_RETURN_IF_ERROR(update.Run());
    }
    count = static_cast<int>(rows.size());
    return WriteMeta(db, "key_id", HexEncode(KeyId(new_master_key)));
  });
  if (!rotated.ok()) return rotated;
  master_key_ = new_master_key;
  // Best effort: moves the new pages into the database file and empties the WAL,
  // so old-key ciphertexts do not stay behind in it.
  db.Exec("PRAGMA wal_checkpoint(TRUNCATE)").IgnoreError();
  return count;
}

absl::StatusOr<std::string> DecodeMasterKey(const std::string& base64_key) {
  if (base64_key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("writer.master_key is not set; ", kMasterKeyHowTo));
  }
  absl::StatusOr<std::string> key = Base64Decode(base64_key);
  if (!key.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("writer.master_key is not valid base64; ", kMasterKeyHowTo));
  }
  if (key->size() != kMasterKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("writer.master_key decodes to ", key->size(), " bytes; ", kMasterKeyHowTo));
  }
  return key;
}

}  // namespace mlc::writer
