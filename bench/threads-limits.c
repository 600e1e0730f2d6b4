/*
 * The ceilings of bench/threads.mjs's encoder scaling on this machine: the
 * memory traffic of an encoder's round against a cache as large as the image,
 * in C, on 1..N threads each taking a contiguous share of the pages. Two
 * shapes: every page of NEW compared with its cached copy, word by word, and
 * copied over it (every page changed: DENSE's traffic), printed as
 * "threads <n> <ms>" lines; and every page compared with an equal copy, read
 * to its end and nothing written (UNCHANGED's traffic, and most of SPARSE's),
 * printed as "compare <n> <ms>" lines. Reps interleave the thread counts and
 * the shapes; the median per count is printed (bench/threads.mjs reads them).
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

static uint8_t *cache, *next, *same;

struct share {
  size_t from, to;
  uint64_t changed;
  const uint8_t *next; /* NEW: `next` (every page differs) or `same` (a copy of the cache) */
};

static void *round_share(void *arg) {
  struct share *s = arg;
  uint64_t changed = 0;
  for (size_t off = s->from; off < s->to; off += PAGE) {
    const uint64_t *a = (const uint64_t *)(cache + off);
    const uint64_t *b = (const uint64_t *)(s->next + off);
    uint64_t diff = 0;
    for (int i = 0; i < PAGE / 8; i++) diff |= a[i] ^ b[i];
    if (diff != 0) {
      changed++;
      memcpy(cache + off, s->next + off, PAGE);
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

/* One round on `threads` threads; `equal`: NEW is the cache's copy (compared, nothing copied). */
static double run(size_t bytes, int threads, int equal) {
  pthread_t ids[MAX_THREADS];
  struct share shares[MAX_THREADS];
  size_t pages = bytes / PAGE;
  /* Every page differs again each run: NEW is flipped, so the copy always happens. */
  if (!equal)
    for (size_t off = 0; off < bytes; off += PAGE) next[off] ^= 0xff;
  else
    memcpy(same, cache, bytes);
  double t0 = now_ms();
  for (int k = 0; k < threads; k++) {
    shares[k].from = pages * k / threads * PAGE;
    shares[k].to = pages * (k + 1) / threads * PAGE;
    shares[k].next = equal ? same : next;
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
  same = aligned_alloc(PAGE, bytes);
  if (cache == NULL || next == NULL || same == NULL) return 1;
  memset(cache, 1, bytes);
  memset(next, 2, bytes);
  static double times[2][MAX_COUNTS][MAX_REPS];
  run(bytes, 1, 0); /* warm-up: the buffers touched */
  run(bytes, 1, 1);
  for (int r = 0; r < reps; r++)
    for (int i = 0; i < n; i++)
      for (int equal = 0; equal < 2; equal++) times[equal][i][r] = run(bytes, counts[i], equal);
  for (int equal = 0; equal < 2; equal++)
    for (int i = 0; i < n; i++) {
      qsort(times[equal][i], reps, sizeof(double), cmp);
      printf("%s %d %.2f\n", equal ? "compare" : "threads", counts[i], times[equal][i][reps / 2]);
    }
  return 0;
}
