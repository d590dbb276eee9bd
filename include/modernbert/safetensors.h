// safetensors read/write (https://huggingface.co/docs/safetensors format):
//   [u64 little-endian N][N bytes JSON header][data area]
// header: {"__metadata__": {str: str}, NAME: {"dtype", "shape", "data_offsets": [begin, end]}, ...}
// with offsets relative to the start of the data area.
//
// The reader mmaps the file and validates the whole header before any tensor is used; tensors whose
// dtype is already F32 are used in place (zero copy), others are converted on request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace modernbert {

enum class DType { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU64, kU32, kU16, kU8, kBool };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // "F32", "BF16", ...
bool parse_dtype(const std::string& s, DType* out);

// IEEE half / bfloat16 conversions (round-to-nearest-even on the way down).
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range inside the data area
  int64_t numel() const;
};

class SafeTensorsFile {
 public:
  // Opens, mmaps and validates; throws modernbert::Error naming the file (and tensor) on any problem:
  // header length beyond the file or above 100 MiB, invalid JSON, unknown dtype, shape x dtype size
  // != byte range, offsets outside the data area, overlapping/out-of-order ranges, duplicate names.
  static std::unique_ptr<SafeTensorsFile> open(const std::string& path);
  // Same validation over an in-memory buffer (used by tests and fuzzing); the buffer must outlive
  // the object.
  static std::unique_ptr<SafeTensorsFile> from_memory(const void* data, size_t size, const std::string& label);
  ~SafeTensorsFile();
  SafeTensorsFile(const SafeTensorsFile&) = delete;
  SafeTensorsFile& operator=(const SafeTensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in file order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* find(const std::string& name) const;  // nullptr if absent
  const TensorInfo& at(const std::string& name) const;    // throws naming the tensor

  // Raw bytes of a tensor inside the mapping.
  const uint8_t* data(const TensorInfo& t) const { return data_area_ + t.begin; }
  // Pointer to F32 data in place, or nullptr if the tensor is not F32 or not 4-byte aligned.
  const float* f32_in_place(const TensorInfo& t) const;
  // Converts any float or integer dtype to float32 into `out` (numel floats).
  void to_f32(const TensorInfo& t, float* out) const;
  std::vector<float> to_f32(const std::string& name) const;
  // Integer tensors (I64/I32/...) as int64.
  std::vector<int64_t> to_i64(const std::string& name) const;
  // Drops the pages holding t's bytes (rounded out to whole pages) from this process's memory
  // (madvise MADV_DONTNEED on the read-only file mapping: touched again, they are re-read from the
  // file). A loader that has converted a tensor calls it so the source pages do not stay resident.
  // No-op for from_memory files.
  void release(const TensorInfo& t) const;

 private:
  SafeTensorsFile() = default;
  void parse(const std::string& label);
  std::string path_;
  void* map_ = nullptr;
  size_t map_size_ = 0;
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  const uint8_t* data_area_ = nullptr;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// Collects tensors and writes one safetensors file atomically: temp file in the same directory,
// fsync, rename. Tensors are written in the order added (names must be unique).
//
// add()/add_f32()/add_i64() copy the data now; the *_view variants only keep a pointer, so that a
// large output (encode's mlm_logits) is streamed from the caller's buffer without any full copy:
// write() and write_to() send the header first, then each tensor's bytes straight from where they
// are. A viewed buffer must stay alive and unchanged until the last write/serialize call.
class SafeTensorsWriter {
 public:
  void set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  // Copies `bytes` (numel * dtype_size) now.
  void add(const std::string& name, DType dtype, const std::vector<int64_t>& shape, const void* bytes);
  // Converts float32 data to `dtype` (F32, F16 or BF16) now.
  void add_f32(const std::string& name, const std::vector<int64_t>& shape, const float* data,
               DType dtype = DType::kF32);
  void add_i64(const std::string& name, const std::vector<int64_t>& shape, const int64_t* data);
  // No copy: `bytes` is read when the file is written.
  void add_view(const std::string& name, DType dtype, const std::vector<int64_t>& shape, const void* bytes);
  void add_f32_view(const std::string& name, const std::vector<int64_t>& shape, const float* data) {
    add_view(name, DType::kF32, shape, data);
  }
  void add_i64_view(const std::string& name, const std::vector<int64_t>& shape, const int64_t* data) {
    add_view(name, DType::kI64, shape, data);
  }
  // Streams the file atomically to `path` (AtomicOutputFile, file_io.h): no serialised copy in memory.
  void write(const std::string& path) const;
  // Streams the file's bytes through `sink` (header, then each tensor in order).
  void write_to(const std::function<void(const void*, size_t)>& sink) const;
  // The exact bytes write() would put in the file.
  std::string serialize() const;
  uint64_t file_size() const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::string owned;           // the bytes, when copied
    const void* view = nullptr;  // the bytes, when viewed
    uint64_t size = 0;           // bytes
    const void* data() const { return view ? view : owned.data(); }
  };
  Entry& new_entry(const std::string& name, DType dtype, const std::vector<int64_t>& shape);
  std::string header() const;  // the length prefix and padded JSON header
  std::vector<Entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace modernbert
