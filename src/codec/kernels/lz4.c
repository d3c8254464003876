// LZ4 block kernels for WebAssembly: a batch of pages per call, so the cost of crossing into
// wasm and copying is paid once per batch, not once per page.
//
// lz4_compress_pages: the block compressor of lz4_flex 0.9 (MIT, github.com/PSeitz/lz4_flex,
//   src/block/compress.rs, the version lz4-wasm-nodejs 0.9.2 bundles), rewritten in C for inputs
//   below 64 KiB so that it writes the same bytes: its 16-bit position table of
//   clamp(nextpow2(n), 256, 16384) / 2 entries, hash = read32 * 2654435761 >> 16 >> shift,
//   the step schedule (32 misses per step), no "immediate next match" shortcut, and matches that
//   stop 6 bytes before the end. test/lz4-kernels.test.ts proves the identity.
// lz4_decompress_pages: a bounds-checked LZ4 block decoder; every read stays inside the block,
//   every write inside its page. Failures return an error code and the offset in the block.
//
// SPDX-License-Identifier: MIT

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef __SIZE_TYPE__ size_t;

#define EXPORT(name) __attribute__((export_name(#name)))

static inline u32 read32(const u8 *p) {
  u32 v;
  __builtin_memcpy(&v, p, 4);
  return v;
}

static inline void copy16(u8 *d, const u8 *s) { __builtin_memcpy(d, s, 16); }
static inline void copy8(u8 *d, const u8 *s) { __builtin_memcpy(d, s, 8); }

typedef unsigned long long u64;
static inline u64 read64(const u8 *p) {
  u64 v;
  __builtin_memcpy(&v, p, 8);
  return v;
}

// ---------------------------------------------------------------------------------- compression

#define MINMATCH 4
#define MFLIMIT 12
#define END_OFFSET 6 // LAST_LITERALS + 1: matches stop this far from the end
#define MIN_LENGTH (MFLIMIT + 1)

static u16 table[8192];

static inline u32 hash_at(const u8 *in, u32 pos, u32 shift) { return ((read32(in + pos) * 2654435761u) >> 16) >> shift; }

static inline u8 *write_length(u8 *op, u32 n) {
  for (; n >= 255; n -= 255) *op++ = 255;
  *op++ = (u8)n;
  return op;
}

static u8 *last_literals(u8 *op, const u8 *in, u32 start, u32 n) {
  u32 lit = n - start;
  if (lit >= 15) {
    *op++ = 0xf0;
    op = write_length(op, lit - 15);
  } else {
    *op++ = (u8)(lit << 4);
  }
  __builtin_memcpy(op, in + start, lit);
  return op + lit;
}

