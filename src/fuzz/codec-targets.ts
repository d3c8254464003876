/**
 * The page-decoder fuzz targets: XBZRLE against QEMU's decoder transcribed
 * byte by byte, and the zlib and LZ4 page decoders of this tree against each
 * other (a differential target with fewer than two decoders is a harness
 * finding, never a pass).
 */
import { xbzrleDecode } from '../xbzrle/decode.js';
import { lz4DecompressInto } from '../codec/lz4-block.js';
import { lz4KernelDecompressInto } from '../codec/kernels/lz4-kernels.js';
import { fflateZlib } from '../codec/zlib-page.js';
import { lz4WasmDecompress } from '../stream/lz4-wasm.js';
import { nodeZlib } from '../stream/zlib-node.js';
import { MigstreamError } from '../codec/errors.js';
import { CANARY, GUARD } from './sparse-ram.js';
import type { Finding, FuzzCase } from './targets.js';

/** The page decoders compared against each other (and against inflatePageNode for zlib). */
export interface ExtraCodecs {
  zlib: { name: string; inflate(src: Uint8Array, pageSize: number): Uint8Array }[];
  lz4: { name: string; decode(src: Uint8Array, pageSize: number): Uint8Array }[];
}

export const NO_EXTRAS: ExtraCodecs = { zlib: [], lz4: [] };

/** Names of every page decoder a fuzz run must have: the smoke test asserts they all loaded. */
export const EXPECTED_CODECS = { zlib: ['fflate', 'node:zlib'], lz4: ['lz4-block', 'lz4-wasm', 'lz4-kernel'] } as const;

/**
 * The zlib and LZ4 page decoders of this tree. They are imported statically: a codec that fails
 * to load fails the run, instead of silently leaving a differential target without a partner.
 */
export async function loadExtraCodecs(): Promise<ExtraCodecs> {
  return {
    zlib: [fflateZlib, nodeZlib].map((z) => ({ name: z.name, inflate: z.inflate.bind(z) })),
    lz4: [
      {
        name: 'lz4-block',
        decode: (src, pageSize) => {
          const out = new Uint8Array(pageSize);
          lz4DecompressInto(src, out);
          return out;
        },
      },
      { name: 'lz4-wasm', decode: lz4WasmDecompress },
      {
        name: 'lz4-kernel',
        decode: (src, pageSize) => {
          const out = new Uint8Array(pageSize);
          lz4KernelDecompressInto(src, out);
          return out;
        },
      },
    ],
  };
}

/** QEMU's xbzrle_decode_buffer, transcribed byte by byte: the reference. */
export function referenceXbzrle(src: Uint8Array, dst: Uint8Array): number {
  const slen = src.length;
  const dlen = dst.length;
  let i = 0;
  let d = 0;
  const uleb = (): [number, number] => {
    const a = src[i]!;
    if (!(a & 0x80)) return [a, 1];
    const b = src[i + 1]!;
    if (b & 0x80) return [0, -1];
    return [(a & 0x7f) | (b << 7), 2];
  };
  while (i < slen) {
    if (slen - i < 2) return -1;
    let [count, ret] = uleb();
    if (ret < 0 || (i && !count)) return -1;
    i += ret;
    d += count;
    if (d > dlen) return -1;
    if (slen - i < 2) return -1;
    [count, ret] = uleb();
    if (ret < 0 || !count) return -1;
    i += ret;
    if (d + count > dlen || i + count > slen) return -1;
    for (let k = 0; k < count; k++) dst[d + k] = src[i + k]!;
    d += count;
    i += count;
  }
  return d;
}

