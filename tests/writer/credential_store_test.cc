// Tests of the encrypted credential store (DESIGN.md §5): secrets round-trip and
// are never on disk in plaintext, each value is bound to its name, a wrong master
// key is refused at open with a message that names the fix and no key, Update is
// all-or-nothing, and rotating the master key re-encrypts everything at once.
#include "writer/credential_store.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_util.h"

namespace mlc::writer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;

constexpr char kHowToMakeAKey[] =
    "writer.master_key must be base64 of 32 random bytes (make one with: openssl rand -base64 32)";

// Every form a key could leak in: raw, base64 and hex.
void ExpectNoKeyMaterial(const std::string& text, const std::string& key) {
  EXPECT_THAT(text, Not(HasSubstr(key)));
  EXPECT_THAT(text, Not(HasSubstr(Base64Encode(key))));
  EXPECT_THAT(text, Not(HasSubstr(HexEncode(key))));
  EXPECT_THAT(text, Not(HasSubstr(HexEncode(key).substr(0, 16))));
}

// Direct access to the file through a connection of its own, as an attacker with
// the disk (or a confused operator with the sqlite3 shell) would have.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  void Exec(const std::string& sql) {
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK)
        << sql << ": " << (err != nullptr ? err : "");
    sqlite3_free(err);
  }

  std::optional<std::string> GetBlob(const std::string& name) {
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(
        sqlite3_prepare_v2(db_, "SELECT value FROM secrets WHERE name = ?1", -1, &st, nullptr),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, name.data(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
    std::optional<std::string> out;
    if (sqlite3_step(st) == SQLITE_ROW) {
      const auto* p = static_cast<const char*>(sqlite3_column_blob(st, 0));
      out = std::string(p == nullptr ? "" : p, static_cast<size_t>(sqlite3_column_bytes(st, 0)));
    }
    sqlite3_finalize(st);
    return out;
  }

  void PutBlob(const std::string& name, const std::string& blob) {
    sqlite3_stmt* st = nullptr;
    EXPECT_EQ(
        sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO secrets (name, value) VALUES (?1, ?2)", -1,
                           &st, nullptr),
        SQLITE_OK);
    sqlite3_bind_text(st, 1, name.data(), static_cast<int>(name.size()), SQLITE_TRANSIENT);
    sqlite3_bind_blob(st, 2, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
    EXPECT_EQ(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
  }

 private:
  sqlite3* db_ = nullptr;
};

class CredentialStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = MustOpen(key_); }

  std::unique_ptr<CredentialStore> MustOpen(const std::string& key) {
    auto store = CredentialStore::Open(path_, key);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? std::move(*store) : nullptr;
  }

  void Reopen(const std::string& key) {
    store_.reset();
    store_ = MustOpen(key);
    ASSERT_NE(store_, nullptr);
  }

  std::optional<std::string> MustGetSecret(const std::string& name) {
    auto value = store_->GetSecret(name);
    EXPECT_TRUE(value.ok()) << value.status();
    return value.ok() ? *value : std::nullopt;
  }

  std::optional<std::string> MustGetState(const std::string& name) {
    auto value = store_->GetState(name);
    EXPECT_TRUE(value.ok()) << value.status();
    return value.ok() ? *value : std::nullopt;
  }

  // The database and its WAL and shared-memory files, concatenated.
  std::string RawBytesOnDisk() const {
    return testing::ReadFile(path_) + testing::ReadFile(path_ + "-wal") +
           testing::ReadFile(path_ + "-shm");
  }

  testing::TempDir dir_;
  const std::string path_ = dir_.File("credentials.db");
  const std::string key_ = RandomBytes(32);
  std::unique_ptr<CredentialStore> store_;
};

TEST_F(CredentialStoreTest, PutGetDeleteSecrets) {
  EXPECT_EQ(MustGetSecret("fb/acme/refresh_token"), std::nullopt);
  ASSERT_TRUE(store_->PutSecret("fb/acme/refresh_token", "refresh-1").ok());
  EXPECT_EQ(MustGetSecret("fb/acme/refresh_token"), "refresh-1");

  ASSERT_TRUE(store_->PutSecret("fb/acme/refresh_token", "refresh-2").ok());
  EXPECT_EQ(MustGetSecret("fb/acme/refresh_token"), "refresh-2");

  ASSERT_TRUE(store_->DeleteSecret("fb/acme/refresh_token").ok());
  EXPECT_EQ(MustGetSecret("fb/acme/refresh_token"), std::nullopt);
  // Deleting what is not there is not an error.
  EXPECT_TRUE(store_->DeleteSecret("fb/acme/refresh_token").ok());
}

