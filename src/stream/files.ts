import { createHash } from 'node:crypto';
import { decodeRecording } from '../relay/decode-recording.js';
import { isRecordingDir } from '../relay/recording.js';
import { decodeMultifd, multifdChannelsOf } from '../multifd/files.js';
import { closeSync, createReadStream, ftruncateSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { MigstreamError } from '../codec/errors.js';
import { StreamDecoder, type DecoderOptions } from './decoder.js';
import type { BlockChunkEvent, EventHandler, PageEvent, RamBlockInfo } from './events.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { applyPage, RamImage, type RamStore } from './ram-image.js';
import { VerifyingRamStore } from './digest.js';
import type { StreamEvent } from './events.js';
import { declaredEntry } from './extensions/extension.js';
import { iterationDigests } from './extensions/iteration-digests.js';

/** File name `extract` uses for a RAMBlock or a block device: the idstr, URI-encoded. */
export function ramBlockFileName(idstr: string): string {
  return fileName(idstr, '.bin');
}

export function diskFileName(device: string): string {
  return fileName(device, '.img');
}

/** NAME_MAX of Linux and most file systems. */
const NAME_MAX = 255;

/**
 * `name` URI-encoded, plus `ext`. A name too long for a file name (QEMU's
 * idstrs reach 255 bytes, and encoding can triple them) keeps a prefix, then
 * "+" (which encodeURIComponent never leaves, so no short name looks alike)
 * and a hash of the whole name.
 */
function fileName(name: string, ext: string): string {
  const encoded = encodeURIComponent(name);
  if (encoded.length + ext.length <= NAME_MAX) return `${encoded}${ext}`;
  const hash = createHash('sha256').update(name).digest('hex').slice(0, 16);
  const prefix = encoded.slice(0, NAME_MAX - ext.length - hash.length - 1).replace(/%[0-9A-F]?$/, '');
  return `${prefix}+${hash}${ext}`;
}

/**
 * RAM written by offset into one sparse file per RAMBlock, so extracting a
 * large guest never holds its RAM in memory. XBZRLE pages read the page back
 * first, since they apply to its current content.
 */
export class FileRamSink implements RamStore {
  /** `written`: pages written so far, made on the first page (its size depends on the stream's page size). */
  private readonly files = new Map<string, { fd: number; length: number; written: Uint8Array | undefined }>();
  private scratch = new Uint8Array(4096);
  private view = new Uint8Array(4096);
  /** Pages not written yet: `runLength` bytes of `run` go to `runFd` at `runStart`. */
  private readonly run = new Uint8Array(1 << 20);
  private runFd = -1;
  private runStart = 0;
  private runLength = 0;

  constructor(
    private readonly dir: string,
    private readonly pathOf: (idstr: string) => string = (id) => `${dir}/${ramBlockFileName(id)}`,
  ) {}

  setBlocks(blocks: RamBlockInfo[]): void {
    this.flushRun();
    for (const b of blocks) {
      const f = this.files.get(b.idstr);
      if (f && f.length === b.length) continue;
      if (f) {
        // Like RamImage: a block declared again with another length starts over, all zeros.
        ftruncateSync(f.fd, 0);
        ftruncateSync(f.fd, b.length);
        f.length = b.length;
        f.written = undefined;
        continue;
      }
      const fd = openSync(this.pathOf(b.idstr), 'w+');
      ftruncateSync(fd, b.length);
      this.files.set(b.idstr, { fd, length: b.length, written: undefined });
    }
  }

  apply(ev: PageEvent): void {
    const f = this.files.get(ev.block.idstr)!;
    const written = (f.written ??= new Uint8Array(Math.ceil(f.length / ev.pageSize / 8)));
    const pageIndex = ev.offset / ev.pageSize;
    const seen = (written[pageIndex >>> 3]! >>> (pageIndex & 7)) & 1;
    if (ev.kind === 'zero' && ev.fill === 0 && !seen) return; // the sparse file already reads as zeros
    written[pageIndex >>> 3]! |= 1 << (pageIndex & 7);
    if (ev.kind === 'xbzrle' || (ev.kind === 'compressed' && ev.data.length < ev.pageSize)) {
      // applies to the page's current content: read it back (after the pending run is written)
      this.flushRun();
      if (this.scratch.length !== ev.pageSize) this.scratch = new Uint8Array(ev.pageSize);
      const page = this.scratch;
      if (seen) readSync(f.fd, page, 0, ev.pageSize, ev.offset);
      else page.fill(0);
      applyPage(ev, page);
      writeSync(f.fd, page, 0, ev.pageSize, ev.offset);
      return;
    }
    // A whole page: appended to the run of adjacent pages, written in one call (pages arrive in address order).
    if (this.runFd !== f.fd || ev.offset !== this.runStart + this.runLength || this.runLength + ev.pageSize > this.run.length) {
      this.flushRun();
      this.runFd = f.fd;
      this.runStart = ev.offset;
    }
    applyPage(ev, this.run.subarray(this.runLength, this.runLength + ev.pageSize));
    this.runLength += ev.pageSize;
  }

  private flushRun(): void {
    if (this.runLength === 0) return;
    let at = 0;
    while (at < this.runLength) at += writeSync(this.runFd, this.run, at, this.runLength - at, this.runStart + at);
    this.runLength = 0;
    this.runFd = -1;
  }

  page(idstr: string, offset: number, pageSize: number): Uint8Array {
    if (this.view.length !== pageSize) this.view = new Uint8Array(pageSize);
    this.read(idstr, offset, this.view);
    return this.view;
  }

  read(idstr: string, start: number, out: Uint8Array): void {
    this.flushRun();
    const f = this.files.get(idstr)!;
    let at = 0;
    while (at < out.length) {
      const n = readSync(f.fd, out, at, out.length - at, start + at);
      if (n === 0) {
        out.fill(0, at);
        return;
      }
      at += n;
    }
  }

  close(): void {
    this.flushRun();
    for (const f of this.files.values()) closeSync(f.fd);
    this.files.clear();
  }
}

/**
 * Block-migration chunks written by sector into one file per device. QEMU's
 * 1 MiB payload of the last chunk runs past the device end; the receiver clips
 * it to its own device size, so pass `sizes` when known.
 */
export class FileDiskSink {
  private readonly files = new Map<string, { fd: number; extent: number }>();
  private zeros = new Uint8Array(0);

  constructor(
    private readonly dir: string,
    private readonly sizes: Record<string, number> = {},
  ) {}

  chunk(ev: BlockChunkEvent): void {
    let f = this.files.get(ev.device);
    if (!f) {
      f = { fd: openSync(`${this.dir}/${diskFileName(ev.device)}`, 'w+'), extent: 0 };
      this.files.set(ev.device, f);
    }
    const start = ev.sector * 512;
    const size = this.sizes[ev.device];
    const length = size === undefined ? ev.length : Math.max(0, Math.min(ev.length, size - start));
    if (length === 0) return;
    try {
      if (ev.zero) {
        if (this.zeros.length < length) this.zeros = new Uint8Array(length);
        writeSync(f.fd, this.zeros, 0, length, start);
      } else {
        writeSync(f.fd, ev.data, 0, length, start);
      }
    } catch (e) {
      // A hostile sector can lie past what the file system holds (ext4: 16 TiB): a typed error, not a crash.
      const code = (e as NodeJS.ErrnoException).code;
      if (code !== 'EFBIG' && code !== 'EINVAL') throw e;
      throw new MigstreamError('LIMIT', 0, `block chunk of "${ev.device}" at byte ${start}: the file system cannot hold it (${code})`, { device: ev.device });
    }
    f.extent = Math.max(f.extent, start + length);
  }

  /** Sizes the files (to `sizes` when given) and closes them; returns device → bytes. */
  close(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [device, f] of this.files) {
      const size = this.sizes[device] ?? f.extent;
      ftruncateSync(f.fd, size);
      closeSync(f.fd);
      out[device] = size;
    }
    this.files.clear();
    return out;
  }
}

