// A native reference for `dmi bench kernels`: how fast plain C++ reads memory on this machine, so
// that "% of bandwidth" is not measured only against our own WebAssembly sum. A measurement tool,
// not part of the package. Build and run (inside /work/runs/quiet on a shared machine):
//   g++ -O3 -march=native -ffast-math -fopenmp scripts/stream-read.cpp -o out/stream-read && out/stream-read
// Reads 256 MiB of floats (a sum, the compiler's AVX2 loop) on 1 and 2 threads: each thread a
// contiguous half (as our kernels split rows), median of 21 runs after 3 warm-ups, GB = 1e9 bytes.
#include <omp.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char** argv) {
  const size_t bytes = (argc > 1 ? std::atol(argv[1]) : 256) << 20, n = bytes / sizeof(float);
  float* a = static_cast<float*>(std::aligned_alloc(64, bytes));
  for (size_t i = 0; i < n; i++) a[i] = float(i % 7);
  volatile float sink = 0;
  for (int threads : {1, 2}) {
    std::vector<double> ms;
    for (int rep = 0; rep < 24; rep++) {
      auto t0 = std::chrono::steady_clock::now();
      float total = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
      {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const size_t lo = n * t / nt, hi = n * (t + 1) / nt;
        float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
        size_t i = lo;
        for (; i + 8 <= hi; i += 8) {
          s0 += a[i]; s1 += a[i + 1]; s2 += a[i + 2]; s3 += a[i + 3];
          s4 += a[i + 4]; s5 += a[i + 5]; s6 += a[i + 6]; s7 += a[i + 7];
        }
        for (; i < hi; i++) s0 += a[i];
        total += ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
      }
      sink = sink + total;
      auto t1 = std::chrono::steady_clock::now();
      if (rep >= 3) ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf("native read %zu MiB, %d thread(s): %.1f GB/s (median of %zu; min-max %.1f-%.1f GB/s)\n", bytes >> 20, threads,
                bytes / ms[ms.size() / 2] / 1e6, ms.size(), bytes / ms.back() / 1e6, bytes / ms.front() / 1e6);
  }
  std::free(a);
  return 0;
}
