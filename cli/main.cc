// mlc: the operator command line (DESIGN.md §3.1). Everything it does lives in
// cli_lib (cli/commands.h); main only hands it the arguments and the real world.
#include <iostream>
#include <string>
#include <vector>

#include "cli/cli_env.h"
#include "cli/commands.h"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  const mlc::cli::CliEnv env;
  const int status = mlc::cli::RunMlc(args, env);
  std::cout.flush();
  return status;
}
