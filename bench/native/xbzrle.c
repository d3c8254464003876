/*
 * Native baseline for bench/xbzrle.bench.mjs: a scalar C implementation of the
 * XBZRLE codec (same grammar and overflow rules as QEMU's generic encoder,
 * docs/xbzrle.txt), written for this project. It scans eight bytes at a time
 * like QEMU's portable encoder and copies runs with memcpy.
 *
 * Usage: xbzrle PAIRS_FILE ENCODINGS_OUT SECONDS_PER_CASE
 * PAIRS_FILE (little-endian u32s): case count, then per case: name length,
 * name bytes, page size, pair count, then pair count x (old page, new page).
 * ENCODINGS_OUT receives, per case and pair, an i32 result and the encoded
 * bytes, so the JS side can check byte equality before anything is timed.
 * Each pass over a case's pairs is timed; the median and best pass rates (MB of
 * new-page bytes per second) are printed as one JSON object on stdout.
 *
 * Build: gcc -O2 -o xbzrle xbzrle.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RUN 0x3fff /* the longest run a 2-byte ULEB128 can hold */

static int put_uleb(uint8_t *out, uint32_t n)
{
    if (n < 0x80) {
        out[0] = (uint8_t)n;
        return 1;
    }
    out[0] = (uint8_t)(n | 0x80);
    out[1] = (uint8_t)(n >> 7);
    return 2;
}

static uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Length of the run of equal bytes starting at i. */
static int equal_run(const uint8_t *a, const uint8_t *b, int i, int len)
{
    int start = i;
    while (i < len && (i & 7)) {
        if (a[i] != b[i]) return i - start;
        i++;
    }
    while (i + 8 <= len && load64(a + i) == load64(b + i)) i += 8;
    while (i < len && a[i] == b[i]) i++;
    return i - start;
}

/* Length of the run of differing bytes starting at i. */
static int diff_run(const uint8_t *a, const uint8_t *b, int i, int len)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = ones << 7;
    int start = i;
    while (i < len && (i & 7)) {
        if (a[i] == b[i]) return i - start;
        i++;
    }
    while (i + 8 <= len) {
        uint64_t x = load64(a + i) ^ load64(b + i);
        if ((x - ones) & ~x & highs) break; /* some byte of this word is equal */
        i += 8;
    }
    while (i < len && a[i] != b[i]) i++;
    return i - start;
}

int xbzrle_encode(const uint8_t *old_page, const uint8_t *new_page, int slen, uint8_t *dst, int dlen)
{
    int i = 0, d = 0;
    while (i < slen) {
        if (d + 2 > dlen) return -1;
        int z = equal_run(old_page, new_page, i, slen);
        if (z == slen) return 0;
        i += z;
        if (i == slen) return d;
        if (z > MAX_RUN) return -1;
        d += put_uleb(dst + d, (uint32_t)z);
        if (d + 2 > dlen) return -1;
        int n = diff_run(old_page, new_page, i, slen);
        if (n > MAX_RUN) return -1;
        d += put_uleb(dst + d, (uint32_t)n);
        if (d + n > dlen) return -1;
        memcpy(dst + d, new_page + i, (size_t)n);
        d += n;
        i += n;
    }
    return d;
}

static int get_uleb(const uint8_t *in, uint32_t *n)
{
    if (!(in[0] & 0x80)) {
        *n = in[0];
        return 1;
    }
    if (in[1] & 0x80) return -1;
    *n = (in[0] & 0x7fu) | ((uint32_t)in[1] << 7);
    return 2;
}

int xbzrle_decode(const uint8_t *src, int slen, uint8_t *dst, int dlen)
{
    int i = 0, d = 0;
    uint32_t n;
    while (i < slen) {
        if (slen - i < 2) return -1;
        int r = get_uleb(src + i, &n);
        if (r < 0 || (i && !n)) return -1;
        i += r;
        if (d + (int)n > dlen) return -1;
        d += (int)n;
        if (slen - i < 2) return -1;
        r = get_uleb(src + i, &n);
        if (r < 0 || !n) return -1;
        i += r;
        if (d + (int)n > dlen || i + (int)n > slen) return -1;
        memcpy(dst + d, src + i, n);
        d += (int)n;
        i += (int)n;
    }
    return d;
}

/* ------------------------------------------------------------------ driver */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint32_t read_u32(FILE *f)
{
    uint8_t b[4];
    if (fread(b, 1, 4, f) != 4) {
        fprintf(stderr, "xbzrle: truncated pairs file\n");
        exit(2);
    }
    return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24;
}

