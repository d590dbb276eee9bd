// safetensors: bit-exact round trips per dtype and every malformed-file case with its error.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "modernbert/error.h"
#include "modernbert/safetensors.h"
#include "test_util.h"

using namespace modernbert;

namespace {

std::string make_file(const std::string& header, const std::string& data) {
  std::string out;
  uint64_t n = header.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  out += header;
  out += data;
  return out;
}

// Expects from_memory() to throw an error containing every fragment.
void expect_error(const std::string& bytes, std::initializer_list<const char*> fragments) {
  try {
    SafeTensorsFile::from_memory(bytes.data(), bytes.size(), "bad.safetensors");
    FAIL() << "no error for malformed file; expected: " << *fragments.begin();
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("bad.safetensors"), std::string::npos) << msg;
    for (const char* f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "missing '" << f << "' in: " << msg;
  }
}

}  // namespace

TEST(SafeTensors, RoundTripEveryDtypeBitExact) {
  mbtest::TempDir tmp("st");
  std::mt19937 rng(1);
  SafeTensorsWriter w;
  w.set_metadata("format", "pt");
  w.set_metadata("note", "round trip");
  std::map<std::string, std::string> raw;  // name -> bytes written
  struct Case { const char* name; DType t; std::vector<int64_t> shape; };
  std::vector<Case> cases = {{"f64", DType::kF64, {3, 5}}, {"f32", DType::kF32, {7, 3}}, {"f16", DType::kF16, {11}},
                             {"bf16", DType::kBF16, {2, 2, 3}}, {"i64", DType::kI64, {4}}, {"i32", DType::kI32, {5}},
                             {"i16", DType::kI16, {6}}, {"i8", DType::kI8, {7}}, {"u8", DType::kU8, {9}},
                             {"bool", DType::kBool, {3}}, {"scalar", DType::kF32, {}}, {"empty", DType::kF32, {0, 4}}};
  for (const auto& c : cases) {
    int64_t n = 1;
    for (auto d : c.shape) n *= d;
    std::string bytes(static_cast<size_t>(n) * dtype_size(c.t), '\0');
    for (auto& b : bytes) b = static_cast<char>(rng());
    if (c.t == DType::kBool)
      for (auto& b : bytes) b = static_cast<char>(b & 1);
    w.add(c.name, c.t, c.shape, bytes.data());
    raw[c.name] = bytes;
  }
  std::string path = tmp / "rt.safetensors";
  w.write(path);
  auto f = SafeTensorsFile::open(path);
  ASSERT_EQ(f->tensors().size(), cases.size());
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->metadata().at("note"), "round trip");
  for (const auto& c : cases) {
    const TensorInfo& t = f->at(c.name);
    EXPECT_EQ(t.dtype, c.t) << c.name;
    EXPECT_EQ(t.shape, c.shape) << c.name;
    ASSERT_EQ(t.end - t.begin, raw[c.name].size());
    EXPECT_EQ(0, std::memcmp(f->data(t), raw[c.name].data(), raw[c.name].size())) << c.name;
  }
  // Tensors come back in file order, and F32 data is usable in place (8-byte aligned data area).
  EXPECT_EQ(f->tensors()[0].name, "f64");
  EXPECT_NE(f->f32_in_place(f->at("f32")), nullptr);
  // Writing what we read gives the identical file.
  SafeTensorsWriter w2;
  w2.set_metadata("format", "pt");
  w2.set_metadata("note", "round trip");
  for (const auto& t : f->tensors()) w2.add(t.name, t.dtype, t.shape, f->data(t));
  EXPECT_EQ(w2.serialize(), mbtest::run_command("cat " + path).output);
}

