/*
 * Native baseline for bench/line-rate.mjs: memory-read bandwidth of a zero-page scan in C.
 * Allocates SIZE bytes of zeros (touched first), then checks every 4 KiB page for a non-zero
 * byte with a plain 64-bit OR loop (vectorised at -O3); prints the best of 5 passes as JSON.
 *
 * Usage: zero-scan SIZE        Build: gcc -O3 -march=native -o zero-scan zero-scan.c
 * SPDX-License-Identifier: MIT
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int is_zero_page(const uint64_t *p, size_t words)
{
    uint64_t acc = 0;
    for (size_t i = 0; i < words; i++) acc |= p[i];
    return acc == 0;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    size_t size = argc > 1 ? strtoull(argv[1], NULL, 10) : (256u << 20);
    size_t page = 4096;
    uint64_t *buf = aligned_alloc(64, size);
    if (!buf) return 1;
    memset(buf, 0, size);
    double best = 1e30;
    size_t zero = 0;
    for (int pass = 0; pass < 5; pass++) {
        double t0 = now();
        zero = 0;
        for (size_t at = 0; at < size; at += page) zero += is_zero_page(buf + at / 8, page / 8);
        double t = now() - t0;
        if (t < best) best = t;
    }
    printf("{\"bytes\": %zu, \"zeroPages\": %zu, \"bestSeconds\": %.6f, \"MBps\": %.1f}\n", size, zero, best, size / best / 1e6);
    free(buf);
    return zero == size / page ? 0 : 2;
}
