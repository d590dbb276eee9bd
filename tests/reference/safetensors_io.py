"""Pure-python safetensors reader/writer (numpy + torch), independent of the C++ code.

File format (https://huggingface.co/docs/safetensors):

    [8 bytes]  N = header length, unsigned 64-bit little endian
    [N bytes]  JSON object, UTF-8:
                 {"<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
                  "__metadata__": {"<str>": "<str>", ...}}            (__metadata__ optional)
               offsets are relative to the start of the data area; may be padded with trailing spaces
    [rest]     data area: raw little-endian tensor bytes, row-major (C order)

Supported dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL. BF16 has no numpy type: it is read as int16 and
viewed as torch.bfloat16 (and written the same way in reverse).

API
    load(path)               -> (OrderedDict[name -> torch.Tensor], metadata dict or None)
    load_numpy(path)         -> (OrderedDict[name -> np.ndarray], metadata)   (BF16 returned as float32)
    read_header(path)        -> (OrderedDict header without __metadata__, metadata, data_start)
    save(tensors, path, metadata=None)
                             tensors: mapping name -> torch.Tensor | np.ndarray (written in the given
                             order, nothing sorted); written atomically (temp file in the same directory,
                             fsync, rename). A torch tensor's dtype decides the file dtype; use
                             `as_dtype(t, "BF16")` etc. to convert first.
"""

import collections
import json
import os
import struct
import tempfile

import numpy as np
import torch

# file dtype -> (numpy little-endian storage dtype, torch dtype, bytes per element)
_DTYPES = {
    "F64": ("<f8", torch.float64, 8),
    "F32": ("<f4", torch.float32, 4),
    "F16": ("<f2", torch.float16, 2),
    "BF16": ("<i2", torch.bfloat16, 2),  # stored as raw 16-bit patterns, viewed as bfloat16
    "I64": ("<i8", torch.int64, 8),
    "I32": ("<i4", torch.int32, 4),
    "I16": ("<i2", torch.int16, 2),
    "I8": ("i1", torch.int8, 1),
    "U8": ("u1", torch.uint8, 1),
    "BOOL": ("?", torch.bool, 1),
}
_TORCH_TO_NAME = {v[1]: k for k, v in _DTYPES.items()}
_NUMPY_TO_NAME = {
    np.dtype(np.float64): "F64", np.dtype(np.float32): "F32", np.dtype(np.float16): "F16",
    np.dtype(np.int64): "I64", np.dtype(np.int32): "I32", np.dtype(np.int16): "I16",
    np.dtype(np.int8): "I8", np.dtype(np.uint8): "U8", np.dtype(np.bool_): "BOOL",
}
DTYPE_NAMES = tuple(_DTYPES)
MAX_HEADER = 100 * 1024 * 1024  # same limit as the reference Rust implementation


class SafetensorsError(ValueError):
    pass


def dtype_name(t):
    """File dtype name ("F32", ...) of a torch tensor or numpy array."""
    if isinstance(t, torch.Tensor):
        if t.dtype not in _TORCH_TO_NAME:
            raise SafetensorsError("unsupported torch dtype %s" % t.dtype)
        return _TORCH_TO_NAME[t.dtype]
    dt = np.asarray(t).dtype.newbyteorder("=")
    if dt not in _NUMPY_TO_NAME:
        raise SafetensorsError("unsupported numpy dtype %s" % dt)
    return _NUMPY_TO_NAME[dt]


def as_dtype(t, name):
    """Convert a torch tensor / numpy array to the torch dtype of file dtype `name`."""
    if name not in _DTYPES:
        raise SafetensorsError("unknown dtype %r" % name)
    if not isinstance(t, torch.Tensor):
        t = torch.from_numpy(np.ascontiguousarray(t))
    return t.to(_DTYPES[name][1])


def torch_dtype(name):
    return _DTYPES[name][1]


def read_header(path):
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise SafetensorsError("%s: file shorter than 8 bytes" % path)
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER:
            raise SafetensorsError("%s: header length %d too large" % (path, n))
        raw = f.read(n)
        if len(raw) != n:
            raise SafetensorsError("%s: truncated header" % path)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=collections.OrderedDict)
    except (UnicodeDecodeError, ValueError) as e:
        raise SafetensorsError("%s: header is not valid JSON: %s" % (path, e))
    if not isinstance(header, dict):
        raise SafetensorsError("%s: header is not a JSON object" % path)
    metadata = header.pop("__metadata__", None)
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise SafetensorsError("%s: __metadata__ must map strings to strings" % path)
    return header, metadata, 8 + n


