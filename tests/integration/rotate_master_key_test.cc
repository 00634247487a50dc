// `mlc-writer rotate-master-key` run as an operator would (DESIGN.md §5): the
// real binary, a config file whose writer.master_key is the current key, the new
// key in MLC_NEW_MASTER_KEY. Afterwards the store opens only with the new key and
// every secret is intact; on any error nothing changes, the exit code is 1 and
// no key is printed.
#include <sys/stat.h>
#include <sys/wait.h>

#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_util.h"
#include "writer/credential_store.h"

namespace mlc::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using writer::CredentialStore;

constexpr char kInternalToken[] = "internal-token-0123456789abcdef";

class RotateMasterKeyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::mkdir(data_dir_.c_str(), 0700), 0);
    WriteFile(config_path_, absl::StrCat("writer:\n"
                                         "  data_dir: \"",
                                         data_dir_,
                                         "\"\n"
                                         "  master_key: \"${MLC_MASTER_KEY}\"\n"
                                         "  internal_token: \"${MLC_INTERNAL_TOKEN}\"\n"));
  }

  void CreateStore() {
    auto store = CredentialStore::Open(store_path_, old_key_);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->PutSecret("fb/acme/refresh_token", "refresh-1").ok());
    ASSERT_TRUE((*store)->PutSecret("dbx/acme/client_secret", "dbx-secret").ok());
    ASSERT_TRUE((*store)->PutState("fb/acme/account_id", "6BApk").ok());
  }

  struct Result {
    int exit_code = -1;
    std::string output;
  };

  // Runs the binary with `env` on top of the defaults (a key set to "" is left out).
  Result Run(const std::vector<std::string>& args, const std::map<std::string, std::string>& env) {
    std::vector<std::string> argv = {MLC_WRITER_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    std::map<std::string, std::string> full = {{"MLC_MASTER_KEY", Base64Encode(old_key_)},
                                               {"MLC_NEW_MASTER_KEY", Base64Encode(new_key_)},
                                               {"MLC_INTERNAL_TOKEN", kInternalToken}};
    for (const auto& [k, v] : env) full[k] = v;
    for (auto it = full.begin(); it != full.end();) {
      it = it->second.empty() ? full.erase(it) : std::next(it);
    }
    const std::string log = dir_.File(absl::StrCat("run-", ++runs_, ".log"));
    Process p(std::move(argv), std::move(full), log);
    const int status = p.Wait();
    Result r;
    r.output = p.Log();
    if (status >= 0 && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
    return r;
  }

  Result Rotate(const std::map<std::string, std::string>& env = {}) {
    return Run({"rotate-master-key", "--config", config_path_}, env);
  }

  void ExpectNoKeyIn(const std::string& output) {
    for (const std::string& key : {old_key_, new_key_}) {
      EXPECT_THAT(output, Not(HasSubstr(Base64Encode(key))));
      EXPECT_THAT(output, Not(HasSubstr(Base64Encode(key).substr(0, 12))));
      EXPECT_THAT(output, Not(HasSubstr(HexEncode(key).substr(0, 16))));
    }
  }

  // The store still opens with `key` and holds what CreateStore put there.
  void ExpectStoreUnder(const std::string& key) {
    auto store = CredentialStore::Open(store_path_, key);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ((*store)->GetSecret("fb/acme/refresh_token").value(), "refresh-1");
    EXPECT_EQ((*store)->GetSecret("dbx/acme/client_secret").value(), "dbx-secret");
    EXPECT_EQ((*store)->GetState("fb/acme/account_id").value(), "6BApk");
  }

  TempDir dir_;
  const std::string data_dir_ = dir_.File("var");
  const std::string store_path_ = data_dir_ + "/credentials.db";
  const std::string config_path_ = dir_.File("config.yaml");
  const std::string old_key_ = RandomBytes(32);
  const std::string new_key_ = RandomBytes(32);
  int runs_ = 0;
};

TEST_F(RotateMasterKeyTest, RotatesEverySecretToTheNewKey) {
  CreateStore();
  const Result r = Rotate();
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("rotated 2 secrets"));
  EXPECT_THAT(r.output, HasSubstr(store_path_));
  EXPECT_THAT(r.output, HasSubstr("now set writer.master_key to the new key"));
  ExpectNoKeyIn(r.output);

  auto with_old_key = CredentialStore::Open(store_path_, old_key_);
  EXPECT_EQ(with_old_key.status().code(), absl::StatusCode::kFailedPrecondition)
      << with_old_key.status();
  ExpectStoreUnder(new_key_);
}

