#include "modernbert/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "modernbert/error.h"
#include "modernbert/file_io.h"

namespace modernbert {

namespace {
constexpr uint64_t kMaxHeader = 100ull << 20;  // 100 MiB, as the reference implementation

struct DTypeName {
  DType t;
  const char* name;
  size_t size;
};
constexpr DTypeName kDTypes[] = {
    {DType::kF64, "F64", 8},   {DType::kF32, "F32", 4}, {DType::kF16, "F16", 2}, {DType::kBF16, "BF16", 2},
    {DType::kI64, "I64", 8},   {DType::kI32, "I32", 4}, {DType::kI16, "I16", 2}, {DType::kI8, "I8", 1},
    {DType::kU64, "U64", 8},   {DType::kU32, "U32", 4}, {DType::kU16, "U16", 2}, {DType::kU8, "U8", 1},
    {DType::kBool, "BOOL", 1},
};

template <typename T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // x86-64 is little-endian, as the format
  return v;
}
}  // namespace

size_t dtype_size(DType t) {
  for (const auto& d : kDTypes)
    if (d.t == t) return d.size;
  return 0;
}
const char* dtype_name(DType t) {
  for (const auto& d : kDTypes)
    if (d.t == t) return d.name;
  return "?";
}
bool parse_dtype(const std::string& s, DType* out) {
  for (const auto& d : kDTypes)
    if (s == d.name) {
      *out = d.t;
      return true;
    }
  return false;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while (!(mant & 0x400));
      bits = sign | ((127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t absx = x & 0x7fffffffu;
  if (absx > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (absx < 0x38800000u) {  // result is a half subnormal (or zero): value = q * 2^-24
    if (absx < 0x33000000u) return static_cast<uint16_t>(sign);  // below 2^-25 rounds to zero
    uint32_t e = absx >> 23, m = (absx & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e;  // q = m * 2^(e-126), shift in [14, 24]
    uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) ++q;
    return static_cast<uint16_t>(sign | q);
  }
  uint32_t e = (absx >> 23) - 127 + 15, m = absx & 0x7fffff;
  uint32_t q = (e << 10) | (m >> 13), rem = m & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (q & 1))) ++q;  // may carry into exponent: correct
  return static_cast<uint16_t>(sign | q);
}

float bf16_to_f32(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t f32_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
  uint32_t rounding = 0x7fff + ((x >> 16) & 1);
  return static_cast<uint16_t>((x + rounding) >> 16);
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return n;
}

std::unique_ptr<SafeTensorsFile> SafeTensorsFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    throw Error(path + ": cannot stat: " + std::strerror(e));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw Error(path + ": is a directory, not a safetensors file");
  }
  std::unique_ptr<SafeTensorsFile> f(new SafeTensorsFile());
  f->path_ = path;
  f->size_ = static_cast<size_t>(st.st_size);
  if (f->size_ > 0) {
    void* m = ::mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      throw Error(path + ": mmap failed: " + std::strerror(e));
    }
    f->map_ = m;
    f->map_size_ = f->size_;
    f->base_ = static_cast<const uint8_t*>(m);
  }
  ::close(fd);
  f->parse(path);
  return f;
}

std::unique_ptr<SafeTensorsFile> SafeTensorsFile::from_memory(const void* data, size_t size, const std::string& label) {
  std::unique_ptr<SafeTensorsFile> f(new SafeTensorsFile());
  f->path_ = label;
  f->base_ = static_cast<const uint8_t*>(data);
  f->size_ = size;
  f->parse(label);
  return f;
}

SafeTensorsFile::~SafeTensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

