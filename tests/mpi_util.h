// Running commands under Open MPI's launcher in tests (#16): loopback only, as root in CI.
#pragma once

#include <string>

namespace mb_test {

// "mpirun ... -np N " (a prefix for a command line). --oversubscribe: N may exceed the cores;
// --allow-run-as-root: CI runs as root; the single-copy (CMA) path is off because containers
// often forbid ptrace between processes; -x passes the environment the tests set.
inline std::string mpirun(int n) {
  return "OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_rmaps_base_oversubscribe=1 "
         "mpirun --allow-run-as-root --oversubscribe --bind-to none -np " +
         std::to_string(n) + " ";
}

}  // namespace mb_test