TEST_F(RotateMasterKeyTest, RunningItAgainWithTheOldConfigFailsAndChangesNothing) {
  CreateStore();
  ASSERT_EQ(Rotate().exit_code, 0);
  // The operator forgot to update writer.master_key: the current key is wrong now.
  const Result again = Run({"rotate-master-key", "--config=" + config_path_},
                           {{"MLC_NEW_MASTER_KEY", Base64Encode(RandomBytes(32))}});
  EXPECT_EQ(again.exit_code, 1) << again.output;
  EXPECT_THAT(again.output, HasSubstr(store_path_));
  EXPECT_THAT(again.output, HasSubstr("writer.master_key"));
  ExpectNoKeyIn(again.output);
  ExpectStoreUnder(new_key_);
}

TEST_F(RotateMasterKeyTest, ANewKeyIsRequiredAndMustBe32Bytes) {
  CreateStore();
  const Result missing = Rotate({{"MLC_NEW_MASTER_KEY", ""}});
  EXPECT_EQ(missing.exit_code, 1) << missing.output;
  EXPECT_THAT(missing.output, HasSubstr("MLC_NEW_MASTER_KEY is not set"));
  EXPECT_THAT(missing.output, HasSubstr("openssl rand -base64 32"));

  const std::string short_key = Base64Encode("only-sixteen-byt");
  const Result bad = Rotate({{"MLC_NEW_MASTER_KEY", short_key}});
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_THAT(bad.output, HasSubstr("MLC_NEW_MASTER_KEY must be base64 of 32 random bytes"));
  EXPECT_THAT(bad.output, Not(HasSubstr(short_key)));

  const Result same = Rotate({{"MLC_NEW_MASTER_KEY", Base64Encode(old_key_)}});
  EXPECT_EQ(same.exit_code, 1) << same.output;
  EXPECT_THAT(same.output, HasSubstr("same as the current one"));
  ExpectNoKeyIn(same.output);

  ExpectStoreUnder(old_key_);
}

TEST_F(RotateMasterKeyTest, TheCurrentKeyMustBeConfigured) {
  CreateStore();
  WriteFile(config_path_, absl::StrCat("writer:\n  data_dir: \"", data_dir_,
                                       "\"\n  internal_token: \"${MLC_INTERNAL_TOKEN}\"\n"));
  const Result r = Rotate();
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("writer.master_key is not set"));
  ExpectStoreUnder(old_key_);
}

TEST_F(RotateMasterKeyTest, AMissingStoreIsAnErrorNotANewFile) {
  const Result r = Rotate();
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_THAT(r.output, HasSubstr("does not exist"));
  EXPECT_THAT(r.output, HasSubstr("writer.data_dir"));
  struct stat st {};
  EXPECT_NE(::stat(store_path_.c_str(), &st), 0);
}

TEST_F(RotateMasterKeyTest, BadArgumentsPrintUsage) {
  const Result unknown = Run({"rotate-master-key", "--config", config_path_, "--force"}, {});
  EXPECT_EQ(unknown.exit_code, 2) << unknown.output;
  EXPECT_THAT(unknown.output, HasSubstr("unknown argument \"--force\""));
  EXPECT_THAT(unknown.output, HasSubstr("usage: mlc-writer rotate-master-key"));

  const Result help = Run({"rotate-master-key", "--help"}, {});
  EXPECT_EQ(help.exit_code, 0) << help.output;
  EXPECT_THAT(help.output, HasSubstr("MLC_NEW_MASTER_KEY"));

  // Without the subcommand the service's own argument handling is unchanged.
  const Result service = Run({"--no-such-flag"}, {});
  EXPECT_EQ(service.exit_code, 2) << service.output;
  EXPECT_THAT(service.output, HasSubstr("usage: mlc-writer --config FILE"));
}

}  // namespace
}  // namespace mlc::testing