void SafeTensorsFile::parse(const std::string& label) {
  auto fail = [&](const std::string& msg) { throw Error(label + ": invalid safetensors: " + msg); };
  if (size_ < 8) fail("file is " + std::to_string(size_) + " bytes, shorter than the 8-byte header length");
  uint64_t n = load_le<uint64_t>(base_);
  if (n > kMaxHeader) fail("header length " + std::to_string(n) + " exceeds the 100 MiB limit");
  if (n > size_ - 8)
    fail("header length " + std::to_string(n) + " runs past the end of the file (" + std::to_string(size_) + " bytes)");
  const char* hbeg = reinterpret_cast<const char*>(base_ + 8);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(hbeg, hbeg + n);
  } catch (const std::exception& e) {
    fail(std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail("header is not a JSON object");
  data_area_ = base_ + 8 + n;
  const uint64_t data_size = size_ - 8 - n;

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") {
      if (!it->is_object()) fail("__metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m) {
        if (!m->is_string()) fail("__metadata__ value for '" + m.key() + "' is not a string");
        metadata_[m.key()] = m->get<std::string>();
      }
      continue;
    }
    auto tfail = [&](const std::string& msg) { fail("tensor '" + name + "': " + msg); };
    const auto& v = *it;
    if (!v.is_object()) tfail("entry is not an object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) tfail("missing or non-string dtype");
    TensorInfo t;
    t.name = name;
    std::string ds = v["dtype"].get<std::string>();
    if (!parse_dtype(ds, &t.dtype)) tfail("unknown dtype '" + ds + "'");
    if (!v.contains("shape") || !v["shape"].is_array()) tfail("missing or non-array shape");
    uint64_t numel = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0) tfail("shape has a non-integer or negative dimension");
      uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && numel > std::numeric_limits<uint64_t>::max() / 8 / dim) tfail("shape overflows");
      numel *= dim;
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      tfail("data_offsets must be [begin, end]");
    for (const auto& o : v["data_offsets"])
      if (!o.is_number_integer() || o.get<int64_t>() < 0) tfail("data_offsets must be non-negative integers");
    t.begin = v["data_offsets"][0].get<uint64_t>();
    t.end = v["data_offsets"][1].get<uint64_t>();
    if (t.end < t.begin) tfail("data_offsets end < begin");
    if (t.end > data_size)
      tfail("data_offsets [" + std::to_string(t.begin) + ", " + std::to_string(t.end) + "] outside the data area of " +
            std::to_string(data_size) + " bytes");
    uint64_t expect = numel * dtype_size(t.dtype);
    if (t.end - t.begin != expect)
      tfail("byte range is " + std::to_string(t.end - t.begin) + " bytes but shape x " + ds + " needs " +
            std::to_string(expect));
    for (const auto& key : v.items())
      if (key.key() != "dtype" && key.key() != "shape" && key.key() != "data_offsets")
        tfail("unexpected field '" + key.key() + "'");
    if (index_.count(name)) fail("duplicate tensor name '" + name + "'");
    index_[name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }
  // nlohmann::json objects are key-sorted and silently merge duplicate keys, so detect duplicates
  // by counting the names in the raw header text through a SAX pass.
  struct DupCheck : nlohmann::json_sax<nlohmann::json> {
    int depth = 0;
    std::map<std::string, int> seen;
    std::string dup;
    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t) override { return true; }
    bool number_float(number_float_t, const string_t&) override { return true; }
    bool string(string_t&) override { return true; }
    bool binary(binary_t&) override { return true; }
    bool start_object(std::size_t) override {
      ++depth;
      return true;
    }
    bool key(string_t& k) override {
      if (depth == 1 && ++seen[k] == 2 && dup.empty()) dup = k;
      return true;
    }
    bool end_object() override {
      --depth;
      return true;
    }
    bool start_array(std::size_t) override { return true; }
    bool end_array() override { return true; }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
  } sax;
  nlohmann::json::sax_parse(hbeg, hbeg + n, &sax);
  if (!sax.dup.empty()) fail("duplicate tensor name '" + sax.dup + "'");

  // Ranges must tile the data area in order of their offsets without overlap. (Files written by the
  // reference implementation are contiguous; gaps are tolerated, overlaps are not.)
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(),
            [](auto* a, auto* b) { return a->begin != b->begin ? a->begin < b->begin : a->end < b->end; });
  for (size_t i = 1; i < by_offset.size(); ++i) {
    const auto* prev = by_offset[i - 1];
    const auto* cur = by_offset[i];
    if (cur->begin < prev->end)
      fail("tensor '" + cur->name + "' byte range [" + std::to_string(cur->begin) + ", " + std::to_string(cur->end) +
           ") overlaps tensor '" + prev->name + "' [" + std::to_string(prev->begin) + ", " + std::to_string(prev->end) +
           ")");
  }
  // Restore file order (the order of data offsets), which is how writers lay tensors out.
  std::sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  index_.clear();
  for (size_t i = 0; i < tensors_.size(); ++i) index_[tensors_[i].name] = i;
}

