// The start-up ISA check: the message names exactly the compiled-for extensions the CPU lacks, and
// a binary started on such a CPU exits 1 with it instead of dying of SIGILL.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "kernels/cpu/isa.h"
#include "test_util.h"

using modernbert::kernels::IsaRequirement;

TEST(Isa, MessageNamesOnlyCompiledExtensionsThatAreMissing) {
  const IsaRequirement reqs[] = {{"avx2", true, true},
                                 {"avx512f", true, false},
                                 {"avx512bw", true, false},
                                 {"amx_tile", false, false},  // not compiled for: not required
                                 {"fma", false, true}};
  char buf[1024];
  EXPECT_EQ(modernbert::kernels::format_missing_isa(reqs, 5, buf, sizeof buf), 2);
  const std::string msg = buf;
  EXPECT_NE(msg.find("lacks instructions this binary was compiled for: avx512f, avx512bw."), std::string::npos) << msg;
  EXPECT_EQ(msg.find("amx_tile"), std::string::npos) << msg;
  EXPECT_EQ(msg.find("avx2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("-DMODERNBERT_NATIVE=OFF"), std::string::npos) << msg;
  // Nothing missing: nothing written. A tiny buffer stays NUL-terminated.
  const IsaRequirement ok[] = {{"avx2", true, true}};
  EXPECT_EQ(modernbert::kernels::format_missing_isa(ok, 1, buf, sizeof buf), 0);
  EXPECT_STREQ(buf, "");
  char small[8];
  EXPECT_EQ(modernbert::kernels::format_missing_isa(reqs, 5, small, sizeof small), 2);
  EXPECT_EQ(std::string(small).size(), 7u);
}

TEST(Isa, ThisCpuRunsThisBinaryAndAvx2IsCompiledIn) {
  IsaRequirement reqs[modernbert::kernels::kMaxIsaRequirements];
  const int n = modernbert::kernels::isa_requirements(reqs);
  bool avx2 = false;
  for (int k = 0; k < n; ++k) {
    if (reqs[k].compiled) {
      EXPECT_TRUE(reqs[k].present) << reqs[k].name;
    }
    if (std::string(reqs[k].name) == "avx2") avx2 = reqs[k].compiled;
  }
  EXPECT_TRUE(avx2) << "the kernels' baseline (native or x86-64-v3) includes AVX2";
}

TEST(Isa, BinaryOnACpuWithoutItsExtensionsExitsWithAClearError) {
  // The test hook hides AVX2 from the check, as on a CPU without it.
  auto r = mbtest::run_command("MODERNBERT_TEST_HIDE_CPU_FEATURES=sse4_2,avx2 " + mbtest::cli() + " --version");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("this CPU lacks instructions this binary was compiled for: sse4_2, avx2"), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("modernbert 0.1.0"), std::string::npos) << "ran past the check";
  r = mbtest::run_command(mbtest::cli() + " --version");
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("compiled for: "), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("avx2"), std::string::npos) << r.output;
}
