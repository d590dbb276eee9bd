// The data-parallel world of a command (#16): `mpirun -np N modernbert pretrain|finetune|embed`.
#pragma once

#include "cli/args.h"
#include "modernbert/communicator.h"

namespace modernbert::cli {

// --comm-timeout SECONDS (a collective that waits longer aborts the job; default 600, 0 = never).
void add_world_flags(ArgParser& a);

// Opens the job's world (distributed.h: MPI under a launcher, else the single process). Without
// --threads, each rank of an MPI job uses cores / (ranks on this host) compute threads (at least 1),
// so that `mpirun -np 2` on 2 cores runs 2 × 1 threads instead of oversubscribing.
Communicator& open_command_world(const ArgParser& a);

}  // namespace modernbert::cli
