// Winograd tile transforms for relight_jax/cpu_kernels/winograd.py, as XLA FFI handlers (CPU).
//
// XLA compiles the transforms written in jax.numpy into one fused loop per tile entry,
// each of which reads 9-16 positions of every tile, so a transform streams its map ~13
// times (docs/benchmark_history.md, section 7). These loops read each tile once,
// transform it in registers (16 channels at a time: GCC vector extensions, built
// with -march=native by relight_jax/cpu_kernels/native_tiles.py) and write every entry:
// 5-9x faster than XLA's loops on the Envmap model's maps (section 8).
//
// The matrices are compile-time constants, so that the unrolled sums skip the zero
// coefficients and the +-1 products; native_tiles.py checks them against matrices.py's
// when it loads the library (RelightWinogradMatrix). Work is split into rows of tiles
// over XLA's intra-op thread pool.
//
// The kernel side has the same sandwich: u = G g G^T of each 3x3 kernel (and of the
// kernel turned by 180 degrees, for the input gradient), and the kernel gradient's
// inverse G^T du G, 16 output channels at a time, split over the input channels
// (XLA's fused sums for these are slow too: docs/benchmark_history.md, section 9).
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

constexpr int kLanes = 16;
typedef float Vec __attribute__((vector_size(kLanes * 4), aligned(4)));