const TensorInfo* SafeTensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& SafeTensorsFile::at(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) throw Error(path_ + ": no tensor named '" + name + "'");
  return *t;
}

const float* SafeTensorsFile::f32_in_place(const TensorInfo& t) const {
  if (t.dtype != DType::kF32) return nullptr;
  const uint8_t* p = data(t);
  if (reinterpret_cast<uintptr_t>(p) % alignof(float) != 0) return nullptr;
  return reinterpret_cast<const float*>(p);
}

void SafeTensorsFile::to_f32(const TensorInfo& t, float* out) const {
  const uint8_t* p = data(t);
  const int64_t n = t.numel();
  switch (t.dtype) {
    case DType::kF32:
      std::memcpy(out, p, static_cast<size_t>(n) * 4);
      break;
    case DType::kF64:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_le<double>(p + 8 * i));
      break;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(load_le<uint16_t>(p + 2 * i));
      break;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(load_le<uint16_t>(p + 2 * i));
      break;
    case DType::kI64:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_le<int64_t>(p + 8 * i));
      break;
    case DType::kI32:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_le<int32_t>(p + 4 * i));
      break;
    case DType::kI16:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_le<int16_t>(p + 2 * i));
      break;
    case DType::kI8:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(static_cast<int8_t>(p[i]));
      break;
    case DType::kU64:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_le<uint64_t>(p + 8 * i));
      break;
    case DType::kU32:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_le<uint32_t>(p + 4 * i));
      break;
    case DType::kU16:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(load_le<uint16_t>(p + 2 * i));
      break;
    case DType::kU8:
    case DType::kBool:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(p[i]);
      break;
  }
}

std::vector<float> SafeTensorsFile::to_f32(const std::string& name) const {
  const TensorInfo& t = at(name);
  std::vector<float> out(static_cast<size_t>(t.numel()));
  to_f32(t, out.data());
  return out;
}

std::vector<int64_t> SafeTensorsFile::to_i64(const std::string& name) const {
  const TensorInfo& t = at(name);
  const uint8_t* p = data(t);
  const int64_t n = t.numel();
  std::vector<int64_t> out(static_cast<size_t>(n));
  switch (t.dtype) {
    case DType::kI64:
      for (int64_t i = 0; i < n; ++i) out[i] = load_le<int64_t>(p + 8 * i);
      break;
    case DType::kI32:
      for (int64_t i = 0; i < n; ++i) out[i] = load_le<int32_t>(p + 4 * i);
      break;
    case DType::kI16:
      for (int64_t i = 0; i < n; ++i) out[i] = load_le<int16_t>(p + 2 * i);
      break;
    case DType::kI8:
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int8_t>(p[i]);
      break;
    case DType::kU32:
      for (int64_t i = 0; i < n; ++i) out[i] = load_le<uint32_t>(p + 4 * i);
      break;
    case DType::kU16:
      for (int64_t i = 0; i < n; ++i) out[i] = load_le<uint16_t>(p + 2 * i);
      break;
    case DType::kU8:
    case DType::kBool:
      for (int64_t i = 0; i < n; ++i) out[i] = p[i];
      break;
    default:
      throw Error(path_ + ": tensor '" + name + "' has dtype " + dtype_name(t.dtype) + ", expected an integer type");
  }
  return out;
}

void SafeTensorsFile::release(const TensorInfo& t) const {
  if (!map_ || t.end <= t.begin) return;
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const uintptr_t lo = reinterpret_cast<uintptr_t>(data(t)) & ~(page - 1);
  const uintptr_t map_end = reinterpret_cast<uintptr_t>(map_) + map_size_;
  const uintptr_t hi =
      std::min(map_end, (reinterpret_cast<uintptr_t>(data(t)) + (t.end - t.begin) + page - 1) & ~(page - 1));
  if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);  // a hint: failure is harmless
}

