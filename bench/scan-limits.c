/*
 * How fast can one core compare two 64 MiB buffers page by page here?
 * (npm run bench:limits; see bench/README.md, "Reading the numbers", 1a and 1b.)
 *
 * The equal-run scan is what the UNCHANGED scenario (and most of SPARSE,
 * MEDIUM and ONE-BYTE) costs. This runs it in several shapes on identical
 * buffers, passes interleaved, and prints the median and best MB/s of page
 * data for each:
 *   scalar       64-bit words, as bench/baseline.c
 *   sse2-64      four 16-byte compares per 64-byte step, as the wasm kernel
 *   avx2-64      two 32-byte compares per 64-byte step
 *   sse2-128     eight 16-byte compares per 128-byte step
 *   scalar+pf    scalar, prefetching the next page's first lines mid-page
 *   copy+scalar  both pages copied (libc memcpy) into a small staging buffer
 *                first, then scalar there: what any copy-in design pays (as
 *                encodeXbzrle on ordinary buffers), staging 64-byte aligned
 *                like the sources
 *   copy16+scalar the same with the staging 16 bytes off the sources' 64-byte grid
 * If the first five agree, the scan is bound by memory, not by instructions;
 * the copy shapes show the ceiling of copying pages in before scanning them.
 *
 * Usage: scan-limits [PASSES]   (default 31)
 */
#define _POSIX_C_SOURCE 200809L
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SIZE (64u << 20)
#define PAGE 4096

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

__attribute__((noinline)) static int scalar(const uint8_t *a, const uint8_t *b, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y)
            break;
    }
    return i;
}

__attribute__((noinline)) static int scalar_pf(const uint8_t *a, const uint8_t *b, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        if (i == n / 2) {
            __builtin_prefetch(a + n);
            __builtin_prefetch(b + n);
            __builtin_prefetch(a + n + 64);
            __builtin_prefetch(b + n + 64);
        }
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        if (x != y)
            break;
    }
    return i;
}

__attribute__((noinline)) static int sse2_64(const uint8_t *a, const uint8_t *b, int n)
{
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        __m128i e0 = _mm_cmpeq_epi8(_mm_loadu_si128((const void *)(a + i)), _mm_loadu_si128((const void *)(b + i)));
        __m128i e1 = _mm_cmpeq_epi8(_mm_loadu_si128((const void *)(a + i + 16)), _mm_loadu_si128((const void *)(b + i + 16)));
        __m128i e2 = _mm_cmpeq_epi8(_mm_loadu_si128((const void *)(a + i + 32)), _mm_loadu_si128((const void *)(b + i + 32)));
        __m128i e3 = _mm_cmpeq_epi8(_mm_loadu_si128((const void *)(a + i + 48)), _mm_loadu_si128((const void *)(b + i + 48)));
        if (_mm_movemask_epi8(_mm_and_si128(_mm_and_si128(e0, e1), _mm_and_si128(e2, e3))) != 0xffff)
            break;
    }
    return i;
}

__attribute__((noinline, target("avx2"))) static int avx2_64(const uint8_t *a, const uint8_t *b, int n)
{
    int i = 0;
    for (; i + 64 <= n; i += 64) {
        __m256i e0 = _mm256_cmpeq_epi8(_mm256_loadu_si256((const void *)(a + i)), _mm256_loadu_si256((const void *)(b + i)));
        __m256i e1 = _mm256_cmpeq_epi8(_mm256_loadu_si256((const void *)(a + i + 32)), _mm256_loadu_si256((const void *)(b + i + 32)));
        if (_mm256_movemask_epi8(_mm256_and_si256(e0, e1)) != -1)
            break;
    }
    return i;
}

__attribute__((noinline)) static int sse2_128(const uint8_t *a, const uint8_t *b, int n)
{
    int i = 0;
    for (; i + 128 <= n; i += 128) {
        __m128i acc = _mm_set1_epi8(-1);
        for (int k = 0; k < 128; k += 16)
            acc = _mm_and_si128(acc, _mm_cmpeq_epi8(_mm_loadu_si128((const void *)(a + i + k)), _mm_loadu_si128((const void *)(b + i + k))));
        if (_mm_movemask_epi8(acc) != 0xffff)
            break;
    }
    return i;
}

/* Staging for the copy shapes: both pages, at a 64-byte-aligned offset or 16 bytes off it. */
static uint8_t stage[4 * PAGE] __attribute__((aligned(PAGE)));

static int copy_then_scan(const uint8_t *a, const uint8_t *b, int n, size_t off)
{
    uint8_t *sa = stage + 2048 + off, *sb = sa + PAGE;
    memcpy(sa, a, (size_t)n);
    memcpy(sb, b, (size_t)n);
    return scalar(sa, sb, n);
}

__attribute__((noinline)) static int copy_scalar(const uint8_t *a, const uint8_t *b, int n)
{
    return copy_then_scan(a, b, n, 0);
}

__attribute__((noinline)) static int copy16_scalar(const uint8_t *a, const uint8_t *b, int n)
{
    return copy_then_scan(a, b, n, 16);
}

#define SHAPES 7

int main(int argc, char **argv)
{
    int passes = argc > 1 ? atoi(argv[1]) : 31;
    if (passes < 1)
        passes = 1;
    /* Room for one page past the end: the prefetching shape reads ahead. */
    uint8_t *old = aligned_alloc(PAGE, SIZE + PAGE), *cur = aligned_alloc(PAGE, SIZE + PAGE);
    double *t = malloc(sizeof(double) * SHAPES * (size_t)passes);
    if (!old || !cur || !t) {
        fprintf(stderr, "scan-limits: out of memory\n");
        return 2;
    }
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < SIZE + PAGE; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        old[i] = cur[i] = (uint8_t)x;
    }
    int (*const shapes[SHAPES])(const uint8_t *, const uint8_t *, int) = { scalar, sse2_64, avx2_64, sse2_128, scalar_pf, copy_scalar, copy16_scalar };
    const char *names[SHAPES] = { "scalar", "sse2-64", "avx2-64", "sse2-128", "scalar+pf", "copy+scalar", "copy16+scalar" };
    volatile long sink = 0;
    for (int r = 0; r < passes; r++)
        for (int v = 0; v < SHAPES; v++) {
            double t0 = now_s();
            long acc = 0;
            for (size_t p = 0; p < SIZE / PAGE; p++)
                acc += shapes[v](old + p * PAGE, cur + p * PAGE, PAGE);
            t[v * passes + r] = now_s() - t0;
            sink += acc;
        }
    printf("equal-run scan of 64 MiB of 4 KiB pages (identical buffers), %d interleaved passes\n", passes);
    printf("%-13s %10s %10s\n", "shape", "median", "best");
    for (int v = 0; v < SHAPES; v++) {
        double *s = t + v * passes;
        qsort(s, (size_t)passes, sizeof(double), by_value);
        printf("%-13s %10.0f %10.0f MB/s\n", names[v], SIZE / s[passes / 2] / 1e6, SIZE / s[0] / 1e6);
    }
    return sink == 42 ? 1 : 0;
}