// Compresses in[0, n) (n < 65535) into out, which has room for lz4_bound(n) + 16 bytes (and
// in[n, n + 16) may be read); returns the block's size.
static u32 compress_block(const u8 *in, u32 n, u8 *out) {
  u8 *op = out;
  if (n < MIN_LENGTH) return (u32)(last_literals(op, in, 0, n) - out);
  u32 size = 256;
  while (size < n && size < 16384) size <<= 1;
  size >>= 1;
  u32 shift = 16 - __builtin_ctz(size);
  __builtin_memset(table, 0, size * sizeof(u16));

  const u32 end_check = n - MFLIMIT;
  u32 literal_start = 0;
  table[hash_at(in, 0, shift)] = 0;
  u32 cur = 1;
  for (;;) {
    u32 non_match = 1 << 5;
    u32 next = cur;
    u32 candidate;
    for (;;) {
      u32 step = non_match >> 5;
      non_match++;
      cur = next;
      next += step;
      if (cur > end_check) return (u32)(last_literals(op, in, literal_start, n) - out);
      u32 h = hash_at(in, cur, shift);
      candidate = table[h];
      table[h] = (u16)cur;
      if (read32(in + candidate) == read32(in + cur)) break;
    }
    while (candidate > 0 && cur > literal_start && in[cur - 1] == in[candidate - 1]) {
      cur--;
      candidate--;
    }
    u32 lit = cur - literal_start;
    u32 offset = cur - candidate;
    cur += MINMATCH;
    candidate += MINMATCH;
    // count equal bytes, stopping END_OFFSET bytes before the end (candidate < cur, so its limit is never the smaller)
    u32 start = cur;
    u32 limit = n - cur > END_OFFSET ? n - END_OFFSET : cur;
    while (cur + 8 <= limit) {
      u64 diff = read64(in + cur) ^ read64(in + candidate);
      if (diff) {
        cur += __builtin_ctzll(diff) >> 3;
        goto counted;
      }
      cur += 8;
      candidate += 8;
    }
    while (cur < limit && in[cur] == in[candidate]) {
      cur++;
      candidate++;
    }
  counted:;
    u32 dup = cur - start;
    table[hash_at(in, cur - 2, shift)] = (u16)(cur - 2);

    u8 *token = op++;
    u8 t = lit < 15 ? (u8)(lit << 4) : 0xf0;
    t |= dup < 15 ? (u8)dup : 0xf;
    *token = t;
    if (lit >= 15) op = write_length(op, lit - 15);
    // wild copy: up to 15 bytes past the literals, which the next writes overwrite (the caller leaves room)
    for (u32 i = 0; i < lit; i += 16) copy16(op + i, in + literal_start + i);
    op += lit;
    *op++ = (u8)offset;
    *op++ = (u8)(offset >> 8);
    if (dup >= 15) op = write_length(op, dup - 15);
    literal_start = cur;
  }
}

// Compresses `count` pages of `page_size` bytes (< 65535) at `in` into consecutive blocks at
// `out` (room for count * lz4_bound(page_size) + 16, and 16 readable bytes after the input);
// writes each block's size to `sizes`, returns the total.
EXPORT(lz4_compress_pages) u32 lz4_compress_pages(const u8 *in, u32 page_size, u32 count, u8 *out, u32 *sizes) {
  u8 *op = out;
  for (u32 i = 0; i < count; i++) {
    u32 s = compress_block(in + (size_t)i * page_size, page_size, op);
    sizes[i] = s;
    op += s;
  }
  return (u32)(op - out);
}

// ------------------------------------------------------------- compression, liblz4's algorithm

// liblz4 1.9's LZ4_compress_fast for inputs up to 64 KiB, as migstream's TypeScript port
// (src/codec/lz4-block.ts, the compressor named 'migstream-lz4') does it: a 2^13-entry table of
// 16-bit positions, hash = read32 * 2654435761 >> 19, the skip schedule
// step = (acceleration << 6)++ >> 6, the "immediate next match" test, matches that stop 5 bytes
// before the end. Same bytes as the port at every acceleration (test/lz4-kernels.test.ts).
#define LASTLITERALS 5
#define SKIP_TRIGGER 6

static u16 fast_table[1 << 13];

static inline u32 fast_hash(const u8 *p) { return (read32(p) * 2654435761u) >> 19; }

