// See world_flags.h.
#include "cli/world_flags.h"

#include <algorithm>
#include <thread>

#include "kernels/backend.h"
#include "modernbert/distributed.h"
#include "modernbert/error.h"

namespace modernbert::cli {

void add_world_flags(ArgParser& a) {
  a.option("comm-timeout", "SECONDS",
           "MPI runs: abort the whole job when a rank waits longer than this for the others (0 = never)", "600");
}

Communicator& open_command_world(const ArgParser& a) {
  const double timeout = a.get_double("comm-timeout");
  if (!(timeout >= 0) || timeout > 1e7) throw Error("--comm-timeout must be in [0, 1e7] seconds");
  WorldOptions wo;
  wo.timeout_seconds = timeout;
  Communicator& world = open_world(wo);
  world.set_timeout_seconds(timeout);
  if (world.size() > 1 && !a.has("threads")) {
    const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    kernels::set_num_threads(std::max(1, cores / std::max(1, world_local_size())));
  }
  return world;
}

}  // namespace modernbert::cli
