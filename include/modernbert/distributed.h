// The world of a job started by an MPI launcher (#16): `mpirun -np N modernbert pretrain ...`.
// This is the only part of the project that uses MPI (Open MPI from Debian; any MPI-3 library
// builds it). The rest of the code sees modernbert::Communicator (communicator.h).
//
// Built without MPI (CMake option MODERNBERT_MPI=OFF, or no MPI found), open_world() returns the
// single process, and a process that an MPI launcher started as one of several ranks gets an Error
// naming the build option instead of silently training N unrelated copies.
#pragma once

#include <string>

#include "modernbert/communicator.h"

namespace modernbert {

// Whether this binary was built with MPI support.
bool mpi_built_in();

// Whether an MPI launcher started this process (mpirun / mpiexec / srun set OMPI_COMM_WORLD_SIZE,
// PMIX_RANK, PMI_RANK or PMI_SIZE), and the world size it announces (1 when none or unknown).
bool launched_by_mpi();
int launcher_world_size();

struct WorldOptions {
  // A collective that waits longer than this for its peers aborts the job (0 = wait forever).
  double timeout_seconds = 600;
};

// The job's world, created once per process and kept until exit: under an MPI launcher,
// MPI_Init_thread (FUNNELED) + a private duplicate of MPI_COMM_WORLD, with a SIGTERM handler that
// names the rank when the launcher ends the job; otherwise single_process(). A launcher that starts
// one rank (-np 1) gives an MPI world of one, whose collectives return at once. Only the thread that
// opened the world may use it. MPI_Finalize runs at exit (an atexit handler): it waits until every
// rank has reached it, so a rank that finishes early waits there for the others (a rank that fails
// meanwhile still ends the job through abort()).
Communicator& open_world(const WorldOptions& options = {});

// Ranks of this job on this host (for the default thread count: cores / local ranks); 1 without MPI.
int world_local_size();

}  // namespace modernbert
