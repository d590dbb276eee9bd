// Subcommand registry for the `modernbert` binary. Each src/cli/cmd_*.cpp defines one command and
// registers it with a static CommandRegistrar, so adding a command touches no other file.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace modernbert::cli {

struct Command {
  std::string name;
  std::string summary;  // one line for `modernbert --help`
  // argv[0] is the subcommand name; the rest are its arguments. Returns the process exit code.
  std::function<int(int argc, char** argv)> run;
};

std::vector<Command>& command_registry();

struct CommandRegistrar {
  explicit CommandRegistrar(Command c) { command_registry().push_back(std::move(c)); }
};

}  // namespace modernbert::cli