export function runXbzrleCase(c: Extract<FuzzCase, { kind: 'xbzrle' }>): Finding[] {
  const findings: Finding[] = [];
  const { bytes, pageSize, align, fill } = c;
  // The page sits at an odd offset inside a larger buffer with guard bytes around it.
  const slab = new Uint8Array(pageSize + 2 * GUARD + align).fill(CANARY);
  const page = slab.subarray(GUARD + align, GUARD + align + pageSize);
  for (let i = 0; i < pageSize; i++) page[i] = (i * fill) >>> 3;
  const ref = page.slice();
  const want = referenceXbzrle(bytes, ref);
  // The source too sits at an offset inside a larger buffer.
  const srcSlab = new Uint8Array(bytes.length + 3);
  srcSlab.set(bytes, align % 3);
  const src = srcSlab.subarray(align % 3, (align % 3) + bytes.length);
  let got: number;
  try {
    got = xbzrleDecode(src, page, 1000);
  } catch (e) {
    if (!(e instanceof MigstreamError)) {
      findings.push({ kind: 'escape', target: 'xbzrle', message: String(e), stack: (e as Error)?.stack });
      return findings;
    }
    got = -1;
  }
  for (let i = 0; i < GUARD + align; i++) {
    if (slab[i] !== CANARY) findings.push({ kind: 'page-decoder', target: 'xbzrle', message: `wrote ${GUARD + align - i} bytes before the page` });
  }
  for (let i = GUARD + align + pageSize; i < slab.length; i++) {
    if (slab[i] !== CANARY)
      findings.push({ kind: 'page-decoder', target: 'xbzrle', message: `wrote byte ${i - GUARD - align} past the ${pageSize}-byte page` });
  }
  if (got !== want) findings.push({ kind: 'page-decoder', target: 'xbzrle', message: `returned ${got}, QEMU's decoder ${want}` });
  else if (want >= 0 && Buffer.compare(page, ref) !== 0)
    findings.push({ kind: 'page-decoder', target: 'xbzrle', message: 'decoded page differs from the reference' });
  return findings.slice(0, 1);
}

/**
 * The decoder turns whatever a page codec throws into DECOMPRESS, so the codecs must reject with a
 * plain Error: a TypeError, RangeError or wasm trap is a bug the decoder would hide as a bad page.
 */
export function plainError(e: unknown): boolean {
  return e instanceof Error && Object.getPrototypeOf(e) === Error.prototype;
}

export function runCodecCase(
  target: string,
  decoders: { name: string; decode(src: Uint8Array, pageSize: number): Uint8Array }[],
  bytes: Uint8Array,
  pageSize: number,
): Finding[] {
  const results: { name: string; out?: Uint8Array; error?: unknown }[] = [];
  for (const dec of decoders) {
    try {
      const out = dec.decode(bytes, pageSize);
      results.push({ name: dec.name, out: out.slice() });
      if (out.length > pageSize) return [{ kind: 'page-decoder', target, message: `${dec.name} returned ${out.length} bytes for a ${pageSize}-byte page` }];
    } catch (e) {
      if (!plainError(e)) return [{ kind: 'escape', target, message: `${dec.name}: ${String(e)}`, stack: (e as Error)?.stack }];
      results.push({ name: dec.name, error: e });
    }
  }
  for (let i = 1; i < results.length; i++) {
    const a = results[0]!;
    const b = results[i]!;
    // fflate builds Huffman tables that zlib rejects as invalid ("invalid code lengths set", …) and
    // decodes them anyway; its inflate checks the Adler-32, so what it accepts is what was compressed.
    // Documented leniency of the portable path (docs/fuzzing.md), not a finding.
    if (
      b.name === 'fflate' &&
      a.out === undefined &&
      b.out !== undefined &&
      /invalid (code lengths|distances|literal\/lengths) set|invalid code/.test(String(a.error))
    )
      continue;
    if ((a.out === undefined) !== (b.out === undefined)) {
      return [
        {
          kind: 'page-decoder',
          target,
          message: `${a.name}: ${a.out ? `${a.out.length} bytes` : String(a.error)}; ${b.name}: ${b.out ? `${b.out.length} bytes` : String(b.error)}`,
        },
      ];
    }
    if (a.out && b.out && Buffer.compare(a.out, b.out) !== 0)
      return [{ kind: 'page-decoder', target, message: `${a.name} and ${b.name} inflate to different bytes` }];
  }
  return [];
}
