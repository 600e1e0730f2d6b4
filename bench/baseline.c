/*
 * Native baseline for the XBZRLE benchmark (bench/run.mjs).
 *
 * A plain C encoder and decoder written from this project's codec spec
 * (xbzrle-codec.md): word-at-a-time run scanning, the scalar overflow rule of
 * spec section 3.2, and the decoder checks of section 4. Not tuned beyond
 * 64-bit word compares; it is the reference point the TypeScript encoder is
 * compared against.
 *
 * Usage: baseline OLD NEW SECONDS [DUMP]
 *   OLD, NEW  files of equal length, a multiple of 4096 bytes (4 KiB pages)
 *   SECONDS   how long to run each timed loop (e.g. 0.75)
 *   DUMP      optional file receiving, per page, the int32 LE result of the
 *             encoder followed by the delta bytes when the result is > 0
 *
 * Prints one JSON line: encode/decode throughput (MB/s = 1e6 bytes/s of page
 * bytes processed), totals, and the FNV-1a 64 hash of the dump stream, which
 * the harness compares with the same hash of the TypeScript encoder's output.
 *
 * Usage: baseline --serve OLD NEW
 *   For paired timing: reads lines from stdin, each a number N, encodes all
 *   pages N times over and prints the nanoseconds that took, one line per
 *   request, until end of input. The harness times its own sweeps between
 *   these, so C and JavaScript samples lie milliseconds apart.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PAGE 4096
#define DLEN PAGE
#define LEN_MAX 0x3FFF

typedef uint64_t word_t;
#define WORD ((int)sizeof(word_t))

static inline word_t load_word(const uint8_t *p)
{
    word_t w;
    memcpy(&w, p, sizeof w);
    return w;
}

/* Non-zero when some byte of w is zero. */
static inline int has_zero_byte(word_t w)
{
    const word_t lo = (word_t)0x0101010101010101ULL;
    const word_t hi = (word_t)0x8080808080808080ULL;
    return ((w - lo) & ~w & hi) != 0;
}

static inline int put_len(uint8_t *dst, int v)
{
    if (v < 0x80) {
        dst[0] = (uint8_t)v;
        return 1;
    }
    dst[0] = (uint8_t)((v & 0x7F) | 0x80);
    dst[1] = (uint8_t)(v >> 7);
    return 2;
}

/* Reads a length; stores it in *v and returns the bytes used, or -1. */
static inline int get_len(const uint8_t *src, int *v)
{
    int b0 = src[0];
    if (b0 < 0x80) {
        *v = b0;
        return 1;
    }
    int b1 = src[1];
    if (b1 >= 0x80)
        return -1;
    *v = (b0 & 0x7F) | (b1 << 7);
    return 2;
}

/*
 * Encodes `cur` against `old` (slen bytes, word aligned) into dst (dlen bytes).
 * Returns the delta length, 0 when unchanged, -1 on overflow (spec 3.2),
 * -2 when a run longer than LEN_MAX would have to be written.
 */
static int encode(const uint8_t *old, const uint8_t *cur, int slen, uint8_t *dst, int dlen)
{
    int i = 0, d = 0;

    if (slen == 0)
        return 0;
    if (dlen < 2)
        return -1;
    for (;;) {
        /* room for the two bytes a pair starts with */
        if (d + 2 > dlen)
            return -1;

        /* run of equal bytes */
        int start = i;
        while (i < slen && (i & (WORD - 1)) != 0 && old[i] == cur[i])
            i++;
        if (i < slen && (i & (WORD - 1)) == 0) {
            while (i + WORD <= slen && load_word(old + i) == load_word(cur + i))
                i += WORD;
            while (i < slen && old[i] == cur[i])
                i++;
        }
        if (i == slen)
            return d; /* trailing equal bytes are not encoded; 0 if unchanged */
        int zrun = i - start;
        if (zrun > LEN_MAX)
            return -2;
        d += put_len(dst + d, zrun);
        if (d + 2 > dlen)
            return -1;

        /* run of differing bytes */
        start = i;
        while (i < slen && (i & (WORD - 1)) != 0 && old[i] != cur[i])
            i++;
        if (i < slen && (i & (WORD - 1)) == 0) {
            while (i + WORD <= slen && !has_zero_byte(load_word(old + i) ^ load_word(cur + i)))
                i += WORD;
            while (i < slen && old[i] != cur[i])
                i++;
        }
        int nzrun = i - start;
        if (nzrun > LEN_MAX)
            return -2;
        d += put_len(dst + d, nzrun);
        if (d + nzrun > dlen)
            return -1;
        memcpy(dst + d, cur + start, (size_t)nzrun);
        d += nzrun;
        if (i == slen)
            return d;
    }
}

