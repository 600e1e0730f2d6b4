/*
 * The ceiling of bench/threads.mjs's encoder scaling on this machine: the
 * memory traffic of an encoder's round against a cache as large as the image
 * (every page of NEW compared with its cached copy, word by word, and copied
 * over it), in C, on 1..N threads each taking a contiguous share of the pages.
 * Reps interleave the thread counts; the median per count is printed as
 * "threads <n> <ms>" lines (bench/threads.mjs reads them).
 *
 *   cc -O2 -pthread -o threads-limits threads-limits.c && ./threads-limits MiB reps n1 n2 ...
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE 4096
#define MAX_THREADS 64
#define MAX_COUNTS 16
#define MAX_REPS 64

static uint8_t *cache, *next;

struct share {
  size_t from, to;
  uint64_t changed;
};

static void *round_share(void *arg) {
  struct share *s = arg;
  uint64_t changed = 0;
  for (size_t off = s->from; off < s->to; off += PAGE) {
    const uint64_t *a = (const uint64_t *)(cache + off);
    const uint64_t *b = (const uint64_t *)(next + off);
    uint64_t diff = 0;
    for (int i = 0; i < PAGE / 8; i++) diff |= a[i] ^ b[i];
    if (diff != 0) {
      changed++;
      memcpy(cache + off, next + off, PAGE);
    }
  }
  s->changed = changed;
  return NULL;
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double run(size_t bytes, int threads) {
  pthread_t ids[MAX_THREADS];
  struct share shares[MAX_THREADS];
  size_t pages = bytes / PAGE;
  /* Every page differs again each run: NEW is flipped, so the copy always happens. */
  for (size_t off = 0; off < bytes; off += PAGE) next[off] ^= 0xff;
  double t0 = now_ms();
  for (int k = 0; k < threads; k++) {
    shares[k].from = pages * k / threads * PAGE;
    shares[k].to = pages * (k + 1) / threads * PAGE;
    pthread_create(&ids[k], NULL, round_share, &shares[k]);
  }
  for (int k = 0; k < threads; k++) pthread_join(ids[k], NULL);
  return now_ms() - t0;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s MiB reps threads...\n", argv[0]);
    return 2;
  }
  size_t bytes = (size_t)atol(argv[1]) << 20;
  int reps = atoi(argv[2]);
  int n = argc - 3;
  if (bytes == 0 || reps < 1 || reps > MAX_REPS || n > MAX_COUNTS) return 2;
  int counts[MAX_COUNTS];
  for (int i = 0; i < n; i++) {
    counts[i] = atoi(argv[3 + i]);
    if (counts[i] < 1 || counts[i] > MAX_THREADS) return 2;
  }
  cache = aligned_alloc(PAGE, bytes);
  next = aligned_alloc(PAGE, bytes);
  if (cache == NULL || next == NULL) return 1;
  memset(cache, 1, bytes);
  memset(next, 2, bytes);
  static double times[MAX_COUNTS][MAX_REPS];
  run(bytes, 1); /* warm-up: both buffers touched */
  for (int r = 0; r < reps; r++)
    for (int i = 0; i < n; i++) times[i][r] = run(bytes, counts[i]);
  for (int i = 0; i < n; i++) {
    qsort(times[i], reps, sizeof(double), cmp);
    printf("threads %d %.2f\n", counts[i], times[i][reps / 2]);
  }
  return 0;
}
