// mlc-ingress: the public webhook endpoint. Loads config, serves until
// SIGTERM/SIGINT, then stops accepting and finishes requests in flight.
#include <memory>
#include <string>

#include "common/grpc_tls.h"
#include "common/logging.h"
#include "common/service_main.h"
#include "ingress/http_server.h"
#include "ingress/writer_client.h"

int main(int argc, char** argv) {
  int exit_code = 0;
  std::optional<mlc::Config> config =
      mlc::InitService(argc, argv, "ingress", mlc::ConfigRole::kIngress, &exit_code);
  if (!config.has_value()) return exit_code;
  // Built here rather than by IngressServer so that an unusable ingress.writer_tls
  // file stops ingress at startup with a message naming it.
  absl::StatusOr<std::unique_ptr<mlc::ingress::GrpcWriterClient>> writer =
      mlc::ingress::GrpcWriterClient::Create(config->ingress);
  if (!writer.ok()) {
    mlc::log::Error("cannot start", {{"error", std::string(writer.status().message())}});
    return 1;
  }
  mlc::log::Info("ingress: gRPC to the writer",
                 {{"writer", config->ingress.writer},
                  {"transport", mlc::DescribeClientTls(config->ingress.writer_tls)}});
  mlc::ingress::IngressServer server(config->ingress, mlc::ingress::Limits(), *std::move(writer));
  if (absl::Status s = server.Start(); !s.ok()) {
    mlc::log::Error("cannot start", {{"error", std::string(s.message())}});
    return 1;
  }
  mlc::WaitForShutdownSignal("finishing requests in flight");
  server.Stop();
  return 0;
}
