// src/dist/world.cpp compiled WITHOUT MB_HAVE_MPI (the build with -DMODERNBERT_MPI=OFF or no MPI
// found, issue #16 point 4), linked with the core layer only: the world is the single process, and
// a process that an MPI launcher started as one of several ranks gets an Error naming the build
// option instead of silently running as N unrelated copies.
//
//   world_no_mpi plain      launcher variables are set and cleared here, around each check
//   world_no_mpi launched   started by a real `mpirun -np 2` (CTest mpi.no_mpi_under_mpirun)
//
// Prints "world_no_mpi: ok" and exits 0 when every check holds.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "modernbert/communicator.h"
#include "modernbert/distributed.h"
#include "modernbert/error.h"

namespace {

int g_failures = 0;
void check(bool ok, const std::string& what) {
  if (ok) return;
  ++g_failures;
  std::fprintf(stderr, "world_no_mpi: FAIL %s\n", what.c_str());
}

const char* const kLauncherVars[] = {
    "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "SLURM_NTASKS"};

// open_world() must throw a modernbert::Error that names the build option and the world size.
void expect_refusal(const std::string& when, int size) {
  try {
    modernbert::open_world();
    check(false, when + ": open_world() did not throw");
  } catch (const modernbert::Error& e) {
    const std::string m = e.what();
    check(m.find("MODERNBERT_MPI") != std::string::npos, when + ": the error does not name MODERNBERT_MPI: " + m);
    check(m.find("one of " + std::to_string(size) + " ranks") != std::string::npos,
          when + ": the error does not name the world size " + std::to_string(size) + ": " + m);
  } catch (const std::exception& e) {
    check(false, when + ": open_world() threw something other than modernbert::Error: " + e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  check(!modernbert::mpi_built_in(), "mpi_built_in() is true without MB_HAVE_MPI");
  if (mode == "plain") {
    for (const char* v : kLauncherVars) unsetenv(v);
    check(!modernbert::launched_by_mpi(), "launched_by_mpi() without launcher variables");
    check(modernbert::launcher_world_size() == 1, "launcher_world_size() without a launcher");
    modernbert::Communicator& w = modernbert::open_world();
    check(&w == &modernbert::single_process(), "open_world() is not single_process() without a launcher");
    check(w.rank() == 0 && w.size() == 1 && w.description() == "single process", "the single process's identity");
    float x[3] = {1, 2, 3};
    w.allreduce_sum(x, 3);
    check(x[0] == 1 && x[1] == 2 && x[2] == 3, "the single process's allreduce_sum changed its data");
    check(modernbert::world_local_size() == 1, "world_local_size() without MPI");
    // Open MPI's and PMI's variables announcing 2 or 3 ranks.
    setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    check(modernbert::launched_by_mpi() && modernbert::launcher_world_size() == 2, "OMPI_COMM_WORLD_SIZE=2 not seen");
    expect_refusal("OMPI_COMM_WORLD_SIZE=2", 2);
    unsetenv("OMPI_COMM_WORLD_SIZE");
    setenv("PMI_RANK", "0", 1);
    setenv("PMI_SIZE", "3", 1);
    expect_refusal("PMI_SIZE=3", 3);
    // A launcher that starts one rank: that is the single process.
    setenv("PMI_SIZE", "1", 1);
    check(&modernbert::open_world() == &modernbert::single_process(),
          "a launcher's single rank is not single_process()");
    unsetenv("PMI_RANK");
    unsetenv("PMI_SIZE");
  } else if (mode == "launched") {
    check(modernbert::launched_by_mpi(), "launched_by_mpi() is false under mpirun");
    const char* n = std::getenv("OMPI_COMM_WORLD_SIZE");
    const int size = n ? std::atoi(n) : 0;
    check(size > 1, "run this mode under mpirun -np 2 or more");
    if (size > 1) expect_refusal("under mpirun", size);
  } else {
    std::fprintf(stderr, "usage: world_no_mpi plain | launched\n");
    return 2;
  }
  if (g_failures == 0) std::printf("world_no_mpi: ok (%s)\n", mode.c_str());
  return g_failures == 0 ? 0 : 1;
}
