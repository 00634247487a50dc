// mlc-ingress: the public webhook endpoint. Loads config, serves until
// SIGTERM/SIGINT, then stops accepting and finishes requests in flight.
#include <string>

#include "common/logging.h"
#include "common/service_main.h"
#include "ingress/http_server.h"

int main(int argc, char** argv) {
  int exit_code = 0;
  std::optional<mlc::Config> config =
      mlc::InitService(argc, argv, "ingress", mlc::ConfigRole::kIngress, &exit_code);
  if (!config.has_value()) return exit_code;
  mlc::ingress::IngressServer server(config->ingress, mlc::ingress::Limits());
  if (absl::Status s = server.Start(); !s.ok()) {
    mlc::log::Error("cannot start", {{"error", std::string(s.message())}});
    return 1;
  }
  mlc::WaitForShutdownSignal("finishing requests in flight");
  server.Stop();
  return 0;
}