TEST_F(CredentialStoreTest, ValuesAreBinarySafeAndMayBeEmpty) {
  const std::string binary("\0\x01\xff secret\0", 10);
  ASSERT_TRUE(store_->PutSecret("binary", binary).ok());
  ASSERT_TRUE(store_->PutSecret("empty", "").ok());
  ASSERT_TRUE(store_->PutSecret("long", std::string(100000, 'z')).ok());
  EXPECT_EQ(MustGetSecret("binary"), binary);
  EXPECT_EQ(MustGetSecret("empty"), "");
  EXPECT_EQ(MustGetSecret("long"), std::string(100000, 'z'));
}

TEST_F(CredentialStoreTest, EmptyNamesAreRejected) {
  EXPECT_EQ(store_->PutSecret("", "x").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->PutState("", "x").code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CredentialStoreTest, ListSecretsReturnsSortedNamesWithThePrefix) {
  for (const char* name : {"fb/acme/refresh", "fb/acme/access", "fb/acmecorp/access",
                           "dbx/acme/client_secret", "fb/acme/verifier/2"}) {
    ASSERT_TRUE(store_->PutSecret(name, "v").ok());
  }
  auto acme = store_->ListSecrets("fb/acme/");
  ASSERT_TRUE(acme.ok()) << acme.status();
  EXPECT_THAT(*acme, ElementsAre("fb/acme/access", "fb/acme/refresh", "fb/acme/verifier/2"));

  auto all = store_->ListSecrets("");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(*all, ElementsAre("dbx/acme/client_secret", "fb/acme/access", "fb/acme/refresh",
                                "fb/acme/verifier/2", "fb/acmecorp/access"));

  auto none = store_->ListSecrets("zz");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(*none, IsEmpty());
}

TEST_F(CredentialStoreTest, StatePutGetDeleteList) {
  EXPECT_EQ(MustGetState("acme/account_id"), std::nullopt);
  ASSERT_TRUE(store_->PutState("acme/account_id", "6BApk").ok());
  ASSERT_TRUE(store_->PutState("acme/needs_reauth", "false").ok());
  ASSERT_TRUE(store_->PutState("other/account_id", "9ZZ").ok());
  EXPECT_EQ(MustGetState("acme/account_id"), "6BApk");

  auto acme = store_->ListState("acme/");
  ASSERT_TRUE(acme.ok()) << acme.status();
  EXPECT_THAT(*acme,
              ElementsAre(Pair("acme/account_id", "6BApk"), Pair("acme/needs_reauth", "false")));

  ASSERT_TRUE(store_->DeleteState("acme/account_id").ok());
  EXPECT_EQ(MustGetState("acme/account_id"), std::nullopt);
  auto all = store_->ListState("");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(*all,
              ElementsAre(Pair("acme/needs_reauth", "false"), Pair("other/account_id", "9ZZ")));
}

TEST_F(CredentialStoreTest, SecretsAndStateAreSeparateNamespaces) {
  ASSERT_TRUE(store_->PutSecret("x", "secret").ok());
  ASSERT_TRUE(store_->PutState("x", "state").ok());
  EXPECT_EQ(MustGetSecret("x"), "secret");
  EXPECT_EQ(MustGetState("x"), "state");
}

TEST_F(CredentialStoreTest, UpdateAppliesSecretsAndStateTogether) {
  ASSERT_TRUE(store_->PutSecret("acme/refresh", "old-refresh").ok());
  ASSERT_TRUE(store_->PutSecret("acme/verifier", "v").ok());
  ASSERT_TRUE(store_->PutState("acme/needs_reauth", "true").ok());

  CredentialStore::Change change;
  change.secrets = {{"acme/refresh", "new-refresh"},
                    {"acme/access", "new-access"},
                    {"acme/verifier", std::nullopt}};
  change.state = {{"acme/needs_reauth", std::nullopt}, {"acme/access_expires", "1767225600"}};
  ASSERT_TRUE(store_->Update(change).ok());

  EXPECT_EQ(MustGetSecret("acme/refresh"), "new-refresh");
  EXPECT_EQ(MustGetSecret("acme/access"), "new-access");
  EXPECT_EQ(MustGetSecret("acme/verifier"), std::nullopt);
  EXPECT_EQ(MustGetState("acme/needs_reauth"), std::nullopt);
  EXPECT_EQ(MustGetState("acme/access_expires"), "1767225600");

  // An empty change is a no-op.
  EXPECT_TRUE(store_->Update(CredentialStore::Change()).ok());
}

TEST_F(CredentialStoreTest, UpdateIsAllOrNothing) {
  ASSERT_TRUE(store_->PutSecret("acme/refresh", "old-refresh").ok());
  ASSERT_TRUE(store_->PutState("acme/needs_reauth", "false").ok());
  // Make the last write of the transaction fail, after the others have run.
  RawDb(path_).Exec(
      "CREATE TRIGGER fail_boom BEFORE INSERT ON state WHEN NEW.name = 'boom' "
      "BEGIN SELECT RAISE(ABORT, 'injected failure'); END");

  CredentialStore::Change change;
  change.secrets = {{"acme/refresh", "new-refresh"}, {"acme/access", "new-access"}};
  change.state = {{"acme/needs_reauth", "true"}, {"boom", "x"}};
  const absl::Status s = store_->Update(change);
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("injected failure"));
  EXPECT_THAT(std::string(s.message()), Not(HasSubstr("new-refresh")));

  EXPECT_EQ(MustGetSecret("acme/refresh"), "old-refresh");
  EXPECT_EQ(MustGetSecret("acme/access"), std::nullopt);
  EXPECT_EQ(MustGetState("acme/needs_reauth"), "false");

  // The store is still usable afterwards (the transaction was rolled back).
  RawDb(path_).Exec("DROP TRIGGER fail_boom");
  ASSERT_TRUE(store_->Update(change).ok());
  EXPECT_EQ(MustGetSecret("acme/refresh"), "new-refresh");
  EXPECT_EQ(MustGetState("boom"), "x");
}