/*
 * Applies a delta of slen bytes to the page dst of dlen bytes, which holds
 * the old version. Returns the end offset of the last changed run, or -1
 * when the delta is invalid (spec 4; like QEMU, runs before the failing
 * element have already been written).
 */
static int decode(const uint8_t *src, int slen, uint8_t *dst, int dlen)
{
    int i = 0, d = 0;
    while (i < slen) {
        int zrun, nzrun, k;
        if (slen - i < 2)
            return -1;
        k = get_len(src + i, &zrun);
        if (k < 0 || (zrun == 0 && i != 0))
            return -1;
        i += k;
        d += zrun;
        if (d > dlen)
            return -1;
        if (slen - i < 2)
            return -1;
        k = get_len(src + i, &nzrun);
        if (k < 0 || nzrun == 0)
            return -1;
        i += k;
        if (d + nzrun > dlen || i + nzrun > slen)
            return -1;
        memcpy(dst + d, src + i, (size_t)nzrun);
        i += nzrun;
        d += nzrun;
    }
    return d;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "baseline: cannot open %s: %s\n", path, strerror(errno));
        exit(2);
    }
    if (fseek(f, 0, SEEK_END) != 0) {
        fprintf(stderr, "baseline: cannot seek %s\n", path);
        exit(2);
    }
    long n = ftell(f);
    rewind(f);
    uint8_t *buf = aligned_alloc(64, ((size_t)n + 63) / 64 * 64 + 64);
    if (!buf) {
        fprintf(stderr, "baseline: out of memory\n");
        exit(2);
    }
    if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "baseline: short read on %s\n", path);
        exit(2);
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        h ^= p[k];
        h *= FNV_PRIME;
    }
    return h;
}

/* Encodes every page once; returns the sum of the results (kept observable by the caller). */
static int64_t sweep(const uint8_t *old, const uint8_t *cur, size_t pages, uint8_t *out)
{
    int64_t acc = 0;
    for (size_t p = 0; p < pages; p++)
        acc += encode(old + p * PAGE, cur + p * PAGE, PAGE, out, DLEN);
    return acc;
}