static u32 compress_fast(const u8 *in, u32 n, u8 *out, u32 acceleration) {
  u8 *op = out;
  u32 anchor = 0;
  if (n >= MIN_LENGTH) {
    __builtin_memset(fast_table, 0, sizeof fast_table);
    const u32 mflimit_plus_one = n - MFLIMIT + 1;
    const u32 match_limit = n - LASTLITERALS;
    fast_table[fast_hash(in)] = 0;
    u32 ip = 1;
    u32 forward_h = fast_hash(in + ip);
    for (;;) {
      u32 match;
      u32 forward_ip = ip;
      u32 step = 1;
      u32 search_nb = acceleration << SKIP_TRIGGER;
      do {
        u32 h = forward_h;
        match = fast_table[h];
        ip = forward_ip;
        forward_ip += step;
        step = search_nb++ >> SKIP_TRIGGER;
        if (forward_ip > mflimit_plus_one) goto last;
        forward_h = fast_hash(in + forward_ip);
        fast_table[h] = (u16)ip;
      } while (read32(in + match) != read32(in + ip));

      while (ip > anchor && match > 0 && in[ip - 1] == in[match - 1]) {
        ip--;
        match--;
      }
      u32 lit = ip - anchor;
      u8 *token = op++;
      if (lit >= 15) {
        *token = 0xf0;
        op = write_length(op, lit - 15);
      } else {
        *token = (u8)(lit << 4);
      }
      for (u32 i = 0; i < lit; i += 16) copy16(op + i, in + anchor + i);
      op += lit;

      for (;;) {
        u32 offset = ip - match;
        *op++ = (u8)offset;
        *op++ = (u8)(offset >> 8);
        u32 a = ip + MINMATCH;
        u32 b = match + MINMATCH;
        while (a + 8 <= match_limit) {
          u64 diff = read64(in + a) ^ read64(in + b);
          if (diff) {
            a += __builtin_ctzll(diff) >> 3;
            goto counted;
          }
          a += 8;
          b += 8;
        }
        while (a < match_limit && in[a] == in[b]) {
          a++;
          b++;
        }
      counted:;
        u32 code = a - (ip + MINMATCH);
        ip = a;
        if (code >= 15) {
          *token += 15;
          op = write_length(op, code - 15);
        } else {
          *token += (u8)code;
        }
        anchor = ip;
        if (ip >= mflimit_plus_one) goto last;
        fast_table[fast_hash(in + ip - 2)] = (u16)(ip - 2);
        u32 h = fast_hash(in + ip);
        match = fast_table[h];
        fast_table[h] = (u16)ip;
        if (read32(in + match) != read32(in + ip)) break;
        token = op++;
        *token = 0;
      }
      forward_h = fast_hash(in + ++ip);
    }
  }
last:
  return (u32)(last_literals(op, in, anchor, n) - out);
}

// lz4_compress_pages with liblz4's algorithm at `acceleration` (1..65537); page_size at most 65547.
EXPORT(lz4_compress_fast_pages) u32 lz4_compress_fast_pages(const u8 *in, u32 page_size, u32 count, u8 *out, u32 *sizes, u32 acceleration) {
  u8 *op = out;
  for (u32 i = 0; i < count; i++) {
    u32 s = compress_fast(in + (size_t)i * page_size, page_size, op, acceleration);
    sizes[i] = s;
    op += s;
  }
  return (u32)(op - out);
}

// -------------------------------------------------------------------------------- decompression

// Error codes; the TypeScript side turns them into messages (src/codec/kernels/lz4-kernels.ts).
enum {
  OK = 0,
  E_NO_LAST_LITERALS = 1, // the block ends before its last literals
  E_LITERAL_LENGTH = 2,   // a literal length runs past the block
  E_LITERALS_BLOCK = 3,   // literals run past the block
  E_LITERALS_PAGE = 4,    // literals run past the page
  E_OFFSET_BLOCK = 5,     // the match offset runs past the block
  E_OFFSET = 6,           // the match offset points before the page
  E_MATCH_LENGTH = 7,     // a match length runs past the block
  E_MATCH_PAGE = 8,       // the match runs past the page
  E_SHORT = 9,            // the block holds fewer bytes than the page
};

static u32 fail_at;
static u32 fail_bytes;

