// pybind11 bindings: the only code that touches Python objects. The Python layer (tileattn/_api.py)
// parses options and brings every argument to (batch, head, seq, dim) views of one dtype; this file
// checks those arrays once more, fills the params struct, releases the GIL and runs the core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "tileattn/tileattn.hpp"

namespace py = pybind11;

namespace {

struct View {
  void* data;
  int64_t shape[4];
  int64_t stride[4];  // in elements
};

py::ssize_t item_size(tileattn::DType dtype) {
  switch (dtype) {
    case tileattn::DType::kFloat32:
      return 4;
    case tileattn::DType::kFloat64:
      return 8;
    case tileattn::DType::kFloat16:
    case tileattn::DType::kBFloat16:
      return 2;
  }
  throw std::invalid_argument("unknown dtype code " + std::to_string(static_cast<int>(dtype)));
}

View view_of(const py::array& a, int ndim, py::ssize_t itemsize, const char* name, bool writable) {
  if (a.ndim() != ndim) {
    throw std::invalid_argument(std::string(name) + " must have " + std::to_string(ndim) + " dimensions");
  }
  if (a.itemsize() != itemsize) throw std::invalid_argument(std::string(name) + " has the wrong item size");
  if (writable && !a.writeable()) throw std::invalid_argument(std::string(name) + " is read-only");
  View v{};
  v.data = const_cast<void*>(a.data());
  for (int i = 0; i < ndim; ++i) {
    v.shape[i] = a.shape(i);
    if (a.strides(i) % itemsize != 0) {
      throw std::invalid_argument(std::string(name) + " has a stride that is not a multiple of its item size");
    }
    v.stride[i] = a.strides(i) / itemsize;
  }
  return v;
}

// A GPU array, described by the Python layer (tileattn/cuda.py) as (pointer, shape, strides in elements).
bool is_device_view(const py::handle& obj) { return py::isinstance<py::tuple>(obj); }

View device_view(const py::handle& obj, int ndim, const char* name) {
  const auto t = py::reinterpret_borrow<py::tuple>(obj);
  const auto shape = t[1].cast<std::vector<int64_t>>();
  const auto strides = t[2].cast<std::vector<int64_t>>();
  if (static_cast<int>(shape.size()) != ndim || strides.size() != shape.size()) {
    throw std::invalid_argument(std::string(name) + " must have " + std::to_string(ndim) + " dimensions");
  }
  View v{};
  v.data = reinterpret_cast<void*>(t[0].cast<uintptr_t>());
  for (int i = 0; i < ndim; ++i) {
    v.shape[i] = shape[i];
    v.stride[i] = strides[i];
  }
  return v;
}

// A NumPy array or a device descriptor, as a view.
View any_view(const py::handle& obj, int ndim, py::ssize_t itemsize, const char* name, bool writable) {
  if (is_device_view(obj)) return device_view(obj, ndim, name);
  if (!py::isinstance<py::array>(obj)) throw py::type_error(std::string(name) + " must be a NumPy array");
  return view_of(py::reinterpret_borrow<py::array>(obj), ndim, itemsize, name, writable);
}

void require_shape(const View& v, const char* name, int ndim, const int64_t* expected) {
  for (int i = 0; i < ndim; ++i) {
    if (v.shape[i] != expected[i]) throw std::invalid_argument(std::string(name) + " has an inconsistent shape");
  }
}

// q, k, v and out as (batch, head, seq, dim) views into the params: pointers, sizes, strides.
void set_arrays(tileattn::Params& p, const View& qv, const View& kv, const View& vv, const View& ov) {
  p.q = qv.data;
  p.k = kv.data;
  p.v = vv.data;
  p.out = ov.data;
  p.batch = qv.shape[0];
  p.heads_q = qv.shape[1];
  p.seq_q = qv.shape[2];
  p.head_dim = qv.shape[3];
  p.heads_kv = kv.shape[1];
  p.seq_k = kv.shape[2];
  p.head_dim_v = vv.shape[3];
  p.q_batch_stride = qv.stride[0], p.q_head_stride = qv.stride[1], p.q_seq_stride = qv.stride[2];
  p.q_dim_stride = qv.stride[3];
  p.k_batch_stride = kv.stride[0], p.k_head_stride = kv.stride[1], p.k_seq_stride = kv.stride[2];
  p.k_dim_stride = kv.stride[3];
  p.v_batch_stride = vv.stride[0], p.v_head_stride = vv.stride[1], p.v_seq_stride = vv.stride[2];
  p.v_dim_stride = vv.stride[3];
  p.out_batch_stride = ov.stride[0], p.out_head_stride = ov.stride[1], p.out_seq_stride = ov.stride[2];
  p.out_dim_stride = ov.stride[3];
}

// An optional int64 1-D array argument: its data, after checking its length.
const int64_t* int64_data(const py::object& obj, int64_t length, const char* name) {
  if (obj.is_none()) return nullptr;
  const auto a = py::reinterpret_borrow<py::array>(obj);
  if (a.ndim() != 1 || a.shape(0) != length || a.itemsize() != 8 || a.strides(0) != 8) {
    throw std::invalid_argument(std::string(name) + " must be a contiguous int64 array of length " + std::to_string(length));
  }
  return static_cast<const int64_t*>(a.data());
}

// q, k, v, out: 4-D (batch, head, seq, dim) arrays of the dtype named by `dtype`; lse: None or a 3-D
// float32 (float64 for float64) array (batch, heads_q, seq_q). With cu_seqlens (packed sequences) the arrays
// have batch 1 and the sequences are described by the offsets. mask: None or a 4-D (batch, heads_q, seq_q,
// seq_k) view of 1-byte booleans; bias: None or such a view of a float dtype (bias_dtype); alibi_slopes:
// None or a contiguous float64 (batch or 1, heads_q) array.
// device: 0 = CPU, 1 = CUDA on NumPy arrays (copied to the GPU and back), 2 = CUDA on device
// descriptors (q, k, v, out, lse, mask, bias), queued on `stream`.
void attention(const py::object& q, const py::object& k, const py::object& v, const py::object& out,
               const py::object& lse, int dtype, double scale, bool causal, int num_threads, int path, int isa,
               bool top_left, int64_t window_left, int64_t window_right, const py::object& q_lengths,
               const py::object& kv_lengths, const py::object& cu_seqlens_q, const py::object& cu_seqlens_k,
               const py::object& mask, const py::object& bias, int bias_dtype, const py::object& alibi_slopes,
               double softcap, int device, uintptr_t stream) {
  tileattn::Params p;
  p.dtype = static_cast<tileattn::DType>(dtype);
  const py::ssize_t itemsize = item_size(p.dtype);
  const View qv = any_view(q, 4, itemsize, "q", false);
  const View kv = any_view(k, 4, itemsize, "k", false);
  const View vv = any_view(v, 4, itemsize, "v", false);
  const View ov = any_view(out, 4, itemsize, "out", true);
  const int64_t kshape[4] = {qv.shape[0], kv.shape[1], kv.shape[2], qv.shape[3]};
  require_shape(kv, "k", 4, kshape);
  const int64_t vshape[3] = {qv.shape[0], kv.shape[1], kv.shape[2]};
  require_shape(vv, "v", 3, vshape);
  const int64_t oshape[4] = {qv.shape[0], qv.shape[1], qv.shape[2], vv.shape[3]};
  require_shape(ov, "out", 4, oshape);

  const bool packed = !cu_seqlens_q.is_none();
  set_arrays(p, qv, kv, vv, ov);
  if (!lse.is_none()) {
    const View lv = any_view(lse, 3, p.dtype == tileattn::DType::kFloat64 ? 8 : 4, "lse", true);
    require_shape(lv, "lse", 3, qv.shape);
    p.lse = lv.data;
    p.lse_batch_stride = lv.stride[0], p.lse_head_stride = lv.stride[1], p.lse_seq_stride = lv.stride[2];
  }
  p.scale = scale;
  p.causal = causal;
  p.num_threads = num_threads;
  p.path = static_cast<tileattn::KernelPath>(path);
  p.isa = static_cast<tileattn::Isa>(isa);
  p.top_left = top_left;
  p.window_left = window_left;
  p.window_right = window_right;
  if (packed) {
    if (qv.shape[0] != 1) throw std::invalid_argument("packed sequences take arrays with batch 1");
    const auto cq = py::reinterpret_borrow<py::array>(cu_seqlens_q);
    const auto ck = py::reinterpret_borrow<py::array>(cu_seqlens_k);
    if (cq.ndim() != 1 || cq.shape(0) < 1) throw std::invalid_argument("cu_seqlens_q must have shape (B + 1,)");
    p.batch = cq.shape(0) - 1;
    p.cu_seqlens_q = int64_data(cu_seqlens_q, p.batch + 1, "cu_seqlens_q");
    p.cu_seqlens_k = int64_data(cu_seqlens_k, p.batch + 1, "cu_seqlens_k");
    (void)ck;
  }
  p.q_lengths = int64_data(q_lengths, p.batch, "q_lengths");
  p.kv_lengths = int64_data(kv_lengths, p.batch, "kv_lengths");
  if (!mask.is_none()) {
    const View mv = any_view(mask, 4, 1, "mask", false);
    const int64_t mshape[4] = {p.batch, p.heads_q, p.seq_q, p.seq_k};
    require_shape(mv, "mask", 4, mshape);
    p.mask = static_cast<const uint8_t*>(mv.data);
    p.mask_batch_stride = mv.stride[0], p.mask_head_stride = mv.stride[1], p.mask_seq_stride = mv.stride[2];
    p.mask_key_stride = mv.stride[3];
  }
  if (!bias.is_none()) {
    p.bias_dtype = static_cast<tileattn::DType>(bias_dtype);
    const View bv = any_view(bias, 4, item_size(p.bias_dtype), "bias", false);
    const int64_t bshape[4] = {p.batch, p.heads_q, p.seq_q, p.seq_k};
    require_shape(bv, "bias", 4, bshape);
    p.bias = bv.data;
    p.bias_batch_stride = bv.stride[0], p.bias_head_stride = bv.stride[1], p.bias_seq_stride = bv.stride[2];
    p.bias_key_stride = bv.stride[3];
  }
  if (!alibi_slopes.is_none()) {
    const auto a = py::reinterpret_borrow<py::array>(alibi_slopes);
    if (a.ndim() != 2 || a.itemsize() != 8 || a.shape(1) != p.heads_q || (a.shape(0) != 1 && a.shape(0) != p.batch)) {
      throw std::invalid_argument("alibi_slopes must be a float64 (batch or 1, heads_q) array");
    }
    p.alibi_slopes = static_cast<const double*>(a.data());
    p.alibi_batch_stride = a.shape(0) == 1 ? 0 : a.strides(0) / 8;
    p.alibi_head_stride = a.strides(1) / 8;
  }
  p.softcap = softcap;

  py::gil_scoped_release release;
  switch (device) {
    case 0:
      tileattn::attention(p);
      return;
    case 1:
      tileattn::attention_cuda_host(p);
      return;
    default:
      tileattn::attention_cuda(p, reinterpret_cast<void*>(stream));
      return;
  }
}

// What the CUDA build and the driver offer now.
py::dict cuda_info() {
  const tileattn::CudaInfo c = tileattn::cuda_info();
  py::dict d;
  d["built"] = c.built;
  d["runtime_version"] = c.runtime_version;
  d["driver_version"] = c.driver_version;
  d["device_count"] = c.device_count;
  d["architectures"] = c.architectures;
  d["devices"] = c.devices;
  d["error"] = c.error;
  return d;
}

// The DLPack (v0) tensor of a "dltensor" capsule, without taking ownership: (data + byte_offset,
// device_type, device_id, dtype code, bits, lanes, shape, strides or None).
struct DLDevice {
  int32_t device_type;
  int32_t device_id;
};
struct DLDataType {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
};
struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;
  uint64_t byte_offset;
};