TEST_F(CredentialStoreTest, StoredFormatIsVersionKeyIdNonceCiphertextTag) {
  ASSERT_TRUE(store_->PutSecret("name", "0123456789").ok());
  const std::optional<std::string> blob = RawDb(path_).GetBlob("name");
  ASSERT_TRUE(blob.has_value());
  ASSERT_EQ(blob->size(), 1u + 8u + 12u + 10u + 16u);
  EXPECT_EQ((*blob)[0], '\x01');
  EXPECT_EQ(blob->substr(1, 8), Sha256("mlc-master-key-id" + key_).substr(0, 8));
  // The rest is what Aes256GcmSeal made, with the documented associated data.
  auto plain = Aes256GcmOpen(key_, blob->substr(9), "mlc-secret/v1/name");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(*plain, "0123456789");
}

TEST_F(CredentialStoreTest, AValueCopiedToAnotherNameFailsAuthentication) {
  ASSERT_TRUE(store_->PutSecret("acme/refresh", "refresh-token-XYZZY").ok());
  ASSERT_TRUE(store_->PutSecret("acme/access", "access-token").ok());
  RawDb(path_).Exec(
      "UPDATE secrets SET value = (SELECT value FROM secrets WHERE name = 'acme/refresh') "
      "WHERE name = 'acme/access'");

  auto got = store_->GetSecret("acme/access");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(got.status().message(), HasSubstr("acme/access"));
  EXPECT_THAT(got.status().message(), HasSubstr(path_));
  EXPECT_THAT(std::string(got.status().message()), Not(HasSubstr("refresh-token-XYZZY")));
  // The original is untouched.
  EXPECT_EQ(MustGetSecret("acme/refresh"), "refresh-token-XYZZY");
}

TEST_F(CredentialStoreTest, AModifiedByteAnywhereIsDetected) {
  ASSERT_TRUE(store_->PutSecret("s", "0123456789").ok());
  const std::string blob = RawDb(path_).GetBlob("s").value();
  // Past the version byte: key id, nonce, ciphertext and tag.
  for (size_t i = 1; i < blob.size(); ++i) {
    std::string tampered = blob;
    tampered[i] = static_cast<char>(tampered[i] ^ 0x20);
    RawDb(path_).PutBlob("s", tampered);
    auto got = store_->GetSecret("s");
    EXPECT_FALSE(got.ok()) << "byte " << i;
    const absl::StatusCode want = i < 9 ? absl::StatusCode::kFailedPrecondition  // key id
                                        : absl::StatusCode::kDataLoss;
    EXPECT_EQ(got.status().code(), want) << "byte " << i << ": " << got.status();
  }
  RawDb(path_).PutBlob("s", blob);
  EXPECT_EQ(MustGetSecret("s"), "0123456789");
}

