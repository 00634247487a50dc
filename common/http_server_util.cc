#include "common/http_server_util.h"

#include <sys/socket.h>

#include <chrono>

#include "absl/strings/str_cat.h"
#include "common/config.h"

namespace mlc {

absl::StatusOr<int> StartHttpServer(httplib::Server* server, const std::string& key,
                                    const std::string& listen, std::thread* thread) {
  std::string host;
  int port = 0;
  if (absl::Status s = ParseHostPort(key, listen, &host, &port); !s.ok()) return s;
  server->set_socket_options([](socket_t sock) {
    const int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  int bound = -1;
  if (port == 0) {
    bound = server->bind_to_any_port(host);
  } else if (server->bind_to_port(host, port)) {
    bound = port;
  }
  if (bound <= 0) {
    return absl::UnavailableError(
        absl::StrCat(key, " \"", listen, "\": cannot listen (address in use?)"));
  }
  *thread = std::thread([server] { server->listen_after_bind(); });
  for (int i = 0; i < 5000 && !server->is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return bound;
}

void StopHttpServer(httplib::Server* server, std::thread* thread) {
  server->stop();
  if (thread->joinable()) thread->join();
}

}  // namespace mlc