py::tuple dlpack_info(const py::capsule& capsule) {
  if (std::string(capsule.name() == nullptr ? "" : capsule.name()) != "dltensor") {
    throw std::invalid_argument("expected an unconsumed DLPack capsule named 'dltensor'");
  }
  // DLManagedTensor starts with its DLTensor.
  const auto* t = static_cast<const DLTensor*>(capsule.get_pointer());
  std::vector<int64_t> shape(t->shape, t->shape + t->ndim);
  py::object strides = py::none();
  if (t->strides != nullptr) strides = py::cast(std::vector<int64_t>(t->strides, t->strides + t->ndim));
  const uintptr_t data = reinterpret_cast<uintptr_t>(t->data) + t->byte_offset;
  return py::make_tuple(data, t->device.device_type, t->device.device_id, t->dtype.code, t->dtype.bits,
                        t->dtype.lanes, shape, strides);
}

// The common call in one step: attention(q, k, v) with at most causal (a bool), scale (None or a float),
// layout, out and num_threads (None or an int), on NumPy arrays. The Python layer's checks and argument
// handling cost 13-18 us a call (pybind11's keyword arguments alone 3 us), against 4.6 us for a whole
// torch SDPA call of one row; small calls (a decoding step of a small model, a short sequence) spend
// more there than in the kernel. Returns the result, or None for anything this path does not take as
// it comes (other types, dtypes or values, byte-swapped or odd strides, inconsistent shapes, an `out`
// that is not a C-contiguous array apart from the inputs): the Python layer then handles the call and
// raises its errors, so that both paths accept the same calls and give the same results.
py::object attention_simple(const py::handle& q, const py::handle& k, const py::handle& v, const py::handle& causal,
                            const py::handle& scale, const py::handle& layout, const py::handle& out,
                            const py::handle& num_threads) {
  const auto& api = py::detail::npy_api::get();
  const auto exact = [&](const py::handle& h) { return Py_TYPE(h.ptr()) == api.PyArray_Type_; };
  if (!exact(q) || !exact(k) || !exact(v)) return py::none();
  const auto qa = py::reinterpret_borrow<py::array>(q), ka = py::reinterpret_borrow<py::array>(k),
             va = py::reinterpret_borrow<py::array>(v);
  if (qa.ndim() != 4 || ka.ndim() != 4 || va.ndim() != 4) return py::none();
  const py::dtype dt = qa.dtype();
  const int num = dt.num();
  tileattn::DType dtype;
  if (num == py::detail::npy_api::NPY_FLOAT_) {
    dtype = tileattn::DType::kFloat32;
  } else if (num == py::detail::npy_api::NPY_DOUBLE_) {
    dtype = tileattn::DType::kFloat64;
  } else if (num == 23 /* NPY_HALF */) {
    dtype = tileattn::DType::kFloat16;
  } else {
    return py::none();
  }
  if (dt.byteorder() != '=' || ka.dtype().num() != num || va.dtype().num() != num ||
      ka.dtype().byteorder() != '=' || va.dtype().byteorder() != '=') {
    return py::none();
  }
  bool bshd;
  if (!PyUnicode_CheckExact(layout.ptr())) return py::none();
  if (PyUnicode_CompareWithASCIIString(layout.ptr(), "bhsd") == 0) {
    bshd = false;
  } else if (PyUnicode_CompareWithASCIIString(layout.ptr(), "bshd") == 0) {
    bshd = true;
  } else {
    return py::none();
  }
  if (causal.ptr() != Py_True && causal.ptr() != Py_False) return py::none();
  tileattn::Params p;
  p.dtype = dtype;
  p.causal = causal.ptr() == Py_True;
  if (!num_threads.is_none()) {
    if (!PyLong_CheckExact(num_threads.ptr())) return py::none();
    int overflow = 0;
    const long n = PyLong_AsLongAndOverflow(num_threads.ptr(), &overflow);
    if (overflow != 0 || n < 1 || n > 4096) return py::none();
    p.num_threads = static_cast<int>(n);
  }
  const py::ssize_t item = qa.itemsize();
  // (batch, head, seq, dim) views: the layout's axes 1 and 2 swapped for bshd.
  const int ax_h = bshd ? 2 : 1, ax_s = bshd ? 1 : 2;
  View qv{}, kv{}, vv{};
  const py::array* arrays[3] = {&qa, &ka, &va};
  View* views[3] = {&qv, &kv, &vv};
  for (int x = 0; x < 3; ++x) {
    const py::array& a = *arrays[x];
    const int order[4] = {0, ax_h, ax_s, 3};
    for (int i = 0; i < 4; ++i) {
      const py::ssize_t st = a.strides(order[i]);
      if (st % item != 0) return py::none();
      views[x]->shape[i] = a.shape(order[i]);
      views[x]->stride[i] = st / item;
    }
    views[x]->data = const_cast<void*>(a.data());
  }
  const int64_t b = qv.shape[0], hq = qv.shape[1], sq = qv.shape[2], d = qv.shape[3];
  const int64_t hkv = kv.shape[1], sk = kv.shape[2], dv = vv.shape[3];
  if (b < 1 || hq < 1 || sq < 1 || d < 1 || dv < 1 || hkv < 1 || hq % hkv != 0 || kv.shape[0] != b ||
      kv.shape[3] != d || vv.shape[0] != b || vv.shape[1] != hkv || vv.shape[2] != sk) {
    return py::none();
  }
  if (scale.is_none()) {
    p.scale = 1.0 / std::sqrt(static_cast<double>(d));
  } else {
    if (!PyFloat_CheckExact(scale.ptr())) return py::none();
    p.scale = PyFloat_AS_DOUBLE(scale.ptr());
    if (!std::isfinite(p.scale)) return py::none();
  }
  const std::vector<py::ssize_t> shape =
      bshd ? std::vector<py::ssize_t>{b, sq, hq, dv} : std::vector<py::ssize_t>{b, hq, sq, dv};
  if (!out.is_none() && !exact(out)) return py::none();
  py::array result = out.is_none() ? py::array(dt, shape) : py::reinterpret_borrow<py::array>(out);
  if (!out.is_none()) {
    // (C-contiguous by NumPy's flag, which ignores the strides of axes of extent 1: those are checked too,
    // as the Python layer does.)
    if (result.ndim() != 4 || result.dtype().num() != num || result.dtype().byteorder() != '=' ||
        !result.writeable() || !(result.flags() & py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_)) {
      return py::none();
    }
    for (int i = 0; i < 4; ++i) {
      if (result.shape(i) != shape[i] || result.strides(i) % item != 0) return py::none();
    }
    // Apart from every input (else the Python layer computes aside and copies in).
    const auto span = [](const py::array& a) {
      auto lo = reinterpret_cast<uintptr_t>(a.data()), hi = lo;
      for (int i = 0; i < a.ndim(); ++i) {
        if (a.shape(i) == 0) return std::make_pair(lo, lo);
        const py::ssize_t reach = (a.shape(i) - 1) * a.strides(i);
        (reach < 0 ? lo : hi) += static_cast<uintptr_t>(reach);
      }
      return std::make_pair(lo, hi + static_cast<uintptr_t>(a.itemsize()));
    };
    const auto o = span(result);
    for (const py::array* a : arrays) {
      const auto in = span(*a);
      if (in.first < o.second && o.first < in.second) return py::none();
    }
  }
  View ov{};
  {
    const int order[4] = {0, ax_h, ax_s, 3};
    for (int i = 0; i < 4; ++i) {
      ov.shape[i] = result.shape(order[i]);
      ov.stride[i] = result.strides(order[i]) / item;
    }
    ov.data = result.mutable_data();
  }
  set_arrays(p, qv, kv, vv, ov);
  {
    py::gil_scoped_release release;
    tileattn::attention(p);
  }
  return std::move(result);
}

