import { deflateSync } from 'node:zlib';
import { ByteWriter } from '../../src/codec/byte-writer.js';
import { StreamDecoder, decodeAll } from '../../src/stream/decoder.js';
import { RamImage } from '../../src/stream/ram-image.js';
import { StatsCollector } from '../../src/stream/stats.js';
import { StreamEncoder } from '../../src/stream/encoder.js';
import type { StreamEvent } from '../../src/stream/events.js';
import { concatChunks } from '../../src/stream/transcode.js';

export const RAM = { sectionId: 2, idstr: 'ram', instanceId: 0, versionId: 4 };
export const BLOCK = { sectionId: 1, idstr: 'block', instanceId: 0, versionId: 1 };

/** Decodes `bytes` fed in pieces of `chunk` bytes (Infinity: one push); events are deep-copied. */
export function decodeEvents(bytes: Uint8Array, chunk = Infinity): StreamEvent[] {
  const events: StreamEvent[] = [];
  const d = new StreamDecoder((ev) => events.push(copyEvent(ev)));
  if (chunk === Infinity) d.push(bytes);
  else for (let i = 0; i < bytes.length; i += chunk) d.push(bytes.subarray(i, i + chunk));
  d.end();
  return mergeDeviceState(events);
}

/** Device state arrives in as many pieces as the input had chunks; join them to compare. */
function mergeDeviceState(events: StreamEvent[]): StreamEvent[] {
  const out: StreamEvent[] = [];
  for (const ev of events) {
    const prev = out.at(-1);
    if (ev.type === 'device-state' && prev?.type === 'device-state') {
      out[out.length - 1] = { type: 'device-state', bytes: new Uint8Array([...prev.bytes, ...ev.bytes]) };
    } else out.push(ev);
  }
  return out;
}

/** Byte equality without a deep-equality walk (vitest's is slow on MiB arrays). */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;
}

function copyEvent(ev: StreamEvent): StreamEvent {
  const out: Record<string, unknown> = { ...ev };
  for (const k of ['data', 'payload', 'bytes'] as const) {
    const v = (ev as Record<string, unknown>)[k];
    if (v instanceof Uint8Array) out[k] = v.slice();
  }
  return out as StreamEvent;
}

/** FULL device section bytes: header, `data`, footer. */
export function fullSection(id: number, idstr: string, instance: number, version: number, data: Uint8Array): Uint8Array {
  return new ByteWriter().u8(4).be32(id).str8(idstr).be32(instance).be32(version).bytes(data).u8(0x7e).be32(id).take();
}

/** The device-state tail: FULL sections, EOF and (unless null) a vmdesc naming them. */
export function deviceTail(withVmdesc = true): Uint8Array {
  const a = fullSection(3, 'timer', 0, 2, Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 1, 0x7e, 0, 0, 0, 4));
  const b = fullSection(4, 'cpu_common', 0, 1, Uint8Array.of(0, 0, 0, 0, 0x7e));
  const w = new ByteWriter().bytes(a).bytes(b).u8(0);
  if (withVmdesc) {
    const json = new TextEncoder().encode('{"page_size": 4096, "devices": [{"name": "timer", "instance_id": 0}, {"name": "cpu_common", "instance_id": 0}]}');
    w.u8(6).be32(json.length).bytes(json);
  }
  return w.take();
}

export function page(fill: (i: number) => number, size = 4096): Uint8Array {
  const p = new Uint8Array(size);
  for (let i = 0; i < size; i++) p[i] = fill(i) & 0xff;
  return p;
}

/**
 * A small but complete stream: configuration, RAM START (MEM_SIZE), a PART
 * with ZERO/PAGE/XBZRLE/COMPRESS pages across two blocks, a PART starting
 * with CONTINUE, the END, and a device tail with vmdesc.
 */
export function smallStream(opts: { vmdesc?: boolean } = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  const e = new StreamEncoder((c) => parts.push(c), { chunkSize: 1 << 30 });
  e.header().configuration('pc-i440fx-7.2');
  e.sectionStart(RAM).memSize([
    { idstr: 'pc.ram', length: 4 * 4096 },
    { idstr: 'vga', length: 2 * 4096 },
  ]);
  e.ramEos().footer(2);
  e.sectionPart(2);
  e.zeroPage('pc.ram', 0);
  e.page(
    'pc.ram',
    4096,
    page((i) => i * 7),
  );
  e.page(
    'vga',
    0,
    page((i) => 255 - i),
  );
  // XBZRLE on vga:0: bytes 0..1 become 0xaa 0xbb, byte 100 becomes 0xcc
  e.xbzrlePage('vga', 0, Uint8Array.of(0, 2, 0xaa, 0xbb, 98, 1, 0xcc));
  e.ramEos().footer(2);
  e.sectionPart(2);
  e.page(
    'vga',
    4096,
    page((i) => i ^ 0x5a),
  ); // CONTINUE across the section boundary
  e.ramEos().footer(2);
  e.sectionEnd(2);
  e.flush();
  parts.push(
    compressedRecord(
      8192,
      page((i) => (i >> 4) & 0xff),
      'pc.ram',
    ),
  );
  e.ramEos().footer(2);
  e.raw(deviceTail(opts.vmdesc !== false));
  e.flush();
  return concatChunks(parts);
}

/** A COMPRESS_PAGE record (with its idstr: the decoder does not require CONTINUE). */
export function compressedRecord(offset: number, data: Uint8Array, idstr: string): Uint8Array {
  const z = deflateSync(data, { level: 1 });
  return new ByteWriter()
    .be64(offset + 0x100)
    .str8(idstr)
    .be32(z.length)
    .bytes(z)
    .take();
}

/** Decodes a whole stream into an in-memory RAM image, with inspect's statistics. */
export function decodeRam(stream: Uint8Array): { ram: RamImage; stats: StatsCollector } {
  const ram = new RamImage();
  const stats = new StatsCollector();
  decodeAll(stream, (ev) => {
    stats.handle(ev);
    if (ev.type === 'ram-blocks') ram.setBlocks(ev.blocks);
    else if (ev.type === 'page') ram.apply(ev);
  });
  return { ram, stats };
}
