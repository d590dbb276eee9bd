// A program that uses the installed library (tests/package/test_install.sh builds it against the
// installed CMake package and with pkg-config, shared and static): the tokenizer of a model
// directory, and a modernbert::Error thrown inside the library and caught here (its typeinfo must
// cross the shared library's boundary).
//   consumer MODEL_DIR NOT_A_MODEL_DIR TEXT   prints "ids: <id> <id> ..." and "error: <message>"
#include <cstdio>
#include <string>

#include "modernbert/error.h"
#include "modernbert/inference.h"
#include "modernbert/tokenizer.h"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: consumer MODEL_DIR NOT_A_MODEL_DIR TEXT\n");
    return 2;
  }
  try {
    auto tok = modernbert::Tokenizer::from_file(std::string(argv[1]) + "/tokenizer.json");
    std::printf("ids:");
    for (int32_t id : tok.encode(argv[3]).ids) std::printf(" %d", static_cast<int>(id));
    std::printf("\n");
  } catch (const modernbert::Error& e) {
    std::fprintf(stderr, "tokenizer failed: %s\n", e.what());
    return 1;
  }
  try {
    modernbert::Model m(argv[2]);
    std::printf("loaded a model from %s\n", argv[2]);
    return 1;
  } catch (const modernbert::Error& e) {
    std::printf("error: %s\n", e.what());
  }
  return 0;
}