/**
 * Feeds a file (or stdin for "-") through a decoder chunk by chunk. Resolves
 * with the number of bytes read; rejects with the decoder's MigstreamError.
 * Stdin is read synchronously (see decodeStdin): the event loop waits while it lasts.
 * `reuseBuffers`: the handler keeps no view of an event's bytes once it returns
 * (the transcoder copies what it keeps), so stdin's buffers may be refilled.
 */
export async function decodeFile(path: string, handler: EventHandler, options: DecoderOptions = {}, reuseBuffers = false): Promise<number> {
  if (path !== '-' && isRecordingDir(path)) return decodeRecording(path, handler, options);
  const channels = multifdChannelsOf(path);
  if (channels.length > 0) return (await decodeMultifd(path, channels, handler, options)).bytes;
  const decoder = new StreamDecoder(handler, options);
  if (path === '-') return decodeStdin(decoder, reuseBuffers);
  const input = createReadStream(path, { highWaterMark: 1 << 20 });
  let bytes = 0;
  for await (const chunk of input as AsyncIterable<Buffer>) {
    bytes += chunk.length;
    decoder.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
  }
  decoder.end();
  return bytes;
}

export { MigstreamError };

const SLAB = 4 << 20;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Stdin read with readSync straight into a slab, each read taking what the
 * pipe holds (up to 1 MiB): no stream machinery per 64 KiB, and successive
 * reads are adjacent in one buffer, so the decoder joins a record that spans
 * two reads without copying (StreamDecoder.compact). A read never waits for
 * more than the pipe has, so a slow writer's records are decoded as they come.
 */
