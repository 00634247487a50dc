// The `mlc` command line: global flags, the command table and each command's
// rendering. Every admin command is one entry in a table (name, synopsis, flags,
// default deadline, run function) that drives dispatch and the usage text alike,
// so adding a command for a new Admin RPC is one entry plus its run function.
//
// RunMlc() is main() without the process: output, environment and clock come in
// through CliEnv, so calls with distinct CliEnvs are independent of each other and
// of the process environment.
#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "cli/cli_env.h"
#include "mlconnector/v1/admin.pb.h"

namespace mlc::cli {

// Exit statuses.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Runs one invocation; `args` excludes the program name. Returns the exit status.
int RunMlc(const std::vector<std::string>& args, const CliEnv& env);

// `mlc help`: every command with its flags, and the global flags.
std::string GeneralUsage();
// `mlc COMMAND --help`; empty for an unknown command.
std::string CommandUsage(const std::string& command);

// The human renderings of the Admin responses (what the commands print without
// --json). `now` makes relative times ("3h ago") deterministic.
std::string RenderConnections(const mlconnector::v1::ListConnectionsResponse& response,
                              absl::Time now);
std::string RenderAuthorization(const mlconnector::v1::StartAuthorizationResponse& response,
                                absl::Time now);
std::string RenderCallbacks(const mlconnector::v1::RegisterWebhooksResponse& response);
std::string RenderSync(const mlconnector::v1::SyncResponse& response);

}  // namespace mlc::cli
