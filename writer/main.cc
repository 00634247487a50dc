// mlc-writer: the stateful service. Loads config, runs WriterApp until
// SIGTERM/SIGINT, then shuts down gracefully.
#include <string>

#include "common/logging.h"
#include "common/service_main.h"
#include "writer/writer_app.h"

int main(int argc, char** argv) {
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
