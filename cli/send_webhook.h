// `mlc send-webhook`: signs a FreshBooks-style webhook exactly as FreshBooks does and
// POSTs it, so users can test their own deployment end to end. It talks to ingress
// over HTTP, not to the writer, so it takes its own flags (none of the global ones).
// Stateless; safe to call from any thread with distinct CliEnvs.
#pragma once

#include <string>
#include <vector>

#include "cli/cli_env.h"

namespace mlc::cli {

// The command's usage text (also part of `mlc help`).
extern const char kSendWebhookUsage[];

// `args` are the arguments after "send-webhook". Exit status: 0 when the answer is
// 2xx, 1 otherwise, 2 for usage errors.
int SendWebhook(const std::vector<std::string>& args, const CliEnv& env);

}  // namespace mlc::cli