// Decodes one block into dst, which it must fill exactly (`size` bytes).
static int decompress_block(const u8 *src, u32 srclen, u8 *dst, u32 size) {
  const u8 *ip = src;
  const u8 *const iend = src + srclen;
  u8 *op = dst;
  u8 *const oend = dst + size;
  for (;;) {
    if (ip >= iend) {
      fail_at = (u32)(ip - src);
      return E_NO_LAST_LITERALS;
    }
    u32 token = *ip++;
    u32 lit = token >> 4;
    if (lit != 15 && iend - ip >= 16 && oend - op >= 16) {
      // short literals with room on both sides: one 16-byte copy, the excess rewritten later
      copy16(op, ip);
    } else {
      if (lit == 15) {
        u32 s;
        do {
          if (ip >= iend) {
            fail_at = (u32)(ip - src);
            return E_LITERAL_LENGTH;
          }
          s = *ip++;
          lit += s;
        } while (s == 255 && lit < 0x40000000u);
      }
      if (lit > (u32)(iend - ip)) {
        fail_at = (u32)(ip - src);
        return E_LITERALS_BLOCK;
      }
      if (lit > (u32)(oend - op)) {
        fail_at = (u32)(ip - src);
        return E_LITERALS_PAGE;
      }
      __builtin_memmove(op, ip, lit);
    }
    ip += lit;
    op += lit;
    if (ip == iend) break; // the last sequence is literals only
    if (iend - ip < 2) {
      fail_at = (u32)(ip - src);
      return E_OFFSET_BLOCK;
    }
    u32 offset = ip[0] | ((u32)ip[1] << 8);
    if (offset == 0 || offset > (u32)(op - dst)) {
      fail_at = (u32)(ip - src);
      fail_bytes = offset;
      return E_OFFSET;
    }
    ip += 2;
    u32 len = token & 15;
    if (len == 15) {
      u32 s;
      do {
        if (ip >= iend) {
          fail_at = (u32)(ip - src);
          return E_MATCH_LENGTH;
        }
        s = *ip++;
        len += s;
      } while (s == 255 && len < 0x40000000u);
    }
    len += MINMATCH;
    if (len > (u32)(oend - op)) {
      fail_at = (u32)(ip - src);
      return E_MATCH_PAGE;
    }
    const u8 *m = op - offset;
    u8 *const stop = op + len;
    if (offset >= 16) {
      if ((u32)(oend - op) >= ((len + 15) & ~15u)) {
        // 16-byte steps never read a byte this match has not written yet
        do {
          copy16(op, m);
          op += 16;
          m += 16;
        } while (op < stop);
      } else {
        for (; op + 16 <= stop; op += 16, m += 16) copy16(op, m);
        while (op < stop) *op++ = *m++;
      }
    } else if (offset == 1) {
      __builtin_memset(op, *m, len);
    } else if (offset >= 8) {
      for (; op + 8 <= stop; op += 8, m += 8) copy8(op, m);
      while (op < stop) *op++ = *m++;
    } else {
      while (op < stop) *op++ = *m++; // overlapping copies repeat the pattern
    }
    op = stop;
  }
  if (op != oend) {
    fail_at = (u32)(ip - src);
    fail_bytes = (u32)(op - dst);
    return E_SHORT;
  }
  return OK;
}

// Decodes `count` blocks (back to back at `in`, sizes in `sizes`) into consecutive pages of
// `page_size` bytes at `out`. Returns -1, or the index of the first block that failed (then
// lz4_error() says why, lz4_error_at() where in the block, lz4_error_bytes() how much it held or the bad offset).
static int last_error;

EXPORT(lz4_decompress_pages) int lz4_decompress_pages(const u8 *in, const u32 *sizes, u32 count, u32 page_size, u8 *out) {
  const u8 *ip = in;
  for (u32 i = 0; i < count; i++) {
    int e = decompress_block(ip, sizes[i], out + (size_t)i * page_size, page_size);
    if (e) {
      last_error = e;
      return (int)i;
    }
    ip += sizes[i];
  }
  return -1;
}

EXPORT(lz4_error) int lz4_error(void) { return last_error; }
EXPORT(lz4_error_at) u32 lz4_error_at(void) { return fail_at; }
EXPORT(lz4_error_bytes) u32 lz4_error_bytes(void) { return fail_bytes; }

extern u8 __heap_base;
// Where callers may lay out their buffers (everything above is free; the JS side grows the memory).
EXPORT(heap_base) u32 heap_base(void) { return (u32)(size_t)&__heap_base; }
