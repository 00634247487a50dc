#include "common/service_main.h"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/logging.h"

namespace mlc {
namespace {

sigset_t ShutdownSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  return signals;
}

}  // namespace

std::optional<Config> InitService(int argc, char** argv, const char* service, ConfigRole role,
                                  int* exit_code) {
  auto usage = [service](int code) {
    std::fprintf(code == 0 ? stdout : stderr, "usage: mlc-%s --config FILE   (or set MLC_CONFIG)\n",
                 service);
    return code;
  };
  std::string config_path;
  if (const char* env = std::getenv("MLC_CONFIG"); env != nullptr) config_path = env;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (absl::StartsWith(arg, "--config=")) {
      config_path = arg.substr(9);
    } else if (arg == "--help" || arg == "-h") {
      *exit_code = usage(0);
      return std::nullopt;
    } else {
      std::fprintf(stderr, "mlc-%s: unknown argument \"%s\"\n", service, arg.c_str());
      *exit_code = usage(2);
      return std::nullopt;
    }
  }
  if (config_path.empty()) {
    *exit_code = usage(2);
    return std::nullopt;
  }
  log::Init(service);
  // Abseil's lock-order cycle detection costs a graph update per Mutex use; the
  // tests run with it, production does not need it on every request.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Blocked before any thread starts, so only WaitForShutdownSignal receives them.
  const sigset_t signals = ShutdownSignals();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  absl::StatusOr<Config> config = LoadConfigFile(config_path, role);
  if (!config.ok()) {
    log::Error("invalid configuration", {{"error", std::string(config.status().message())}});
    *exit_code = 1;
    return std::nullopt;
  }
  *exit_code = 0;
  return *std::move(config);
}

void WaitForShutdownSignal(const char* what_happens_next) {
  const sigset_t signals = ShutdownSignals();
  int sig = 0;
  sigwait(&signals, &sig);
  log::Info(absl::StrCat("signal received; ", what_happens_next),
            {{"signal", std::string(strsignal(sig))}});
}

}  // namespace mlc