static void *xalloc(size_t n)
{
    /* 64-byte alignment, like the page-aligned buffers QEMU encodes from. */
    void *p = aligned_alloc(64, (n + 63) & ~(size_t)63);
    if (!p) {
        fprintf(stderr, "xbzrle: out of memory\n");
        exit(2);
    }
    return p;
}

static volatile int sink;

/* Per-pass times of the current measurement; the median and the best pass are reported. */
#define MAX_PASSES 200000
static double passes[MAX_PASSES];
static int npasses;

struct rate {
    double median, best; /* MB/s */
};

static void record(double seconds)
{
    if (npasses < MAX_PASSES) passes[npasses++] = seconds;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static struct rate summarize(double bytes_per_pass)
{
    qsort(passes, npasses, sizeof passes[0], cmp_double);
    struct rate r = {bytes_per_pass / passes[npasses / 2] / 1e6, bytes_per_pass / passes[0] / 1e6};
    npasses = 0;
    return r;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s PAIRS_FILE ENCODINGS_OUT SECONDS_PER_CASE\n", argv[0]);
        return 2;
    }
    FILE *in = fopen(argv[1], "rb");
    FILE *out = fopen(argv[2], "wb");
    double budget = atof(argv[3]);
    if (!in || !out) {
        perror("xbzrle");
        return 2;
    }
    uint32_t cases = read_u32(in);
    printf("{\"cases\":[");
    for (uint32_t c = 0; c < cases; c++) {
        char name[256] = {0};
        uint32_t name_len = read_u32(in);
        if (name_len >= sizeof name || fread(name, 1, name_len, in) != name_len) return 2;
        int page = (int)read_u32(in);
        int pairs = (int)read_u32(in);
        uint8_t **olds = malloc(sizeof *olds * pairs), **news = malloc(sizeof *news * pairs);
        uint8_t **encs = malloc(sizeof *encs * pairs);
        int *elens = malloc(sizeof *elens * pairs);
        uint8_t *work = xalloc((size_t)page), *scratch = xalloc((size_t)page);
        for (int p = 0; p < pairs; p++) {
            olds[p] = xalloc((size_t)page);
            news[p] = xalloc((size_t)page);
            encs[p] = xalloc((size_t)page);
            if (fread(olds[p], 1, page, in) != (size_t)page || fread(news[p], 1, page, in) != (size_t)page) return 2;
            elens[p] = xbzrle_encode(olds[p], news[p], page, encs[p], page);
            int32_t r = elens[p];
            fwrite(&r, 4, 1, out);
            if (r > 0) fwrite(encs[p], 1, (size_t)r, out);
            if (r >= 0) { /* self-check: decoding must give the new page back */
                memcpy(work, olds[p], page);
                if (xbzrle_decode(encs[p], r, work, page) < 0 || memcmp(work, news[p], page) != 0) {
                    fprintf(stderr, "xbzrle: round trip failed in case %s pair %d\n", name, p);
                    return 1;
                }
            }
        }

        /* Encode, then decode into the old page (idempotent, so every pass does the same work). */
        int decodable = 0;
        for (int p = 0; p < pairs; p++) decodable += elens[p] > 0;
        struct rate enc, dec = {-1, -1};
        int acc = 0;
        double t0 = now();
        do {
            double s = now();
            for (int p = 0; p < pairs; p++) acc += xbzrle_encode(olds[p], news[p], page, scratch, page);
            record(now() - s);
        } while (now() - t0 < budget);
        enc = summarize((double)pairs * page);
        if (decodable) {
            t0 = now();
            do {
                double s = now();
                for (int p = 0; p < pairs; p++)
                    if (elens[p] > 0) acc += xbzrle_decode(encs[p], elens[p], olds[p], page);
                record(now() - s);
            } while (now() - t0 < budget);
            dec = summarize((double)decodable * page);
        }
        sink = acc;
        printf("%s{\"name\":\"%s\",\"pageSize\":%d,\"pairs\":%d,"
               "\"encode\":{\"medianMBps\":%.1f,\"bestMBps\":%.1f},\"decode\":{\"medianMBps\":%.1f,\"bestMBps\":%.1f}}",
               c ? "," : "", name, page, pairs, enc.median, enc.best, dec.median, dec.best);
        for (int p = 0; p < pairs; p++) {
            free(olds[p]);
            free(news[p]);
            free(encs[p]);
        }
        free(olds); free(news); free(encs); free(elens); free(work); free(scratch);
    }
    printf("]}\n");
    fclose(out);
    return 0;
}