/* --serve: timed sweeps on request (see the usage above). */
static int serve(const char *old_path, const char *new_path)
{
    size_t n_old, n_new;
    uint8_t *old = read_file(old_path, &n_old);
    uint8_t *cur = read_file(new_path, &n_new);
    if (n_old != n_new || n_old == 0 || n_old % PAGE != 0) {
        fprintf(stderr, "baseline: inputs must have equal, non-zero lengths, multiples of %d\n", PAGE);
        return 2;
    }
    uint8_t *out = aligned_alloc(64, DLEN);
    if (!out) {
        fprintf(stderr, "baseline: out of memory\n");
        return 2;
    }
    volatile int64_t sink = 0;
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        long n = strtol(line, NULL, 10);
        if (n < 1)
            break;
        double t0 = now_s();
        for (long k = 0; k < n; k++)
            sink += sweep(old, cur, n_old / PAGE, out);
        double t1 = now_s();
        printf("%.0f\n", (t1 - t0) * 1e9);
        fflush(stdout);
    }
    (void)sink;
    free(old);
    free(cur);
    free(out);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--serve") == 0)
        return serve(argv[2], argv[3]);
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: %s OLD NEW SECONDS [DUMP] | --serve OLD NEW\n", argv[0]);
        return 2;
    }
    size_t n_old, n_new;
    uint8_t *old = read_file(argv[1], &n_old);
    uint8_t *cur = read_file(argv[2], &n_new);
    double seconds = atof(argv[3]);
    if (n_old != n_new || n_old == 0 || n_old % PAGE != 0) {
        fprintf(stderr, "baseline: inputs must have equal, non-zero lengths, multiples of %d\n", PAGE);
        return 2;
    }
    size_t pages = n_old / PAGE;

    /* Pass 1 (untimed): every page's delta, kept for the decoder and hashed. */
    uint8_t *deltas = malloc(pages * DLEN);
    int *results = malloc(pages * sizeof(int));
    uint8_t *out = aligned_alloc(64, DLEN);
    if (!deltas || !results || !out) {
        fprintf(stderr, "baseline: out of memory\n");
        return 2;
    }
    FILE *dump = NULL;
    if (argc == 5) {
        dump = fopen(argv[4], "wb");
        if (!dump) {
            fprintf(stderr, "baseline: cannot create %s: %s\n", argv[4], strerror(errno));
            return 2;
        }
    }
    uint64_t hash = FNV_OFFSET;
    uint64_t encoded_bytes = 0;
    size_t n_delta = 0, n_unchanged = 0, n_overflow = 0;
    for (size_t p = 0; p < pages; p++) {
        int r = encode(old + p * PAGE, cur + p * PAGE, PAGE, deltas + p * DLEN, DLEN);
        if (r == -2) {
            fprintf(stderr, "baseline: page %zu has a run that cannot be encoded\n", p);
            return 2;
        }
        results[p] = r;
        uint8_t le[4] = { (uint8_t)r, (uint8_t)(r >> 8), (uint8_t)(r >> 16), (uint8_t)((uint32_t)r >> 24) };
        hash = fnv1a(hash, le, 4);
        if (dump)
            fwrite(le, 1, 4, dump);
        if (r > 0) {
            hash = fnv1a(hash, deltas + p * DLEN, (size_t)r);
            if (dump)
                fwrite(deltas + p * DLEN, 1, (size_t)r, dump);
            encoded_bytes += (uint64_t)r;
            n_delta++;
        } else if (r == 0) {
            n_unchanged++;
        } else {
            n_overflow++;
        }
    }
    if (dump && fclose(dump) != 0) {
        fprintf(stderr, "baseline: cannot write the dump\n");
        return 2;
    }

    /* Round trip check: applying each delta to the old page gives the new one. */
    uint8_t *work = read_file(argv[1], &n_old);
    size_t roundtrip_errors = 0;
    for (size_t p = 0; p < pages; p++) {
        if (results[p] <= 0)
            continue;
        if (decode(deltas + p * DLEN, results[p], work + p * PAGE, PAGE) < 0 ||
            memcmp(work + p * PAGE, cur + p * PAGE, PAGE) != 0)
            roundtrip_errors++;
    }

    /* Timed encode: whole passes over all pages until `seconds` have passed. */
    volatile int64_t sink = 0;
    int64_t acc = 0;
    size_t passes = 0;
    double t0 = now_s(), t1;
    do {
        for (size_t p = 0; p < pages; p++)
            acc += encode(old + p * PAGE, cur + p * PAGE, PAGE, out, DLEN);
        passes++;
        t1 = now_s();
    } while (t1 - t0 < seconds);
    sink += acc;
    double enc_mbps = (double)passes * (double)pages * PAGE / (t1 - t0) / 1e6;

    /* Timed decode: apply every delta again (idempotent: the page already holds the new bytes). */
    double dec_mbps = 0;
    if (n_delta > 0) {
        acc = 0;
        passes = 0;
        t0 = now_s();
        do {
            for (size_t p = 0; p < pages; p++)
                if (results[p] > 0)
                    acc += decode(deltas + p * DLEN, results[p], work + p * PAGE, PAGE);
            passes++;
            t1 = now_s();
        } while (t1 - t0 < seconds);
        sink += acc;
        dec_mbps = (double)passes * (double)n_delta * PAGE / (t1 - t0) / 1e6;
    }

    printf("{\"pages\":%zu,\"encodeMBps\":%.1f,\"decodeMBps\":%.1f,\"encodedBytes\":%" PRIu64
           ",\"deltaPages\":%zu,\"unchangedPages\":%zu,\"overflowPages\":%zu,\"roundtripErrors\":%zu"
           ",\"hash\":\"%016" PRIx64 "\"}\n",
           pages, enc_mbps, dec_mbps, encoded_bytes, n_delta, n_unchanged, n_overflow, roundtrip_errors, hash);
    (void)sink;
    free(old);
    free(cur);
    free(work);
    free(deltas);
    free(results);
    free(out);
    return roundtrip_errors == 0 ? 0 : 1;
}
