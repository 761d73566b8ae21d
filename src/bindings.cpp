// pybind11 bindings: the only code that touches Python objects. The Python layer (tileattn/_api.py)
// parses options and brings every argument to (batch, head, seq, dim) views of one dtype; this file
// checks those arrays once more, fills the params struct, releases the GIL and runs the core.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "tileattn/tileattn.hpp"

namespace py = pybind11;

namespace {

struct View {
  void* data;
  int64_t shape[4];
  int64_t stride[4];  // in elements
};

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

void require_shape(const View& v, const char* name, int ndim, const int64_t* expected) {
  for (int i = 0; i < ndim; ++i) {
    if (v.shape[i] != expected[i]) throw std::invalid_argument(std::string(name) + " has an inconsistent shape");
  }
}

// q, k, v, out: 4-D (batch, head, seq, dim) arrays of the dtype named by `dtype`; lse: None or a 3-D
// float32 (float64 for float64) array (batch, heads_q, seq_q).
void attention(const py::array& q, const py::array& k, const py::array& v, const py::array& out,
               const py::object& lse, int dtype, double scale, bool causal, int num_threads, int path, int isa) {
  tileattn::Params p;
  p.dtype = static_cast<tileattn::DType>(dtype);
  py::ssize_t itemsize = 0;
  switch (p.dtype) {
    case tileattn::DType::kFloat32:
      itemsize = 4;
      break;
    case tileattn::DType::kFloat64:
      itemsize = 8;
      break;
    case tileattn::DType::kFloat16:
    case tileattn::DType::kBFloat16:
      itemsize = 2;
      break;
    default:
      throw std::invalid_argument("unknown dtype code " + std::to_string(dtype));
  }
  const View qv = view_of(q, 4, itemsize, "q", false);
  const View kv = view_of(k, 4, itemsize, "k", false);
  const View vv = view_of(v, 4, itemsize, "v", false);
  const View ov = view_of(out, 4, itemsize, "out", true);
  const int64_t kshape[4] = {qv.shape[0], kv.shape[1], kv.shape[2], qv.shape[3]};
  require_shape(kv, "k", 4, kshape);
  const int64_t vshape[3] = {qv.shape[0], kv.shape[1], kv.shape[2]};
  require_shape(vv, "v", 3, vshape);
  const int64_t oshape[4] = {qv.shape[0], qv.shape[1], qv.shape[2], vv.shape[3]};
  require_shape(ov, "out", 4, oshape);

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
  if (!lse.is_none()) {
    const auto lse_array = py::reinterpret_borrow<py::array>(lse);
    const View lv = view_of(lse_array, 3, p.dtype == tileattn::DType::kFloat64 ? 8 : 4, "lse", true);
    require_shape(lv, "lse", 3, qv.shape);
    p.lse = lv.data;
    p.lse_batch_stride = lv.stride[0], p.lse_head_stride = lv.stride[1], p.lse_seq_stride = lv.stride[2];
  }
  p.scale = scale;
  p.causal = causal;
  p.num_threads = num_threads;
  p.path = static_cast<tileattn::KernelPath>(path);
  p.isa = static_cast<tileattn::Isa>(isa);

  py::gil_scoped_release release;
  tileattn::attention(p);
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
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "tileattn's compiled core (private: use the functions of the tileattn package)";
  m.attr("__version__") = tileattn::version();
  m.def("attention", &attention, py::arg("q").noconvert(), py::arg("k").noconvert(), py::arg("v").noconvert(),
        py::arg("out").noconvert(), py::arg("lse"), py::arg("dtype"), py::arg("scale"), py::arg("causal"),
        py::arg("num_threads"), py::arg("path"), py::arg("isa"));
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
      "probe_read_gbs",
      [](int threads, int64_t bytes, int repeats) {
        py::gil_scoped_release release;
        return tileattn::probe_read_gbs(threads, bytes, repeats);
      },
      py::arg("threads"), py::arg("bytes") = int64_t{1} << 30, py::arg("repeats") = 5);
  m.def("set_num_threads", &tileattn::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &tileattn::get_num_threads);
  m.def("available_cpus", &tileattn::available_cpus);
  m.def("build_info", &build_info);
  m.def("cpu_info", &cpu_info);
}