// Block sizes of the tiled kernel for a problem (for tests probing tile boundaries).
py::tuple tile_info(int dtype, int64_t batch, int64_t heads_q, int64_t heads_kv, int64_t seq_q, int64_t seq_k,
                    int64_t head_dim, int64_t head_dim_v, int num_threads, int isa) {
  tileattn::Params p;
  p.dtype = static_cast<tileattn::DType>(dtype);
  p.batch = batch, p.heads_q = heads_q, p.heads_kv = heads_kv, p.seq_q = seq_q, p.seq_k = seq_k;
  p.head_dim = head_dim, p.head_dim_v = head_dim_v;
  p.scale = 1.0;
  p.num_threads = num_threads;
  p.isa = static_cast<tileattn::Isa>(isa);
  const tileattn::TileInfo t = tileattn::tile_info(p);
  return py::make_tuple(t.block_q, t.block_k);
}

py::dict build_info() {
  const tileattn::BuildInfo b = tileattn::build_info();
  py::dict d;
  d["version"] = b.version;
  d["compiler"] = b.compiler;
  d["build_type"] = b.build_type;
  d["cxx_flags"] = b.cxx_flags;
  d["native_build"] = b.native_build;
  d["compiled_isas"] = b.compiled_isas;
  return d;
}

py::dict cpu_info() {
  const tileattn::CpuInfo c = tileattn::cpu_info();
  py::dict d;
  d["vendor"] = c.vendor;
  d["brand"] = c.brand;
  d["features"] = c.features;
  d["best_isa"] = tileattn::isa_name(c.best_isa);
  d["selected_isa"] = tileattn::isa_name(c.selected_isa);
  d["bf16_pairs"] = c.bf16_pairs;
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "tileattn's compiled core (private: use the functions of the tileattn package)";
  m.attr("__version__") = tileattn::version();
  m.def("attention", &attention, py::arg("q"), py::arg("k"), py::arg("v"),
        py::arg("out"), py::arg("lse"), py::arg("dtype"), py::arg("scale"), py::arg("causal"),
        py::arg("num_threads"), py::arg("path"), py::arg("isa"), py::kw_only(), py::arg("top_left") = false,
        py::arg("window_left") = -1, py::arg("window_right") = -1, py::arg("q_lengths") = py::none(),
        py::arg("kv_lengths") = py::none(), py::arg("cu_seqlens_q") = py::none(),
        py::arg("cu_seqlens_k") = py::none(), py::arg("mask") = py::none(), py::arg("bias") = py::none(),
        py::arg("bias_dtype") = 0, py::arg("alibi_slopes") = py::none(), py::arg("softcap") = 0.0,
        py::arg("device") = 0, py::arg("stream") = 0);
  m.def("attention_simple", &attention_simple, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("causal"),
        py::arg("scale"), py::arg("layout"), py::arg("out"), py::arg("num_threads"));
  m.def("cuda_info", &cuda_info);
  m.def("dlpack_info", &dlpack_info, py::arg("capsule"));
  m.def("tile_info", &tile_info, py::arg("dtype"), py::arg("batch"), py::arg("heads_q"), py::arg("heads_kv"),
        py::arg("seq_q"), py::arg("seq_k"), py::arg("head_dim"), py::arg("head_dim_v"), py::arg("num_threads"),
        py::arg("isa"));
  m.def(
      "probe_fma_gflops",
      [](int threads, bool f64, double seconds) {
        py::gil_scoped_release release;
        return tileattn::probe_fma_gflops(threads, f64, seconds);
      },
      py::arg("threads"), py::arg("f64") = false, py::arg("seconds") = 0.5);
  m.def(
      "probe_fma_run",
      [](int threads, bool f64, int64_t iters) {
        if (iters < 1) throw py::value_error("iters: must be at least 1, got " + std::to_string(iters));
        py::gil_scoped_release release;
        return tileattn::probe_fma_run(threads, f64, iters);
      },
      py::arg("threads"), py::arg("f64"), py::arg("iters"));
  m.def(
      "probe_read_gbs",
      [](int threads, int64_t bytes, int repeats) {
        py::gil_scoped_release release;
        return tileattn::probe_read_gbs(threads, bytes, repeats);
      },
      py::arg("threads"), py::arg("bytes") = int64_t{1} << 30, py::arg("repeats") = 5);
  m.def(
      "probe_read_buffer",
      [](const py::array& data, int threads) {
        if (!data.dtype().is(py::dtype::of<float>())) throw py::type_error("data: must be float32");
        if (!(data.flags() & py::array::c_style)) throw py::value_error("data: must be C-contiguous");
        const auto* ptr = static_cast<const float*>(data.data());
        const auto n = static_cast<int64_t>(data.size());
        py::gil_scoped_release release;
        return tileattn::probe_read_buffer(ptr, n, threads);
      },
      py::arg("data"), py::arg("threads"));
  m.def(
      "probe_threads",
      [](int threads, double seconds) {
        py::gil_scoped_release release;
        return tileattn::probe_threads(threads, seconds);
      },
      py::arg("threads"), py::arg("seconds") = 5.0);
  m.def("set_num_threads", &tileattn::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &tileattn::get_num_threads);
  m.def("available_cpus", &tileattn::available_cpus);
  m.def("build_info", &build_info);
  m.def("cpu_info", &cpu_info);
}