TEST_F(CredentialStoreTest, TruncatedValuesAreDataLoss) {
  ASSERT_TRUE(store_->PutSecret("s", "0123456789").ok());
  const std::string blob = RawDb(path_).GetBlob("s").value();
  for (const size_t len : {size_t{0}, size_t{5}, size_t{9}, size_t{20}, blob.size() - 1}) {
    RawDb(path_).PutBlob("s", blob.substr(0, len));
    auto got = store_->GetSecret("s");
    EXPECT_EQ(got.status().code(), absl::StatusCode::kDataLoss) << len << ": " << got.status();
  }
}

TEST_F(CredentialStoreTest, UnknownFormatVersionIsReportedClearly) {
  ASSERT_TRUE(store_->PutSecret("acme/refresh", "r").ok());
  std::string blob = RawDb(path_).GetBlob("acme/refresh").value();
  blob[0] = '\x02';
  RawDb(path_).PutBlob("acme/refresh", blob);

  auto got = store_->GetSecret("acme/refresh");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(got.status().message(), HasSubstr("acme/refresh"));
  EXPECT_THAT(got.status().message(), HasSubstr("format version 2"));
  EXPECT_THAT(got.status().message(), HasSubstr("reads only version 1"));
}

TEST_F(CredentialStoreTest, PlaintextSecretsNeverReachTheDisk) {
  const std::string refresh = "refresh-token-PLAINTEXT-CANARY-1";
  const std::string client_secret = "client-secret-PLAINTEXT-CANARY-2";
  ASSERT_TRUE(store_->PutSecret("acme/refresh", refresh).ok());
  CredentialStore::Change change;
  change.secrets = {{"acme/client_secret", client_secret}};
  change.state = {{"acme/account_id", "STATE-IS-PLAINTEXT-CANARY"}};
  ASSERT_TRUE(store_->Update(change).ok());
  ASSERT_TRUE(store_->PutSecret("acme/refresh", refresh + "-rotated").ok());

  std::string disk = RawBytesOnDisk();
  // The scan works: state is plaintext by design, so it is found.
  EXPECT_THAT(disk, HasSubstr("STATE-IS-PLAINTEXT-CANARY"));
  EXPECT_THAT(disk, Not(HasSubstr("PLAINTEXT-CANARY-1")));
  EXPECT_THAT(disk, Not(HasSubstr("PLAINTEXT-CANARY-2")));
  ExpectNoKeyMaterial(disk, key_);

  // Still true once everything has been checkpointed into the main file, and
  // after a rotation.
  store_.reset();
  RawDb(path_).Exec("PRAGMA wal_checkpoint(TRUNCATE)");
  Reopen(key_);
  const std::string new_key = RandomBytes(32);
  ASSERT_TRUE(store_->RotateMasterKey(new_key).ok());
  disk = RawBytesOnDisk();
  EXPECT_THAT(disk, Not(HasSubstr("PLAINTEXT-CANARY-1")));
  EXPECT_THAT(disk, Not(HasSubstr("PLAINTEXT-CANARY-2")));
  ExpectNoKeyMaterial(disk, key_);
  ExpectNoKeyMaterial(disk, new_key);
}

TEST_F(CredentialStoreTest, FilesAreReadableByTheOwnerOnly) {
  ASSERT_TRUE(store_->PutSecret("s", "v").ok());
  for (const std::string& file : {path_, path_ + "-wal", path_ + "-shm"}) {
    struct stat st {};
    ASSERT_EQ(::stat(file.c_str(), &st), 0) << file;
    EXPECT_EQ(st.st_mode & 0777, 0600u) << file;
  }
}

