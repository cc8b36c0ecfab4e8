/*
 * The machine's float32 arithmetic ceiling, measured now (docs/performance.md, "Two speeds were
 * two machines"): no GEMM can run faster than the cores' fused multiply-adds, so a
 * MatMul row above this figure was timed wrongly or ran on other hardware than the probe.
 *   FMA peak (GFLOP/s) = threads x 12 independent FMA chains x lanes x 2 FLOP x iterations / seconds
 *     with lanes = 8 (AVX2, 256-bit) or 16 (AVX-512); each thread's best of `blocks` blocks, summed
 *   add chain (adds/ns) = dependent 1-cycle adds per nanosecond: the core's clock in GHz on x86
 * One JSON line on stdout: {"threads", "avx2": [per thread count 1..threads], "avx512": [...] or
 * null without AVX-512F, "addsPerNs"}. x86-64 only (bench/bench.ts compiles it with cc when present):
 *   cc -O2 -pthread -o machine-peak bench/machine-peak.c && ./machine-peak 2
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BLOCKS 16
#define ITERS 2000000L

static double now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e9 + t.tv_nsec;
}

/* Twelve chains with distinct starting values (equal ones let the compiler merge them). */
#define FMA_BODY(VEC, SET1, FMADD, ADD, LANES)                                                     \
  double best = 0;                                                                                \
  float sink = 0;                                                                                 \
  for (int b = 0; b < BLOCKS; b++) {                                                              \
    VEC a[12];                                                                                    \
    for (int j = 0; j < 12; j++) a[j] = SET1(1.0f + j + b * 1e-3f);                               \
    const VEC m = SET1(0.999999f), c = SET1(1e-7f);                                               \
    double t0 = now_ns();                                                                         \
    for (long i = 0; i < ITERS; i++) {                                                            \
      a[0] = FMADD(a[0], m, c); a[1] = FMADD(a[1], m, c); a[2] = FMADD(a[2], m, c);                \
      a[3] = FMADD(a[3], m, c); a[4] = FMADD(a[4], m, c); a[5] = FMADD(a[5], m, c);                \
      a[6] = FMADD(a[6], m, c); a[7] = FMADD(a[7], m, c); a[8] = FMADD(a[8], m, c);                \
      a[9] = FMADD(a[9], m, c); a[10] = FMADD(a[10], m, c); a[11] = FMADD(a[11], m, c);            \
    }                                                                                             \
    double rate = ITERS * 12.0 * LANES * 2 / (now_ns() - t0);                                     \
    if (rate > best) best = rate;                                                                 \
    VEC s = a[0];                                                                                 \
    for (int j = 1; j < 12; j++) s = ADD(s, a[j]);                                                \
    float out[LANES];                                                                             \
    memcpy(out, &s, sizeof out);                                                                  \
    sink += out[0];                                                                               \
  }                                                                                               \
  if (sink == 12345.0f) fprintf(stderr, "%f\n", sink); /* keeps the chains live */               \
  return best;

__attribute__((target("avx2,fma"))) static double fma_avx2(void) {
  FMA_BODY(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, 8)
}

__attribute__((target("avx512f"))) static double fma_avx512(void) {
  FMA_BODY(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, 16)
}

static double adds_per_ns(void) {
  double best = 0;
  for (int b = 0; b < BLOCKS; b++) {
    unsigned long x = b;
    double t0 = now_ns();
    for (long i = 0; i < ITERS; i++) {
#define ADD1 "add $1, %0\n\t"
#define ADD10 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1 ADD1
      __asm__ volatile(ADD10 ADD10 ADD10 ADD10 ADD10 : "+r"(x));
    }
    double rate = ITERS * 50.0 / (now_ns() - t0);
    if (rate > best) best = rate;
  }
  return best;
}

typedef double (*probe_fn)(void);
struct job { probe_fn fn; double gflops; };

static void *run_job(void *p) {
  struct job *j = p;
  j->gflops = j->fn();
  return NULL;
}

/* `n` threads running `fn` at once; the sum of their rates. */
static double together(probe_fn fn, int n) {
  pthread_t t[64];
  struct job jobs[64];
  for (int i = 0; i < n; i++) {
    jobs[i].fn = fn;
    pthread_create(&t[i], NULL, run_job, &jobs[i]);
  }
  double sum = 0;
  for (int i = 0; i < n; i++) {
    pthread_join(t[i], NULL);
    sum += jobs[i].gflops;
  }
  return sum;
}

static void print_series(const char *name, probe_fn fn, int threads) {
  printf("\"%s\":[", name);
  for (int n = 1; n <= threads; n++) printf("%s%.1f", n > 1 ? "," : "", together(fn, n));
  printf("]");
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  if (threads < 1 || threads > 64) {
    fprintf(stderr, "machine-peak: threads must be 1..64, got %s\n", argv[1]);
    return 2;
  }
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    fprintf(stderr, "machine-peak: this CPU has no AVX2 FMA\n");
    return 3;
  }
  printf("{\"threads\":%d,", threads);
  print_series("avx2", fma_avx2, threads);
  printf(",");
  if (__builtin_cpu_supports("avx512f")) print_series("avx512", fma_avx512, threads);
  else printf("\"avx512\":null");
  printf(",\"addsPerNs\":%.2f}\n", adds_per_ns());
  return 0;
}
