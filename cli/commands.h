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

// The journal and health renderings (cli/render.cc).
// A deliveries table (newest first as the writer sends them; RECEIVED relative to
// `now`, ERROR cut to one short line), then, when there is a next page,
// "more: <more_command> --page-token TOKEN" (more_command: the same command line
// without a token; empty: "mlc deliveries").
std::string RenderDeliveries(const mlconnector::v1::ListDeliveriesResponse& response,
                             absl::Time now, const std::string& more_command);
// `mlc show`: the delivery's fields, its payload as "name = value" lines, and its
// attempts as a table (oldest first).
std::string RenderDelivery(const mlconnector::v1::GetDeliveryResponse& response, absl::Time now);
// `mlc replay`: matched / replayed (or, in a dry run, that nothing changed), the
// first ids, skipped, not found and truncation.
std::string RenderReplay(const mlconnector::v1::ReplayResponse& response);
// `mlc dead-letters`: dead letters by reason from `stats`, the newest dead
// deliveries from `recent`, and the replay command for each affected connection.
std::string RenderDeadLetters(const mlconnector::v1::GetStatsResponse& stats,
                              const mlconnector::v1::ListDeliveriesResponse& recent,
                              absl::Time now);
// `mlc stats`: one row per connection, then the journal's size and retention.
std::string RenderStats(const mlconnector::v1::GetStatsResponse& response, absl::Time now);
// `mlc check`: one row per step, the fix of every failed or warning step, and a
// verdict line.
std::string RenderCheck(const mlconnector::v1::CheckConnectionResponse& response);

}  // namespace mlc::cli