TEST_F(CredentialStoreTest, ReopeningTightensLoosePermissions) {
  store_.reset();
  ASSERT_EQ(::chmod(path_.c_str(), 0644), 0);
  Reopen(key_);
  struct stat st {};
  ASSERT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(CredentialStoreTest, ReopeningWithTheSameKeyKeepsEverything) {
  ASSERT_TRUE(store_->PutSecret("acme/refresh", "r1").ok());
  ASSERT_TRUE(store_->PutState("acme/account_id", "6BApk").ok());
  Reopen(key_);
  EXPECT_EQ(MustGetSecret("acme/refresh"), "r1");
  EXPECT_EQ(MustGetState("acme/account_id"), "6BApk");
}

TEST_F(CredentialStoreTest, AWrongKeyIsRefusedAtOpenWithoutRevealingAnyKey) {
  ASSERT_TRUE(store_->PutSecret("acme/refresh", "r1").ok());
  store_.reset();
  const std::string wrong = RandomBytes(32);
  auto store = CredentialStore::Open(path_, wrong);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string msg(store.status().message());
  EXPECT_THAT(msg, HasSubstr(path_));
  EXPECT_THAT(msg, HasSubstr("writer.master_key"));
  EXPECT_THAT(msg, HasSubstr("rotate-master-key"));
  ExpectNoKeyMaterial(msg, wrong);
  ExpectNoKeyMaterial(msg, key_);

  // The failed open changed nothing.
  Reopen(key_);
  EXPECT_EQ(MustGetSecret("acme/refresh"), "r1");
}

TEST_F(CredentialStoreTest, AWrongKeyIsRefusedEvenBeforeAnySecretExists) {
  store_.reset();
  auto store = CredentialStore::Open(path_, RandomBytes(32));
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
}

TEST_F(CredentialStoreTest, KeysThatAreNot32BytesAreRejected) {
  store_.reset();
  EXPECT_EQ(CredentialStore::Open(path_, std::string(16, 'k')).status().code(),
            absl::StatusCode::kInvalidArgument);
  Reopen(key_);
  EXPECT_EQ(store_->RotateMasterKey(std::string(31, 'k')).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CredentialStoreTest, RotationReencryptsEverySecretUnderTheNewKey) {
  ASSERT_TRUE(store_->PutSecret("acme/refresh", "r1").ok());
  ASSERT_TRUE(store_->PutSecret("acme/access", "a1").ok());
  ASSERT_TRUE(store_->PutSecret("dbx/acme/client_secret", "d1").ok());
  ASSERT_TRUE(store_->PutState("acme/account_id", "6BApk").ok());
  const std::string old_blob = RawDb(path_).GetBlob("acme/refresh").value();

  const std::string new_key = RandomBytes(32);
  auto rotated = store_->RotateMasterKey(new_key);
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_EQ(*rotated, 3);
  // The same object keeps working, now under the new key.
  EXPECT_EQ(MustGetSecret("acme/refresh"), "r1");
  ASSERT_TRUE(store_->PutSecret("acme/access", "a2").ok());
  EXPECT_NE(RawDb(path_).GetBlob("acme/refresh").value(), old_blob);

  store_.reset();
  auto with_old_key = CredentialStore::Open(path_, key_);
  EXPECT_EQ(with_old_key.status().code(), absl::StatusCode::kFailedPrecondition)
      << with_old_key.status();

  Reopen(new_key);
  EXPECT_EQ(MustGetSecret("acme/refresh"), "r1");
  EXPECT_EQ(MustGetSecret("acme/access"), "a2");
  EXPECT_EQ(MustGetSecret("dbx/acme/client_secret"), "d1");
  EXPECT_EQ(MustGetState("acme/account_id"), "6BApk");
}

TEST_F(CredentialStoreTest, RotatingAnEmptyStoreMovesItToTheNewKey) {
  const std::string new_key = RandomBytes(32);
  auto rotated = store_->RotateMasterKey(new_key);
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_EQ(*rotated, 0);
  store_.reset();
  EXPECT_FALSE(CredentialStore::Open(path_, key_).ok());
  Reopen(new_key);
}

TEST_F(CredentialStoreTest, RotatingToTheSameKeyIsRejected) {
  auto rotated = store_->RotateMasterKey(key_);
  EXPECT_EQ(rotated.status().code(), absl::StatusCode::kInvalidArgument);
  ExpectNoKeyMaterial(std::string(rotated.status().message()), key_);
}

TEST_F(CredentialStoreTest, RotationWithADamagedSecretChangesNothing) {
  ASSERT_TRUE(store_->PutSecret("a", "va").ok());
  ASSERT_TRUE(store_->PutSecret("b", "vb").ok());
  ASSERT_TRUE(store_->PutSecret("c", "vc").ok());
  std::string blob = RawDb(path_).GetBlob("b").value();
  blob.back() = static_cast<char>(blob.back() ^ 1);
  RawDb(path_).PutBlob("b", blob);
  const std::string a_before = RawDb(path_).GetBlob("a").value();

  auto rotated = store_->RotateMasterKey(RandomBytes(32));
  EXPECT_EQ(rotated.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(rotated.status().message(), HasSubstr("\"b\""));
  EXPECT_THAT(rotated.status().message(), HasSubstr("not rotated"));

  EXPECT_EQ(RawDb(path_).GetBlob("a").value(), a_before);
  Reopen(key_);
  EXPECT_EQ(MustGetSecret("a"), "va");
  EXPECT_EQ(MustGetSecret("c"), "vc");
}

TEST_F(CredentialStoreTest, AProcessStillOnTheOldKeyCannotWriteAfterARotation) {
  ASSERT_TRUE(store_->PutSecret("acme/refresh", "r1").ok());
  auto other = CredentialStore::Open(path_, key_);
  ASSERT_TRUE(other.ok()) << other.status();
  const std::string new_key = RandomBytes(32);
  ASSERT_TRUE((*other)->RotateMasterKey(new_key).ok());

  // store_ still holds the old key: it must not add old-key values to the file.
  const absl::Status put = store_->PutSecret("acme/refresh", "r2");
  EXPECT_EQ(put.code(), absl::StatusCode::kFailedPrecondition) << put;
  EXPECT_THAT(put.message(), HasSubstr("rotated"));
  auto got = store_->GetSecret("acme/refresh");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition) << got.status();

  Reopen(new_key);
  EXPECT_EQ(MustGetSecret("acme/refresh"), "r1");
}

TEST_F(CredentialStoreTest, AValueFromAStoreWithAnotherKeyIsRefused) {
  testing::TempDir other_dir;
  const std::string other_path = other_dir.File("credentials.db");
  {
    auto other = CredentialStore::Open(other_path, RandomBytes(32));
    ASSERT_TRUE(other.ok()) << other.status();
    ASSERT_TRUE((*other)->PutSecret("acme/refresh", "foreign").ok());
  }
  RawDb(path_).PutBlob("acme/refresh", RawDb(other_path).GetBlob("acme/refresh").value());
  auto got = store_->GetSecret("acme/refresh");
  EXPECT_EQ(got.status().code(), absl::StatusCode::kFailedPrecondition) << got.status();
  EXPECT_THAT(got.status().message(), HasSubstr("different master key"));
}

TEST_F(CredentialStoreTest, ConcurrentCallersAreSafe) {
  constexpr int kThreads = 4;
  constexpr int kOps = 40;
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < kOps; ++i) {
        const std::string name = absl::StrCat("t", t, "/", i);
        EXPECT_TRUE(store_->PutSecret(name, name + "-value").ok());
        auto got = store_->GetSecret(name);
        EXPECT_TRUE(got.ok() && *got == name + "-value") << name;
      }
    });
  }
  for (auto& t : threads) t.join();
  auto all = store_->ListSecrets("t");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), static_cast<size_t>(kThreads * kOps));
}

