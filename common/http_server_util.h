// Starting and stopping a cpp-httplib server safely, shared by ingress's public
// endpoint and the writer's metrics endpoint. cpp-httplib 0.11 has two traps this
// hides: its default socket options set SO_REUSEPORT (a second process would bind
// the same port and take part of the traffic), and stop() does nothing until the
// listen loop has started (a Stop right after Start would hang).
#pragma once

#include <httplib.h>

#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace mlc {

// Binds `server` to `key`'s "host:port" (port 0: any free port), serves on
// `*thread`, and returns once the listen loop runs. Returns the bound port.
absl::StatusOr<int> StartHttpServer(httplib::Server* server, const std::string& key,
                                    const std::string& listen, std::thread* thread);

// Stops accepting, waits for requests in flight, joins `thread`.
void StopHttpServer(httplib::Server* server, std::thread* thread);

}  // namespace mlc
