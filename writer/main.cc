// mlc-writer: the stateful service. Loads config, runs WriterApp until
// SIGTERM/SIGINT, then shuts down gracefully.
//
// `mlc-writer rotate-master-key --config FILE` is a one-shot maintenance command
// instead: it re-encrypts the credential store from writer.master_key to the key
// in MLC_NEW_MASTER_KEY (never a flag, so the key stays out of `ps`) and exits.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

#include "absl/strings/match.h"
#include "common/config.h"
#include "common/logging.h"
#include "common/service_main.h"
#include "writer/credential_store.h"
#include "writer/writer_app.h"

namespace {

constexpr char kRotateCommand[] = "rotate-master-key";
constexpr char kRotateUsage[] =
    "usage: mlc-writer rotate-master-key --config FILE   (or set MLC_CONFIG)\n"
    "\n"
    "Re-encrypts <writer.data_dir>/credentials.db from writer.master_key (the current key)\n"
    "to the key in the environment variable MLC_NEW_MASTER_KEY (base64 of 32 random bytes;\n"
    "make one with: openssl rand -base64 32), in one transaction. Stop mlc-writer first;\n"
    "afterwards set writer.master_key to the new key and start it again.\n";

int RotateFailed(const std::string& message) {
  std::fprintf(stderr, "mlc-writer %s: %s\n", kRotateCommand, message.c_str());
  return 1;
}

// `argv[0]` is the subcommand. Returns the process exit code: 0 rotated, 1
// failed (nothing changed), 2 bad arguments.
int RotateMasterKeyCommand(int argc, char** argv) {
  std::string config_path;
  if (const char* env = std::getenv("MLC_CONFIG"); env != nullptr) config_path = env;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (absl::StartsWith(arg, "--config=")) {
      config_path = arg.substr(9);
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kRotateUsage, stdout);
      return 0;
    } else {
      std::fprintf(stderr, "mlc-writer %s: unknown argument \"%s\"\n%s", kRotateCommand,
                   arg.c_str(), kRotateUsage);
      return 2;
    }
  }
  if (config_path.empty()) {
    std::fputs(kRotateUsage, stderr);
    return 2;
  }

  absl::StatusOr<mlc::Config> config = mlc::LoadConfigFile(config_path, mlc::ConfigRole::kWriter);
  if (!config.ok()) return RotateFailed(std::string(config.status().message()));
  absl::StatusOr<std::string> old_key = mlc::writer::DecodeMasterKey(config->writer.master_key);
  if (!old_key.ok()) return RotateFailed(std::string(old_key.status().message()));
  const char* new_key_env = std::getenv("MLC_NEW_MASTER_KEY");
  if (new_key_env == nullptr || *new_key_env == '\0') {
    return RotateFailed(
        "MLC_NEW_MASTER_KEY is not set; set it to the new key, base64 of 32 random bytes (make "
        "one with: openssl rand -base64 32)");
  }
  absl::StatusOr<std::string> new_key = mlc::writer::DecodeMasterKey(new_key_env);
  if (!new_key.ok()) {
    // DecodeMasterKey's message names writer.master_key; this key comes from elsewhere.
    return RotateFailed(
        "MLC_NEW_MASTER_KEY must be base64 of 32 random bytes (make one with: openssl rand "
        "-base64 32)");
  }

  const std::string path =
      config->writer.data_dir + "/" + std::string(mlc::writer::kCredentialStoreFile);
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return RotateFailed(path + " does not exist; check writer.data_dir (nothing to rotate)");
  }
  auto store = mlc::writer::CredentialStore::Open(path, *std::move(old_key));
  if (!store.ok()) return RotateFailed(std::string(store.status().message()));
  absl::StatusOr<int> rotated = (*store)->RotateMasterKey(*new_key);
  if (!rotated.ok()) return RotateFailed(std::string(rotated.status().message()));
  std::fprintf(stderr,
               "mlc-writer %s: rotated %d secrets in %s; now set writer.master_key to the new key "
               "(the value of MLC_NEW_MASTER_KEY) before starting mlc-writer again\n",
               kRotateCommand, *rotated, path.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == kRotateCommand) {
    return RotateMasterKeyCommand(argc - 1, argv + 1);
  }
  int exit_code = 0;
  std::optional<mlc::Config> config =
      mlc::InitService(argc, argv, "writer", mlc::ConfigRole::kWriter, &exit_code);
  if (!config.has_value()) return exit_code;
  auto app = mlc::writer::WriterApp::Create(*config);
  if (!app.ok()) {
    mlc::log::Error("cannot start", {{"error", std::string(app.status().message())}});
    return 1;
  }
  if (absl::Status s = (*app)->Start(); !s.ok()) {
    mlc::log::Error("cannot start", {{"error", std::string(s.message())}});
    return 1;
  }
  mlc::WaitForShutdownSignal("shutting down");
  (*app)->Shutdown();
  return 0;
}
