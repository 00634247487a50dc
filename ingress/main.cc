// mlc-ingress: the public webhook endpoint. Parses flags, loads config, serves
// until SIGTERM/SIGINT, then stops accepting and finishes requests in flight.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "common/config.h"
#include "common/logging.h"
#include "ingress/http_server.h"

namespace {

int Usage() {
  std::fprintf(stderr, "usage: mlc-ingress --config FILE   (or set MLC_CONFIG)\n");
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
      std::fprintf(stderr, "mlc-ingress: unknown argument \"%s\"\n", arg.c_str());
      return Usage();
    }
  }
  if (config_path.empty()) return Usage();
  mlc::log::Init("ingress");
  // Abseil's lock-order cycle detection costs a graph update per Mutex use; the
  // tests run with it, production does not need it on every request.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  auto config = mlc::LoadConfigFile(config_path, mlc::ConfigRole::kIngress);
  if (!config.ok()) {
    mlc::log::Error("invalid configuration", {{"error", std::string(config.status().message())}});
    return 1;
  }
  mlc::ingress::IngressServer server(config->ingress, mlc::ingress::Limits());
  if (absl::Status s = server.Start(); !s.ok()) {
    mlc::log::Error("cannot start", {{"error", std::string(s.message())}});
    return 1;
  }
  int sig = 0;
  sigwait(&signals, &sig);
  mlc::log::Info("signal received; finishing requests in flight",
                 {{"signal", std::string(strsignal(sig))}});
  server.Stop();
  return 0;
}