TEST(SafeTensors, FloatConversionsOnLoad) {
  mbtest::TempDir tmp("stconv");
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -2.5f, 3.14159265f, 65504.0f, 1e-5f, 6.0e-8f, -1e-3f, 123.456f};
  SafeTensorsWriter w;
  w.add_f32("a32", {10}, v.data(), DType::kF32);
  w.add_f32("a16", {10}, v.data(), DType::kF16);
  w.add_f32("ab16", {10}, v.data(), DType::kBF16);
  w.write(tmp / "c.safetensors");
  auto f = SafeTensorsFile::open(tmp / "c.safetensors");
  auto a32 = f->to_f32("a32"), a16 = f->to_f32("a16"), ab16 = f->to_f32("ab16");
  for (size_t i = 0; i < v.size(); ++i) {
    EXPECT_EQ(a32[i], v[i]);
    // f16: 11 significant bits (relative 2^-11), subnormals absolute 2^-25.
    EXPECT_LE(std::fabs(a16[i] - v[i]), std::max(std::fabs(v[i]) * 4.9e-4f, 3e-8f)) << v[i];
    EXPECT_LE(std::fabs(ab16[i] - v[i]), std::fabs(v[i]) * 3.91e-3f) << v[i];
  }
  // Exhaustive: every finite half converts to float and back to the same bits.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if (((h >> 10) & 0x1f) == 0x1f) continue;
    ASSERT_EQ(f32_to_f16(f16_to_f32(static_cast<uint16_t>(h))), h) << h;
  }
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if (((h >> 7) & 0xff) == 0xff) continue;
    ASSERT_EQ(f32_to_bf16(bf16_to_f32(static_cast<uint16_t>(h))), h) << h;
  }
  // Round to nearest even at the halfway point.
  EXPECT_EQ(f32_to_bf16(bf16_to_f32(0x3f80) + std::ldexp(1.0f, -8)), 0x3f80);  // tie -> even (down)
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
}

TEST(SafeTensors, IntegerReadRejectsFloat) {
  mbtest::TempDir tmp("stint");
  std::vector<int64_t> ids = {1, -2, 50283};
  float x = 1.0f;
  SafeTensorsWriter w;
  w.add_i64("ids", {3}, ids.data());
  w.add_f32("x", {1}, &x);
  w.write(tmp / "i.safetensors");
  auto f = SafeTensorsFile::open(tmp / "i.safetensors");
  EXPECT_EQ(f->to_i64("ids"), ids);
  EXPECT_THROW(f->to_i64("x"), Error);
  EXPECT_THROW(f->at("nope"), Error);
}

TEST(SafeTensors, MalformedHeaderLength) {
  expect_error(std::string("\x01\x02", 2), {"shorter than the 8-byte header length"});
  expect_error(make_file("{}", "").substr(0, 8) + "{", {"runs past the end"});
  std::string huge(8, '\0');
  uint64_t n = 200ull << 20;
  std::memcpy(huge.data(), &n, 8);
  expect_error(huge, {"exceeds the 100 MiB limit"});
}

TEST(SafeTensors, MalformedJson) {
  expect_error(make_file("{\"a\": ", ""), {"not valid JSON"});
  expect_error(make_file("[1,2]", ""), {"not a JSON object"});
  expect_error(make_file("{\"__metadata__\": {\"k\": 1}}", ""), {"__metadata__", "not a string"});
}

TEST(SafeTensors, MalformedTensorEntries) {
  std::string data(16, '\0');
  expect_error(make_file(R"({"w": {"dtype": "F8", "shape": [4], "data_offsets": [0, 4]}})", data), {"tensor 'w'", "unknown dtype 'F8'"});
  expect_error(make_file(R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}})", data), {"tensor 'w'", "needs 12"});
  expect_error(make_file(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}})", data), {"tensor 'w'", "outside the data area"});
  expect_error(make_file(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [16, 0]}})", data), {"tensor 'w'", "end < begin"});
  expect_error(make_file(R"({"w": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 16]}})", data), {"tensor 'w'", "negative"});
  expect_error(make_file(R"({"w": {"dtype": "F32", "data_offsets": [0, 16]}})", data), {"tensor 'w'", "shape"});
  expect_error(make_file(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0]}})", data), {"tensor 'w'", "data_offsets"});
  expect_error(make_file(R"({"w": [1]})", data), {"tensor 'w'", "not an object"});
  expect_error(make_file(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16], "x": 1}})", data), {"tensor 'w'", "unexpected field"});
}

TEST(SafeTensors, OverlapAndDuplicates) {
  std::string data(16, '\0');
  expect_error(make_file(R"({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
                             "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", data),
               {"overlaps"});
  expect_error(make_file(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                             "a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})", data),
               {"duplicate tensor name 'a'"});
  // Listed out of order in the header but disjoint: accepted, returned in offset order.
  std::string ok = make_file(R"({"b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]},
                                 "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", data);
  auto f = SafeTensorsFile::from_memory(ok.data(), ok.size(), "ok");
  EXPECT_EQ(f->tensors()[0].name, "a");
}

TEST(SafeTensors, TruncatedFileFromDisk) {
  mbtest::TempDir tmp("sttrunc");
  std::vector<float> v(100, 1.0f);
  SafeTensorsWriter w;
  w.add_f32("v", {100}, v.data());
  std::string bytes = w.serialize();
  std::ofstream(tmp / "t.safetensors", std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size() - 10));
  try {
    SafeTensorsFile::open(tmp / "t.safetensors");
    FAIL() << "truncated file accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("t.safetensors"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("tensor 'v'"), std::string::npos) << e.what();
  }
  EXPECT_THROW(SafeTensorsFile::open(tmp / "missing.safetensors"), Error);
  EXPECT_THROW(SafeTensorsFile::open(tmp.path()), Error);
}