struct BT4 {
  static constexpr int kRows = 6, kTaps = 6;
  static constexpr float kM[6][6] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0},
                                     {0, 4, -4, -1, 1, 0}, {0, -2, -1, 2, 1, 0},
                                     {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
};
struct AT4 {
  static constexpr int kRows = 4, kTaps = 6;
  static constexpr float kM[4][6] = {
      {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
};
struct ATT4 {  // AT4 transposed (checked by native_tiles.py)
  static constexpr int kRows = 6, kTaps = 4;
  static constexpr float kM[6][4] = {{1, 0, 0, 0},  {1, 1, 1, 1},  {1, -1, 1, -1},
                                     {1, 2, 4, 8},  {1, -2, 4, -8}, {0, 0, 0, 1}};
};
struct BT2 {
  static constexpr int kRows = 4, kTaps = 4;
  static constexpr float kM[4][4] = {
      {1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
};
struct AT2 {
  static constexpr int kRows = 2, kTaps = 4;
  static constexpr float kM[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
};
struct ATT2 {
  static constexpr int kRows = 4, kTaps = 2;
  static constexpr float kM[4][2] = {{1, 0}, {1, 1}, {1, -1}, {0, -1}};
};

// The kernel transform G (u = G g G^T) and its transpose (the kernel gradient's inverse
// transform, dg = G^T du G).
struct G4 {
  static constexpr int kRows = 6, kTaps = 3;
  static constexpr float kM[6][3] = {{1.f / 4, 0, 0},
                                     {-1.f / 6, -1.f / 6, -1.f / 6},
                                     {-1.f / 6, 1.f / 6, -1.f / 6},
                                     {1.f / 24, 1.f / 12, 1.f / 6},
                                     {1.f / 24, -1.f / 12, 1.f / 6},
                                     {0, 0, 1}};
};
struct GT4 {  // G4 transposed (checked by native_tiles.py)
  static constexpr int kRows = 3, kTaps = 6;
  static constexpr float kM[3][6] = {{1.f / 4, -1.f / 6, -1.f / 6, 1.f / 24, 1.f / 24, 0},
                                     {0, -1.f / 6, 1.f / 6, 1.f / 12, -1.f / 12, 0},
                                     {0, -1.f / 6, -1.f / 6, 1.f / 6, 1.f / 6, 1}};
};
struct G2 {
  static constexpr int kRows = 4, kTaps = 3;
  static constexpr float kM[4][3] = {
      {1, 0, 0}, {1.f / 2, 1.f / 2, 1.f / 2}, {1.f / 2, -1.f / 2, 1.f / 2}, {0, 0, 1}};
};
struct GT2 {
  static constexpr int kRows = 3, kTaps = 4;
  static constexpr float kM[3][4] = {
      {1, 1.f / 2, 1.f / 2, 0}, {0, 1.f / 2, -1.f / 2, 0}, {0, 1.f / 2, 1.f / 2, 1}};
};

template <class V>
inline V Load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}
template <class V>
inline void Store(float* p, V v) {
  std::memcpy(p, &v, sizeof(V));
}

// sum_k coefficient[k] * values[k] over the non-zero coefficients (unrolled, folded).
template <class V, int N>
inline V Combine(const float (&coefficients)[N], const V (&values)[N]) {
  V total{};
  bool first = true;
#pragma GCC unroll 8
  for (int k = 0; k < N; ++k) {
    const float c = coefficients[k];
    if (c == 0.f) continue;
    const V term = c == 1.f ? values[k] : c == -1.f ? -values[k] : c * values[k];
    total = first ? term : total + term;
    first = false;
  }
  return total;
}

// out[a, b] = (M t M^T)[a, b] = sum_pq M[a, p] M[b, q] t[p, q] for one T x T tile t and
// kLanes (V = Vec) or 1 (V = float) channels, M = Mat::kM [R, T]; t[p, q] is read at
// src + p * in_row + q * in_col and out[a, b] written at dst + a * out_row + b * out_col.
// Rows first (R x T partial sums in registers), then columns.
template <class Mat, class V>
inline void SandwichTile(const float* src, int64_t in_row, int64_t in_col, float* dst,
                         int64_t out_row, int64_t out_col) {
  constexpr int R = Mat::kRows, T = Mat::kTaps;
  V partial[R][T];
#pragma GCC unroll 8
  for (int q = 0; q < T; ++q) {
    V column[T];
#pragma GCC unroll 8
    for (int p = 0; p < T; ++p) column[p] = Load<V>(src + p * in_row + q * in_col);
#pragma GCC unroll 8
    for (int a = 0; a < R; ++a) partial[a][q] = Combine<V, T>(Mat::kM[a], column);
  }
#pragma GCC unroll 8
  for (int a = 0; a < R; ++a) {
#pragma GCC unroll 8
    for (int b = 0; b < R; ++b)
      Store<V>(dst + a * out_row + b * out_col, Combine<V, T>(Mat::kM[b], partial[a]));
  }
}

// ParallelFor(pool, n, body) runs body(0) ... body(n - 1) on the calling thread and on
// XLA's intra-op pool. The caller claims items until none is left and then waits only for
// items that other threads already hold, never for a task that has not started: no
// deadlock when every pool thread is itself inside such a call. A helper task that
// starts late finds nothing left and returns (it shares ownership of the state).
struct Shared {
  std::function<void(int64_t)> body;
  int64_t n = 0;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> done{0};
  std::mutex mutex;
  std::condition_variable finished;
};

void Drain(const std::shared_ptr<Shared>& s) {
  int64_t finished_here = 0;
  for (int64_t i; (i = s->next.fetch_add(1)) < s->n;) {
    s->body(i);
    ++finished_here;
  }
  if (finished_here && s->done.fetch_add(finished_here) + finished_here == s->n) {
    std::lock_guard<std::mutex> lock(s->mutex);
    s->finished.notify_all();
  }
}

void ParallelFor(ffi::ThreadPool& pool, int64_t n, std::function<void(int64_t)> body) {
  auto s = std::make_shared<Shared>();
  s->body = std::move(body);
  s->n = n;
  int64_t helpers = std::min<int64_t>(pool.num_threads(), n - 1);
  for (int64_t h = 0; h < helpers; ++h) pool.Schedule([s] { Drain(s); });
  Drain(s);
  std::unique_lock<std::mutex> lock(s->mutex);
  s->finished.wait(lock, [&] { return s->done.load() == s->n; });
}

// out[i * R + j, b, ti, tj, c] = sum_pq M[i, p] M[j, q] x_padded[b, ti * m + p, tj * m + q, c],
// x_padded being x with `pad` zero rows and columns on each side.
template <class Mat>
void Forward(ffi::ThreadPool& pool, const float* x, int64_t batch, int64_t height,
             int64_t width, int64_t channels, int64_t pad, int64_t m, float* out) {
  constexpr int R = Mat::kRows, T = Mat::kTaps;
  const int64_t tiles_h = (height + 2 * pad - T) / m + 1;
  const int64_t tiles_w = (width + 2 * pad - T) / m + 1;
  const int64_t entry_stride = batch * tiles_h * tiles_w * channels;
  const int64_t vectors = channels / kLanes * kLanes;
  ParallelFor(pool, batch * tiles_h, [=](int64_t item) {
    const int64_t b = item / tiles_h, ti = item % tiles_h;
    const int64_t top = ti * m - pad;
    std::vector<float> border;
    for (int64_t tj = 0; tj < tiles_w; ++tj) {
      const int64_t left = tj * m - pad;
      const float* src;
      int64_t row_stride, col_stride;
      if (top >= 0 && left >= 0 && top + T <= height && left + T <= width) {
        src = x + ((b * height + top) * width + left) * channels;
        row_stride = width * channels;
        col_stride = channels;
      } else {  // a tile over the zero padding: copied into a zeroed buffer first
        border.assign(T * T * channels, 0.f);
        for (int p = 0; p < T; ++p) {
          const int64_t row = top + p;
          if (row < 0 || row >= height) continue;
          for (int q = 0; q < T; ++q) {
            const int64_t column = left + q;
            if (column < 0 || column >= width) continue;
            std::memcpy(&border[(p * T + q) * channels],
                        x + ((b * height + row) * width + column) * channels,
                        channels * sizeof(float));
          }
        }
        src = border.data();
        row_stride = T * channels;
        col_stride = channels;
      }
      float* dst = out + ((b * tiles_h + ti) * tiles_w + tj) * channels;
      int64_t c = 0;
      for (; c < vectors; c += kLanes)
        SandwichTile<Mat, Vec>(src + c, row_stride, col_stride, dst + c, R * entry_stride,
                               entry_stride);
      for (; c < channels; ++c)
        SandwichTile<Mat, float>(src + c, row_stride, col_stride, dst + c, R * entry_stride,
                                 entry_stride);
    }
  });
}

// out[b, ti * R + p, tj * R + q, c] = sum_ij N[p, i] N[q, j] e[i * T + j, b, ti, tj, c].
template <class Mat>
void Inverse(ffi::ThreadPool& pool, const float* e, int64_t batch, int64_t tiles_h,
             int64_t tiles_w, int64_t channels, float* out) {
  constexpr int R = Mat::kRows, T = Mat::kTaps;
  const int64_t height = tiles_h * R, width = tiles_w * R;
  const int64_t entry_stride = batch * tiles_h * tiles_w * channels;
  const int64_t vectors = channels / kLanes * kLanes;
  ParallelFor(pool, batch * tiles_h, [=](int64_t item) {
    const int64_t b = item / tiles_h, ti = item % tiles_h;
    for (int64_t tj = 0; tj < tiles_w; ++tj) {
      const float* src = e + ((b * tiles_h + ti) * tiles_w + tj) * channels;
      float* dst = out + ((b * height + ti * R) * width + tj * R) * channels;
      int64_t c = 0;
      for (; c < vectors; c += kLanes)
        SandwichTile<Mat, Vec>(src + c, T * entry_stride, entry_stride, dst + c,
                               width * channels, channels);
      for (; c < channels; ++c)
        SandwichTile<Mat, float>(src + c, T * entry_stride, entry_stride, dst + c,
                                 width * channels, channels);
    }
  });
}

// out[i * R + j, ci, co] = sum_pq M[i, p] M[j, q] k[p, q, ci, co] for a T x T HWIO kernel
// k [T, T, cin, cout] (M = Mat::kM [R, T]); with `flip`, of the kernel turned by 180
// degrees, k[T - 1 - p, T - 1 - q]. Work is split over the input channels.
template <class Mat>
void KernelSandwich(ffi::ThreadPool& pool, const float* k, int64_t cin, int64_t cout,
                    bool flip, float* out) {
  constexpr int R = Mat::kRows, T = Mat::kTaps;
  const int64_t plane = cin * cout;  // one tap (or one entry) of every channel pair
  const int64_t vectors = cout / kLanes * kLanes;
  const int64_t first = flip ? (T * T - 1) * plane : 0;
  const int64_t in_row = flip ? -T * plane : T * plane, in_col = flip ? -plane : plane;
  ParallelFor(pool, cin, [=](int64_t ci) {
    const float* src = k + first + ci * cout;
    float* dst = out + ci * cout;
    int64_t co = 0;
    for (; co < vectors; co += kLanes)
      SandwichTile<Mat, Vec>(src + co, in_row, in_col, dst + co, R * plane, plane);
    for (; co < cout; ++co)
      SandwichTile<Mat, float>(src + co, in_row, in_col, dst + co, R * plane, plane);
  });
}

// Checks what XLA hands over (the Python side builds the shapes; a mismatch is a bug).
ffi::Error CheckMap(ffi::Buffer<ffi::F32>& x, int64_t m, int64_t pad, int64_t taps,
                    ffi::ResultBuffer<ffi::F32>& out) {
  auto d = x.dimensions();
  auto o = out->dimensions();
  if (m != 2 && m != 4) return ffi::Error::InvalidArgument("Winograd tile m must be 2 or 4");
  if (d.size() != 4 || o.size() != 5) return ffi::Error::InvalidArgument("expected [b, h, w, c]");
  const int64_t tiles_h = (d[1] + 2 * pad - taps) / m + 1, tiles_w = (d[2] + 2 * pad - taps) / m + 1;
  if (d[1] % m || d[2] % m || o[0] != (m + 2) * (m + 2) || o[1] != d[0] || o[2] != tiles_h ||
      o[3] != tiles_w || o[4] != d[3])
    return ffi::Error::InvalidArgument("Winograd transform: output shape does not match input");
  return ffi::Error::Success();
}

// Mat4 / Mat2's transform of every tile of x (m = 4 / 2) whose corners lie m px apart,
// x zero-padded by `pad`: [(m + 2)^2, b, h / m, w / m, c].
template <class Mat4, class Mat2>
ffi::Error MapToTiles(ffi::ThreadPool& pool, ffi::Buffer<ffi::F32>& x, int64_t m, int64_t pad,
                      ffi::ResultBuffer<ffi::F32>& out) {
  const int64_t taps = m == 4 ? Mat4::kTaps : Mat2::kTaps;
  if (auto error = CheckMap(x, m, pad, taps, out); error.failure()) return error;
  auto d = x.dimensions();
  if (m == 4) Forward<Mat4>(pool, x.typed_data(), d[0], d[1], d[2], d[3], pad, 4, out->typed_data());
  else Forward<Mat2>(pool, x.typed_data(), d[0], d[1], d[2], d[3], pad, 2, out->typed_data());
  return ffi::Error::Success();
}

// B^T d B of every (m + 2)^2 tile of x zero-padded by 1.
ffi::Error InputTransform(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, int64_t m,
                          ffi::ResultBuffer<ffi::F32> out) {
  return MapToTiles<BT4, BT2>(pool, x, m, 1, out);
}

// A dy A^T of every m x m tile of the output gradient dy (the output transform's transpose).
ffi::Error OutputGradientTransform(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> dy, int64_t m,
                                   ffi::ResultBuffer<ffi::F32> out) {
  return MapToTiles<ATT4, ATT2>(pool, dy, m, 0, out);
}

// A^T M A of every tile of M [(m + 2)^2, b, tiles_h, tiles_w, c], assembled into the map
// [b, tiles_h * m, tiles_w * m, c].
ffi::Error OutputTransform(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> product, int64_t m,
                           ffi::ResultBuffer<ffi::F32> out) {
  auto d = product.dimensions();
  auto o = out->dimensions();
  if (m != 2 && m != 4) return ffi::Error::InvalidArgument("Winograd tile m must be 2 or 4");
  if (d.size() != 5 || o.size() != 4 || d[0] != (m + 2) * (m + 2) || o[0] != d[1] ||
      o[1] != d[2] * m || o[2] != d[3] * m || o[3] != d[4])
    return ffi::Error::InvalidArgument("Winograd output transform: shapes do not match");
  if (m == 4) Inverse<AT4>(pool, product.typed_data(), d[1], d[2], d[3], d[4], out->typed_data());
  else Inverse<AT2>(pool, product.typed_data(), d[1], d[2], d[3], d[4], out->typed_data());
  return ffi::Error::Success();
}

// G g G^T of a 3x3 HWIO kernel g [3, 3, cin, cout] (turned by 180 degrees first with
// `flip`): [(m + 2)^2, cin, cout].
ffi::Error KernelTransform(ffi::ThreadPool& pool, ffi::Buffer<ffi::F32>& kernel, int64_t m,
                           bool flip, ffi::ResultBuffer<ffi::F32>& out) {
  auto d = kernel.dimensions();
  auto o = out->dimensions();
  if (m != 2 && m != 4) return ffi::Error::InvalidArgument("Winograd tile m must be 2 or 4");
  if (d.size() != 4 || o.size() != 3 || d[0] != 3 || d[1] != 3 ||
      o[0] != (m + 2) * (m + 2) || o[1] != d[2] || o[2] != d[3])
    return ffi::Error::InvalidArgument("Winograd kernel transform: shapes do not match");
  if (m == 4) KernelSandwich<G4>(pool, kernel.typed_data(), d[2], d[3], flip, out->typed_data());
  else KernelSandwich<G2>(pool, kernel.typed_data(), d[2], d[3], flip, out->typed_data());
  return ffi::Error::Success();
}

ffi::Error Kernel(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> kernel, int64_t m,
                  ffi::ResultBuffer<ffi::F32> out) {
  return KernelTransform(pool, kernel, m, false, out);
}

ffi::Error FlippedKernel(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> kernel, int64_t m,
                         ffi::ResultBuffer<ffi::F32> out) {
  return KernelTransform(pool, kernel, m, true, out);
}

// G^T du G of the Winograd-domain kernel gradient du [(m + 2)^2, cin, cout]: the HWIO
// kernel gradient [3, 3, cin, cout].
ffi::Error KernelGradient(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> du, int64_t m,
                          ffi::ResultBuffer<ffi::F32> out) {
  auto d = du.dimensions();
  auto o = out->dimensions();
  if (m != 2 && m != 4) return ffi::Error::InvalidArgument("Winograd tile m must be 2 or 4");
  if (d.size() != 3 || o.size() != 4 || d[0] != (m + 2) * (m + 2) || o[0] != 3 ||
      o[1] != 3 || o[2] != d[1] || o[3] != d[2])
    return ffi::Error::InvalidArgument("Winograd kernel gradient: shapes do not match");
  if (m == 4) KernelSandwich<GT4>(pool, du.typed_data(), d[1], d[2], false, out->typed_data());
  else KernelSandwich<GT2>(pool, du.typed_data(), d[1], d[2], false, out->typed_data());
  return ffi::Error::Success();
}

template <class Mat>
int CopyMatrix(float* out) {
  std::memcpy(out, Mat::kM, sizeof(Mat::kM));
  return Mat::kRows * Mat::kTaps;
}

}  // namespace

// The compiled-in B^T (which = 0), A^T (1), A (2), G (3) or G^T (4) of F(m x m, 3 x 3),
// row-major into `out` (room for 36 floats); returns the number of entries written, 0 if
// unknown.
extern "C" int RelightWinogradMatrix(int m, int which, float* out) {
  if (m == 4) {
    if (which == 0) return CopyMatrix<BT4>(out);
    if (which == 1) return CopyMatrix<AT4>(out);
    if (which == 2) return CopyMatrix<ATT4>(out);
    if (which == 3) return CopyMatrix<G4>(out);
    if (which == 4) return CopyMatrix<GT4>(out);
  } else if (m == 2) {
    if (which == 0) return CopyMatrix<BT2>(out);
    if (which == 1) return CopyMatrix<AT2>(out);
    if (which == 2) return CopyMatrix<ATT2>(out);
    if (which == 3) return CopyMatrix<G2>(out);
    if (which == 4) return CopyMatrix<GT2>(out);
  }
  return 0;
}

#define RELIGHT_WINOGRAD_HANDLER(symbol, function)                                  \
  XLA_FFI_DEFINE_HANDLER_SYMBOL(symbol, function,                                   \
                                ffi::Ffi::Bind()                                    \
                                    .Ctx<ffi::ThreadPool>()                         \
                                    .Arg<ffi::Buffer<ffi::F32>>()                   \
                                    .Attr<int64_t>("m")                             \
                                    .Ret<ffi::Buffer<ffi::F32>>());

RELIGHT_WINOGRAD_HANDLER(RelightWinogradInput, InputTransform)
RELIGHT_WINOGRAD_HANDLER(RelightWinogradOutputGradient, OutputGradientTransform)
RELIGHT_WINOGRAD_HANDLER(RelightWinogradOutput, OutputTransform)
RELIGHT_WINOGRAD_HANDLER(RelightWinogradKernel, Kernel)
RELIGHT_WINOGRAD_HANDLER(RelightWinogradFlippedKernel, FlippedKernel)
RELIGHT_WINOGRAD_HANDLER(RelightWinogradKernelGradient, KernelGradient)