function decodeStdin(decoder: StreamDecoder, reuse: boolean): number {
  let slab = new Uint8Array(SLAB);
  // With `reuse`, two slabs take turns: reading into fresh memory faulted in every page of the stream once more
  // (page faults 27k → 23k on the 512 MiB stream: ~0.05 s of CPU). A slab the decoder still holds bytes of is replaced.
  const slabs = reuse ? [slab, new Uint8Array(SLAB)] : undefined;
  let turn = 0;
  let at = 0;
  let bytes = 0;
  let wait = 0;
  for (;;) {
    if (slab.length - at < 65536) {
      if (slabs) {
        turn ^= 1;
        if (decoder.holds(slabs[turn]!.buffer)) slabs[turn] = new Uint8Array(SLAB);
        slab = slabs[turn]!;
      } else slab = new Uint8Array(SLAB);
      at = 0;
    }
    let n: number;
    try {
      n = readSync(0, slab, at, Math.min(1 << 20, slab.length - at), null);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EOF') break;
      if (code !== 'EAGAIN') throw e;
      Atomics.wait(sleeper, 0, 0, Math.min(2, 0.05 * 2 ** wait++)); // a non-blocking stdin that is empty for now
      continue;
    }
    wait = 0;
    if (n === 0) break;
    decoder.push(slab.subarray(at, at + n));
    at += n;
    bytes += n;
  }
  decoder.end();
  return bytes;
}

/**
 * RAM in memory while it is small, in sparse temporary files once MEM_SIZE
 * declares more than `inMemoryBytes`: transcode and verify of a large guest
 * then run in bounded memory.
 */
export class AutoRamStore implements RamStore {
  private store: RamStore | undefined;
  private dir: string | undefined;

  /**
   * @param inMemoryBytes most RAM kept in memory (default 256 MiB).
   * @param maxBytes most RAM a MEM_SIZE may declare at all (a LIMIT error past it, as RamImage's); default none.
   */
  constructor(
    private readonly inMemoryBytes = 256 * 2 ** 20,
    private readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {}

  get onDisk(): boolean {
    return this.dir !== undefined;
  }

  setBlocks(blocks: RamBlockInfo[], offset?: number): void {
    const total = blocks.reduce((n, b) => n + b.length, 0);
    if (total > this.maxBytes) {
      throw new MigstreamError('LIMIT', offset ?? 0, `RAM of ${total} bytes exceeds the image limit of ${this.maxBytes}`);
    }
    if (!this.store) {
      if (total > this.inMemoryBytes) {
        this.dir = mkdtempSync(join(tmpdir(), 'migstream-ram-'));
        this.store = new FileRamSink(this.dir);
      } else {
        this.store = new RamImage(this.inMemoryBytes);
      }
    }
    this.store.setBlocks(blocks, offset);
  }

  apply(ev: PageEvent): void {
    this.store!.apply(ev);
  }

  page(idstr: string, offset: number, pageSize: number): Uint8Array {
    return this.store!.page(idstr, offset, pageSize);
  }

  pageTarget(idstr: string, offset: number, pageSize: number): Uint8Array | undefined {
    return this.store?.pageTarget?.(idstr, offset, pageSize);
  }

  read(idstr: string, start: number, out: Uint8Array): void {
    this.store!.read(idstr, start, out);
  }

  close(): void {
    this.store?.close();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Checks iteration digests for a reader that keeps no RAM of its own
 * (inspect): only when the manifest declares "iteration-digests" does it
 * make a RAM store (an AutoRamStore: temp files past 256 MiB) to apply the
 * pages the digests are over.
 */
export class DigestCheck {
  private store: VerifyingRamStore | undefined;

  /** Whether the stream declared digests (and they are being checked). */
  get active(): boolean {
    return this.store !== undefined;
  }

  /** Digest records checked so far. */
  get checked(): number {
    return this.store?.checked ?? 0;
  }

  handle = (ev: StreamEvent): void => {
    if (ev.type === 'manifest' && !this.store && declaredEntry(ev.manifest, iterationDigests) !== undefined) {
      this.store = new VerifyingRamStore(new AutoRamStore());
    }
    this.store?.handle(ev);
  };

  close(): void {
    this.store?.close();
  }
}
