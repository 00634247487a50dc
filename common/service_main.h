// What both binaries' main() do before and after their service runs: parse
// `--config FILE` (or MLC_CONFIG), set up logging, block the shutdown signals
// before any thread starts, load the config, and wait for SIGTERM/SIGINT.
#pragma once

#include <optional>

#include "common/config.h"

namespace mlc {

// Parses flags, initialises logging as `service`, blocks SIGTERM/SIGINT (main
// waits for them with WaitForShutdownSignal) and ignores SIGPIPE, then loads the
// config for `role`. On failure prints usage or logs the error and returns the
// exit code to use in `*exit_code`.
std::optional<Config> InitService(int argc, char** argv, const char* service, ConfigRole role,
                                  int* exit_code);

// Blocks until SIGTERM or SIGINT; logs which.
void WaitForShutdownSignal(const char* what_happens_next);

}  // namespace mlc