TEST(DecodeMasterKeyTest, AcceptsBase64Of32Bytes) {
  const std::string key = RandomBytes(32);
  auto decoded = DecodeMasterKey(Base64Encode(key));
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, key);
}

TEST(DecodeMasterKeyTest, ErrorsSayHowToMakeAKeyAndNeverShowTheValue) {
  const std::string bad_cases[] = {
      "",
      Base64Encode("sixteen-byte-key"),                  // too short
      Base64Encode(std::string(33, 'k')),                // too long
      "not base64 at all, secret-ish value!",            // not base64
      Base64Encode(std::string(32, 'k')).substr(0, 43),  // padding lost
      Base64Encode(std::string(32, 'k')) + "\n",         // trailing newline
  };
  for (const std::string& bad : bad_cases) {
    auto decoded = DecodeMasterKey(bad);
    ASSERT_FALSE(decoded.ok()) << "accepted \"" << bad << "\"";
    EXPECT_EQ(decoded.status().code(), absl::StatusCode::kInvalidArgument);
    const std::string msg(decoded.status().message());
    EXPECT_THAT(msg, HasSubstr(kHowToMakeAKey));
    if (!bad.empty()) {
      EXPECT_THAT(msg, Not(HasSubstr(bad.substr(0, 12)))) << msg;
    }
  }
  EXPECT_THAT(std::string(DecodeMasterKey("").status().message()), HasSubstr("not set"));
  EXPECT_THAT(std::string(DecodeMasterKey(Base64Encode("sixteen-byte-key")).status().message()),
              HasSubstr("decodes to 16 bytes"));
}

}  // namespace
}  // namespace mlc::writer