// Names in `dir` other than `keep`.
std::vector<std::string> others_in(const std::string& dir, const std::string& keep) {
  std::vector<std::string> v;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename() != keep) v.push_back(e.path().filename().string());
  return v;
}

// `path` still holds the complete file written first (10 x 2.0f).
void expect_old_file(const std::string& path) {
  try {
    auto f = SafeTensorsFile::open(path);
    ASSERT_NE(f->find("v"), nullptr);
    EXPECT_EQ(f->to_f32("v"), std::vector<float>(10, 2.0f)) << path << " is not the file written first";
  } catch (const Error& e) {
    ADD_FAILURE() << path << " was damaged by the interrupted or failed write: " << e.what();
  }
}

TEST(SafeTensors, AtomicWriteLeavesNoPartialFile) {
  mbtest::TempDir tmp("statomic");
  std::vector<float> v(10, 2.0f);
  SafeTensorsWriter w;
  w.add_f32("v", {10}, v.data());
  w.write(tmp / "a.safetensors");

  // 1. A write killed (SIGKILL) while its bytes are going out: the target still holds the old,
  //    complete file. A child process overwrites a.safetensors with 128 MiB; this process waits
  //    until the temp file beside it has some but not all of its bytes, then kills the child.
  {
    const int64_t n = 32ll << 20;
    SafeTensorsWriter big;
    {
      std::vector<float> data(static_cast<size_t>(n), 7.0f);
      big.add_f32("v", {n}, data.data());
    }
    const uint64_t full = static_cast<uint64_t>(n) * 4;
    pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      try {
        big.write(tmp / "a.safetensors");
      } catch (...) {
        _exit(2);
      }
      _exit(0);
    }
    // In progress = a temp file beside the target holds some but not all bytes, or (a writer that
    // is not atomic) the target itself changed size.
    const auto old_size = std::filesystem::file_size(tmp / "a.safetensors");
    bool caught = false;
    std::string partial;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!caught && std::chrono::steady_clock::now() < deadline) {
      std::error_code ec;
      auto target_size = std::filesystem::file_size(tmp / "a.safetensors", ec);
      if (ec || target_size != old_size) {
        kill(child, SIGKILL);
        caught = true;
        break;
      }
      for (const auto& name : others_in(tmp.path(), "a.safetensors")) {
        auto sz = std::filesystem::file_size(tmp / name, ec);
        if (!ec && sz > 0 && sz < full) {
          kill(child, SIGKILL);
          caught = true;
          partial = name;
          break;
        }
      }
      if (!caught) usleep(100);
    }
    if (!caught) kill(child, SIGKILL);
    int st = 0;
    waitpid(child, &st, 0);
    ASSERT_TRUE(caught) << "the 128 MiB write finished before it could be interrupted (child status " << st << ")";
    ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) << "child was not killed mid-write: " << st;
    expect_old_file(tmp / "a.safetensors");
    // SIGKILL leaves the killed writer's temp file (nothing can run at SIGKILL), under its own
    // name, never under the target's.
    ASSERT_FALSE(partial.empty()) << "no temp file was seen while the target was being written";
    auto left = others_in(tmp.path(), "a.safetensors");
    ASSERT_EQ(left.size(), 1u);
    EXPECT_EQ(left[0], partial);
    EXPECT_LT(std::filesystem::file_size(tmp / partial), full);
    std::filesystem::remove(tmp / partial);
  }

  // 2. Writes that fail (no such directory; rename onto a non-empty directory, which fails after
  //    all the bytes are out) throw naming the path, change nothing and leave no temp file.
  EXPECT_THROW(w.write(tmp / "nodir/a.safetensors"), Error);
  std::filesystem::create_directory(tmp / "adir");
  std::ofstream(tmp / "adir/keep") << "x";
  try {
    w.write(tmp / "adir");
    ADD_FAILURE() << "write over a non-empty directory succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("adir"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(std::filesystem::is_directory(tmp / "adir"));
  EXPECT_TRUE(std::filesystem::exists(tmp / "adir/keep"));
  auto left = others_in(tmp.path(), "a.safetensors");
  EXPECT_EQ(left, std::vector<std::string>{"adir"}) << "a temp file was left behind";
  expect_old_file(tmp / "a.safetensors");
  EXPECT_THROW(w.add_f32("v", {10}, v.data()), Error);  // duplicate name
}
