/**
 * Fuzz target for one multifd connection: the handshake, packet headers and
 * the channel's compressed stream (none, zlib, zstd, brotli, zstd-dedup), seeded with channels
 * migstream writes and mutated in headers and payloads. Oracles: only a
 * MigstreamError escapes, its offset lies inside the input and names the
 * channel once the handshake was read; decoding in random chunks gives the
 * same packets and pages, or the same error.
 */
import { createHash } from 'node:crypto';
import { MigstreamError } from '../codec/errors.js';
import { channelDeflater } from '../multifd/channel-codecs.js';
import { ChannelReader } from '../multifd/channel-reader.js';
import { COMPRESSION_FLAGS, FLAG_SYNC, INIT_BYTES, type MultifdCompression, writeInit, writePacketHeader } from '../multifd/format.js';
import '../multifd/node-zlib.js';
import '../multifd/node-zstd.js';
import { Rng } from './rng.js';
import type { CaseResult, Finding } from './targets.js';

export interface MultifdCase {
  kind: 'multifd';
  bytes: Uint8Array;
  chunkSeed: number;
}

/** A small channel: handshake, a few packets of pages (zero, patterned, random), SYNCs between them. */
function seedChannel(c: MultifdCompression, seed: number): Uint8Array {
  const r = new Rng(seed);
  const d = channelDeflater(c, 1);
  const parts: Uint8Array[] = [writeInit({ uuid: new Uint8Array(16), id: r.int(4) })];
  let num = 0n;
  const sent: Uint8Array[] = [];
  for (let k = 0; k < 4; k++) {
    const n = r.int(4);
    const pages = new Uint8Array(n * 4096);
    for (let i = 0; i < pages.length; i += 1 + r.int(64)) pages[i] = r.chance(0.5) ? i & 0xff : r.int(256);
    // Some pages repeat one the channel sent before: zstd-dedup then sends references.
    for (let i = 0; i < n && sent.length > 0; i++) if (r.chance(0.4)) pages.set(sent[r.int(sent.length)]!, i * 4096);
    for (let i = 0; i < n; i++) sent.push(pages.slice(i * 4096, (i + 1) * 4096));
    const payload = n > 0 ? d.deflate(pages) : new Uint8Array(0);
    const offsets = Array.from({ length: n }, (_, i) => (k * 8 + i) * 4096);
    parts.push(
      writePacketHeader({
        flags: (k % 2 ? FLAG_SYNC : 0) | (n > 0 ? COMPRESSION_FLAGS[c] : 0),
        pagesAlloc: 128,
        offsets,
        nextPacketSize: payload.length,
        packetNum: num++,
        ramblock: 'pc.ram',
      }),
      payload,
    );
  }
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

let seeds: Uint8Array[] | undefined;

/** A mutated seed channel: header fields, payload bytes, truncation. */
export function makeMultifdCase(r: Rng): { c: MultifdCase; how: string } {
  seeds ??= (['none', 'zlib', 'zstd', 'brotli', 'zstd-dedup'] as const).flatMap((c) => [seedChannel(c, 1), seedChannel(c, 2)]);
  const pick = r.int(seeds.length);
  const b = seeds[pick]!.slice();
  const ops: string[] = [];
  const n = r.int(4);
  for (let i = 0; i < n; i++) {
    const op = r.int(4);
    if (op === 0) {
      // a header field of the first packet: flags, pages_alloc, normal_pages, next_packet_size
      const at = INIT_BYTES + r.pick([8, 12, 16, 20, 24, 64, 320]) + r.int(4);
      b[at] = r.pick([0, 1, 0x7f, 0x80, 0xff, r.int(256)]);
      ops.push('header');
    } else if (op === 1 && b.length > INIT_BYTES) {
      b[INIT_BYTES + r.int(b.length - INIT_BYTES)] ^= 1 << r.int(8);
      ops.push('bitflip');
    } else if (op === 2) {
      b[r.int(INIT_BYTES)] = r.int(256);
      ops.push('handshake');
    } else {
      ops.push('truncate');
      return { c: { kind: 'multifd', bytes: b.subarray(0, r.int(b.length + 1)), chunkSeed: r.u32() }, how: `multifd seed ${pick} ${ops.join('+')}` };
    }
  }
  return { c: { kind: 'multifd', bytes: b, chunkSeed: r.u32() }, how: `multifd seed ${pick} ${ops.join('+') || 'as is'}` };
}

/** Decodes one channel: a digest of every packet and page, or the error. */
function decodeChannel(bytes: Uint8Array, chunks: number[] | undefined, findings: Finding[]): { key: string; error?: MigstreamError } {
  const reader = new ChannelReader(4096, 'fuzz');
  const h = createHash('sha256');
  try {
    const pieces = chunks ?? [bytes.length];
    let at = 0;
    const drain = () => {
      for (let p = reader.next(); p; p = reader.next()) h.update(`${p.offset}:${p.header.flags}:${p.header.offsets.join(',')}|`).update(p.pages);
    };
    for (const len of pieces) {
      reader.push(bytes.subarray(at, at + len));
      at += len;
      drain();
    }
    reader.end();
    drain();
    if (!reader.handshake()) throw new MigstreamError('TRUNCATED', 0, 'empty channel');
    return { key: `ok ${h.digest('hex').slice(0, 16)}` };
  } catch (e) {
    if (!(e instanceof MigstreamError)) {
      findings.push({ kind: 'escape', target: 'multifd', message: String(e), stack: (e as Error)?.stack });
      return { key: 'escape' };
    }
    if (e.code === 'INTERNAL') findings.push({ kind: 'internal', target: 'multifd', message: e.message });
    if (e.offset < 0 || e.offset > bytes.length)
      findings.push({ kind: 'bad-offset', target: 'multifd', message: `offset ${e.offset} outside the ${bytes.length}-byte input: ${e.message}` });
    if (e.offset >= INIT_BYTES && reader.init && e.context.channel === undefined)
      findings.push({ kind: 'message', target: 'multifd', message: `error past the handshake without the channel: ${e.message}` });
    return { key: `${e.code}@${e.offset}`, error: e };
  }
}

export function runMultifdCase(c: MultifdCase): CaseResult {
  const findings: Finding[] = [];
  const whole = decodeChannel(c.bytes, undefined, findings);
  const r = new Rng(c.chunkSeed);
  const chunks: number[] = [];
  for (let left = c.bytes.length; left > 0; ) {
    const n = Math.min(left, 1 + r.int(2000));
    chunks.push(n);
    left -= n;
  }
  const pieces = decodeChannel(c.bytes, chunks, findings);
  if (findings.length === 0 && whole.key !== pieces.key)
    findings.push({ kind: 'chunking', target: 'multifd', message: `whole: ${whole.key}; in ${chunks.length} chunks: ${pieces.key}` });
  return { findings: findings.slice(0, 1), outcome: whole.error ? whole.error.code : 'ok' };
}
