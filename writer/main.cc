// mlc-writer: the stateful service. Parses flags, loads config, runs WriterApp
// until SIGTERM/SIGINT, then shuts down gracefully.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "common/config.h"
#include "common/logging.h"
#include "writer/writer_app.h"

namespace {

int Usage() {
  std::fprintf(stderr, "usage: mlc-writer --config FILE   (or set MLC_CONFIG)\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string config_path;
  if (const char* env = std::getenv("MLC_CONFIG"); env != nullptr) config_path = env;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--config" && i + 1 < argc) {
      config_path = argv[++i];
    } else if (absl::StartsWith(arg, "--config=")) {
      config_path = arg.substr(9);
    } else if (arg == "--help" || arg == "-h") {
      return Usage() - 2;
    } else {
      std::fprintf(stderr, "mlc-writer: unknown argument \"%s\"\n", arg.c_str());
      return Usage();
    }
  }
  if (config_path.empty()) return Usage();
  mlc::log::Init("writer");
  // Abseil's lock-order cycle detection costs a graph update per Mutex use; the
  // tests run with it, production does not need it on every request.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  // Block the shutdown signals before any thread starts; main waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto config = mlc::LoadConfigFile(config_path, mlc::ConfigRole::kWriter);
  if (!config.ok()) {
    mlc::log::Error("invalid configuration", {{"error", std::string(config.status().message())}});
    return 1;
  }
  auto app = mlc::writer::WriterApp::Create(*config);
  if (!app.ok()) {
    mlc::log::Error("cannot start", {{"error", std::string(app.status().message())}});
    return 1;
  }
  if (absl::Status s = (*app)->Start(); !s.ok()) {
    mlc::log::Error("cannot start", {{"error", std::string(s.message())}});
    return 1;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  mlc::log::Info("signal received", {{"signal", std::string(strsignal(sig))}});
  (*app)->Shutdown();
  return 0;
}