// ---------------------------------------------------------------------------------------------
SafeTensorsWriter::Entry& SafeTensorsWriter::new_entry(const std::string& name, DType dtype,
                                                       const std::vector<int64_t>& shape) {
  if (name == "__metadata__") throw Error("safetensors writer: '__metadata__' is not a valid tensor name");
  for (const auto& e : entries_)
    if (e.name == name) throw Error("safetensors writer: duplicate tensor name '" + name + "'");
  int64_t n = 1;
  for (auto d : shape) {
    if (d < 0) throw Error("safetensors writer: tensor '" + name + "' has a negative dimension");
    n *= d;
  }
  Entry e;
  e.name = name;
  e.dtype = dtype;
  e.shape = shape;
  e.size = static_cast<uint64_t>(n) * dtype_size(dtype);
  entries_.push_back(std::move(e));
  return entries_.back();
}

void SafeTensorsWriter::add(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                            const void* bytes) {
  Entry& e = new_entry(name, dtype, shape);
  e.owned.assign(static_cast<const char*>(bytes), static_cast<size_t>(e.size));
}

void SafeTensorsWriter::add_view(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                                 const void* bytes) {
  Entry& e = new_entry(name, dtype, shape);
  e.view = e.size ? bytes : nullptr;
}

void SafeTensorsWriter::add_f32(const std::string& name, const std::vector<int64_t>& shape, const float* data,
                                DType dtype) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  if (dtype == DType::kF32) return add(name, dtype, shape, data);
  std::vector<uint16_t> tmp(static_cast<size_t>(n));
  if (dtype == DType::kF16) {
    for (int64_t i = 0; i < n; ++i) tmp[i] = f32_to_f16(data[i]);
  } else if (dtype == DType::kBF16) {
    for (int64_t i = 0; i < n; ++i) tmp[i] = f32_to_bf16(data[i]);
  } else {
    throw Error(std::string("safetensors writer: cannot store float data as ") + dtype_name(dtype));
  }
  add(name, dtype, shape, tmp.data());
}

void SafeTensorsWriter::add_i64(const std::string& name, const std::vector<int64_t>& shape, const int64_t* data) {
  add(name, DType::kI64, shape, data);
}

std::string SafeTensorsWriter::header() const {
  // Keep insertion order in the header (ordered_json) so that offsets are increasing in file order.
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!metadata_.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : metadata_) m[k] = v;
    h["__metadata__"] = m;
  }
  uint64_t off = 0;
  for (const auto& e : entries_) {
    h[e.name] = {{"dtype", dtype_name(e.dtype)}, {"shape", e.shape}, {"data_offsets", {off, off + e.size}}};
    off += e.size;
  }
  std::string header = h.dump();
  // Pad the header with spaces so the data area starts 8-byte aligned (zero-copy F32/F64 reads).
  while ((8 + header.size()) % 8 != 0) header.push_back(' ');
  std::string out;
  uint64_t n = header.size();
  out.append(reinterpret_cast<const char*>(&n), 8);
  out += header;
  return out;
}

uint64_t SafeTensorsWriter::file_size() const {
  uint64_t n = header().size();
  for (const auto& e : entries_) n += e.size;
  return n;
}

void SafeTensorsWriter::write_to(const std::function<void(const void*, size_t)>& sink) const {
  const std::string h = header();
  sink(h.data(), h.size());
  for (const auto& e : entries_)
    if (e.size) sink(e.data(), static_cast<size_t>(e.size));
}

std::string SafeTensorsWriter::serialize() const {
  std::string out;
  out.reserve(static_cast<size_t>(file_size()));
  write_to([&](const void* p, size_t n) { out.append(static_cast<const char*>(p), n); });
  return out;
}

void SafeTensorsWriter::write(const std::string& path) const {
  AtomicOutputFile f(path);
  write_to([&](const void* p, size_t n) { f.write(p, n); });
  f.commit();
}

}  // namespace modernbert