def _validate(path, header, data_len):
    spans = []
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) - {"dtype", "shape", "data_offsets"} or len(info) != 3:
            raise SafetensorsError("%s: tensor %r: entry must have exactly dtype, shape, data_offsets" % (path, name))
        dt, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dt not in _DTYPES:
            raise SafetensorsError("%s: tensor %r: unsupported dtype %r" % (path, name, dt))
        if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
            raise SafetensorsError("%s: tensor %r: bad shape %r" % (path, name, shape))
        if (not isinstance(offs, list) or len(offs) != 2 or not all(isinstance(o, int) for o in offs)
                or not 0 <= offs[0] <= offs[1] <= data_len):
            raise SafetensorsError("%s: tensor %r: bad data_offsets %r (data area %d bytes)" % (path, name, offs, data_len))
        numel = 1
        for s in shape:
            numel *= s
        if offs[1] - offs[0] != numel * _DTYPES[dt][2]:
            raise SafetensorsError("%s: tensor %r: %d bytes for shape %r of %s" % (path, name, offs[1] - offs[0], shape, dt))
        spans.append((offs[0], offs[1], name))
    # The format requires the tensors to tile the data area exactly (no holes, no overlap).
    pos = 0
    for b, e, name in sorted(spans):
        if b != pos:
            raise SafetensorsError("%s: tensor %r: data_offsets %d leave a hole or overlap at %d" % (path, name, b, pos))
        pos = e
    if pos != data_len:
        raise SafetensorsError("%s: data area is %d bytes but tensors cover %d" % (path, data_len, pos))


def _load_arrays(path):
    header, metadata, start = read_header(path)
    size = os.path.getsize(path) - start
    data = bytearray(size)  # one writable buffer; the arrays below are views into it (no per-tensor copy)
    with open(path, "rb") as f:
        f.seek(start)
        view = memoryview(data)
        got = 0
        while got < size:
            k = f.readinto(view[got:])
            if not k:
                break
            got += k
    if got != size:
        raise SafetensorsError("%s: short read" % path)
    _validate(path, header, len(data))
    out = collections.OrderedDict()
    for name, info in header.items():
        b, e = info["data_offsets"]
        arr = np.frombuffer(data, dtype=_DTYPES[info["dtype"]][0], count=(e - b) // _DTYPES[info["dtype"]][2], offset=b)
        if not arr.flags.aligned:  # offsets need not be multiples of the item size
            arr = arr.copy()
        out[name] = (info["dtype"], arr.reshape(info["shape"]))
    return out, metadata


def load(path):
    """Read a .safetensors file into torch tensors (native dtype, BF16 as torch.bfloat16)."""
    arrays, metadata = _load_arrays(path)
    out = collections.OrderedDict()
    for name, (dt, arr) in arrays.items():
        t = torch.from_numpy(arr.astype(arr.dtype.newbyteorder("="), copy=False))
        if dt == "BF16":
            t = t.view(torch.bfloat16)
        out[name] = t
    return out, metadata


def load_numpy(path):
    """Read into numpy arrays; BF16 tensors are widened (exactly) to float32."""
    arrays, metadata = _load_arrays(path)
    out = collections.OrderedDict()
    for name, (dt, arr) in arrays.items():
        if dt == "BF16":
            arr = (arr.astype(np.uint16).astype(np.uint32) << 16).view(np.float32)
        out[name] = arr.astype(arr.dtype.newbyteorder("="), copy=False)
    return out, metadata


def dtypes_of(path):
    """OrderedDict name -> file dtype name."""
    header, _, _ = read_header(path)
    return collections.OrderedDict((k, v["dtype"]) for k, v in header.items())


def _raw_bytes(t):
    if isinstance(t, torch.Tensor):
        name = dtype_name(t)
        t = t.detach().cpu().contiguous()
        if name == "BF16":
            t = t.view(torch.int16)
        arr = t.numpy()
    else:
        arr = np.asarray(t)
        name = dtype_name(arr)
    shape = list(arr.shape)  # (np.ascontiguousarray would turn a 0-d array into 1-d)
    return name, shape, arr.astype(_DTYPES[name][0], copy=False).tobytes(order="C")


def save(tensors, path, metadata=None):
    """Write tensors (in the given iteration order) atomically to `path`."""
    header = collections.OrderedDict()
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise SafetensorsError("metadata must map strings to strings")
        header["__metadata__"] = dict(metadata)
    blobs = []
    pos = 0
    for name, t in tensors.items():
        if name == "__metadata__":
            raise SafetensorsError("'__metadata__' is not a valid tensor name")
        dt, shape, raw = _raw_bytes(t)
        header[name] = collections.OrderedDict([("dtype", dt), ("shape", shape), ("data_offsets", [pos, pos + len(raw)])])
        blobs.append(raw)
        pos += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)  # pad so the data area is 8-byte aligned, like the Rust writer
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(hjson)))
            f.write(hjson)
            for raw in blobs:
                f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
