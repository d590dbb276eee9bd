// `modernbert` — one binary, git-style subcommands (see src/cli/command.h).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cli/command.h"
#include "kernels/cpu/isa.h"
#include "modernbert/distributed.h"
#include "modernbert/error.h"

namespace modernbert::cli {
std::vector<Command>& command_registry() {
  static std::vector<Command> registry;
  return registry;
}
}  // namespace modernbert::cli

namespace {
void print_help() {
  auto cmds = modernbert::cli::command_registry();
  std::sort(cmds.begin(), cmds.end(), [](auto& a, auto& b) { return a.name < b.name; });
  std::printf(
      "modernbert — ModernBERT in C++: inference, training, tokenizer, tools\n\n"
      "usage: modernbert SUBCOMMAND [FLAGS]\n       modernbert SUBCOMMAND --help\n\nsubcommands:\n");
  for (const auto& c : cmds) std::printf("  %-16s %s\n", c.name.c_str(), c.summary.c_str());
}
}  // namespace

int main(int argc, char** argv) {
  // Already ran from a static constructor before any other initialiser; calling it here also keeps
  // the check linked into the binary.
  modernbert::kernels::require_compiled_isa();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    print_help();
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "--version")) {
    char isa[512];
    modernbert::kernels::compiled_isa_names(isa, sizeof isa);
    std::printf("modernbert 0.1.0\ncompiled for: %s\n", isa);
    return 0;
  }
  for (const auto& c : modernbert::cli::command_registry()) {
    if (c.name == argv[1]) {
      try {
        return c.run(argc - 1, argv + 1);
      } catch (const std::exception& e) {
        // One rank of an MPI job: end every rank (a lone survivor would wait in its next collective).
        if (modernbert::mpi_built_in() && modernbert::launched_by_mpi() && modernbert::launcher_world_size() > 1) {
          modernbert::Communicator* world = nullptr;
          try {
            world = &modernbert::open_world();
          } catch (const std::exception&) {  // MPI itself failed to start: report the first error below
          }
          if (world) world->abort(std::string("modernbert ") + argv[1] + ": error: " + e.what(), 1);
        }
        std::fprintf(stderr, "modernbert %s: error: %s\n", argv[1], e.what());
        return 1;
      }
    }
  }
  std::fprintf(stderr, "modernbert: unknown subcommand '%s' (see 'modernbert --help')\n", argv[1]);
  return 2;
}
