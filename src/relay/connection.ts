import type { Socket } from 'node:net';
import { MigstreamError } from '../codec/errors.js';
import { StreamDecoder } from '../stream/decoder.js';
import { StreamEncoder, type StreamWriter } from '../stream/encoder.js';
import type { PagePool } from '../stream/pool/pool.js';
import { PoolThenInline } from './pooled-writer.js';
import { encoderCompressors, resolveSpecs } from '../stream/page-codecs.js';
import { Transcoder, type TranscodeOptions } from '../stream/transcode.js';
import { AutoRamStore } from '../stream/files.js';
import { classify, type RecordedConnection, type RecordingIndexEntry, type RecordingWriter } from './recording.js';
import { LatencyLog } from './latency.js';
import { ReturnPathDecoder } from '../stream/return-path.js';
import { isMultifdHead } from '../multifd/format.js';
import '../multifd/node-zlib.js';
import '../multifd/node-zstd.js';
import { MultifdRecoder, type MultifdRelayOptions } from '../multifd/recode.js';
import type { MultifdPool, PooledRecoder } from '../multifd/pool-recoder.js';

/** The relay's transcode options, plus what to do with multifd channels (default: copy them). */
export type RelayTranscodeOptions = TranscodeOptions & { multifd?: MultifdRelayOptions };

/** The relay's default bound on a MEM_SIZE (the in-memory image's): past it, a LIMIT error, not gigabytes of temporary files. */
const DEFAULT_MAX_RAM_BYTES = 8 * 2 ** 30;

/** Pages compressing on the pool before the relay stops reading its source. */
const MAX_IN_FLIGHT = 512;
/** Multifd bytes queued for a channel's worker before the relay stops reading that channel's source. */
const MAX_MULTIFD_BACKLOG = 8 << 20;

/** Why a connection ended the relay: a one-line reason and the exit status (3: malformed stream). */
export interface RelayFailure {
  reason: string;
  code: number;
}

export interface ConnectionHooks {
  fail(f: RelayFailure): void;
  closed(c: RelayConnection): void;
  activity(): void;
}

/**
 * One accepted connection and the one the relay opened for it. A main channel
 * (it starts with QEVM) is decoded and re-encoded with `options`; any other
 * channel is copied. The destination's bytes go back to the source at once.
 */
export class RelayConnection {
  kind: RecordedConnection['kind'] | undefined;
  s2dIn = 0;
  s2dOut = 0;
  d2s = 0;
  /** Per source chunk: ms from its arrival to its transcoded bytes handed to the destination socket. */
  readonly latency = new LatencyLog();
  /** Pages the destination requested (postcopy): ms from the request passing this relay to the page leaving it… */
  readonly requestToPage = new LatencyLog();
  /** …and from the page's bytes arriving to their leaving (what this relay adds). */
  readonly requestedAdded = new LatencyLog();
  private rp: ReturnPathDecoder | undefined;
  private readonly requests = new Map<string, number>();
  /** Arrival time of the source chunk being decoded. */
  private arrived = 0;
  private head: Uint8Array[] = [];
  private headBytes = 0;
  private decoder: StreamDecoder | undefined;
  private encoder: StreamWriter | undefined;
  /** A multifd channel being re-encoded (with options.multifd). */
  private multifd: MultifdRecoder | undefined;
  /** …or re-encoded on its own worker (with a multifd pool). */
  private multifdPooled: PooledRecoder | undefined;
  /** With a pool (`--workers`): compression on workers until POSTCOPY_LISTEN. */
  private pooled: PoolThenInline | undefined;
  private held = false;
  private srcEnded = false;
  private dstEnded = false;
  private done = false;
  private record: RecordingIndexEntry | undefined;
  /** The main channel's RAM, when the options name no store of their own; closed (its files removed) with the connection. */
  private ramStore: AutoRamStore | undefined;

  constructor(
    readonly n: number,
    private readonly src: Socket,
    private readonly dst: Socket,
    private readonly options: RelayTranscodeOptions,
    private readonly hooks: ConnectionHooks,
    private readonly recorder: RecordingWriter | undefined,
    private readonly pool?: PagePool,
    private readonly multifdPool?: MultifdPool,
  ) {
    this.record = recorder?.open(n);
    src.on('data', (c: Buffer) => this.fromSource(new Uint8Array(c.buffer, c.byteOffset, c.length)));
    dst.on('data', (c: Buffer) => this.fromDestination(new Uint8Array(c.buffer, c.byteOffset, c.length)));
    src.on('end', () => this.sourceEnded());
    dst.on('end', () => this.destinationEnded());
    src.on('error', () => {});
    dst.on('error', () => {});
    src.on('close', () => this.sideClosed('source'));
    dst.on('close', () => this.sideClosed('destination'));
    dst.on('drain', () => src.resume());
    src.resume();
  }

  /** The pool worker this multifd channel is pinned to (re-encoded on the pool). */
  get multifdWorker(): number | undefined {
    return this.multifdPooled?.worker;
  }

  /** True once the main channel's stream was decoded to its end. */
  get streamComplete(): boolean {
    return this.decoder?.finished === true;
  }

  destroy(): void {
    this.src.destroy();
    this.dst.destroy();
  }

  private fromSource(chunk: Uint8Array): void {
    if (this.done) return;
    const arrived = performance.now();
    this.hooks.activity();
    this.s2dIn += chunk.length;
    if (this.record) this.recorder!.write(this.record, 's2d', chunk);
    if (this.kind === undefined) {
      // Decide from the first 8 bytes (or what there is when the channel ends early).
      this.head.push(chunk.slice());
      this.headBytes += chunk.length;
      if (this.headBytes < 8) return;
      this.start();
      const head = Buffer.concat(this.head);
      this.head = [];
      this.forward(head, arrived);
      return;
    }
    this.forward(chunk, arrived);
  }

  private start(): void {
    this.kind = classify(Buffer.concat(this.head));
    if (this.record) this.record.kind = this.kind;
    const mf = this.options.multifd;
    if (this.kind !== 'main' && mf && isMultifdHead(Buffer.concat(this.head))) {
      const label = `conn-${this.n}`;
      const pageSize = this.options.pageSize ?? 4096;
      if (this.multifdPool) {
        this.multifdPooled = this.multifdPool.channel(
          mf,
          (c) => this.toDestination(c),
          (e) => this.streamFailed(e),
          pageSize,
          label,
        );
        // a task's packets (header, payload, header, …) leave in one writev
        this.multifdPooled.batch = (writeAll) => this.corked(writeAll);
        this.multifdPooled.onProgress = () => {
          if (this.held && this.multifdPooled!.backlog < MAX_MULTIFD_BACKLOG / 2) {
            this.held = false;
            if (!this.done) this.src.resume();
          }
        };
      } else this.multifd = new MultifdRecoder(mf, (c) => this.toDestination(c), pageSize, label);
    }
    if (this.kind !== 'main') return;
    const pageSize = this.options.pageSize ?? 4096;
    const specs = resolveSpecs(this.options);
    if (this.pool && (specs.spec || specs.chunkSpec)) {
      this.pooled = new PoolThenInline(
        (c) => this.toDestination(c),
        this.pool,
        this.options,
        (e) => this.streamFailed(e),
      );
      this.encoder = this.pooled;
    } else this.encoder = new StreamEncoder((c) => this.toDestination(c), { pageSize, chunkSize: 1 << 20, ...encoderCompressors(specs) });
    // RAM as the CLI keeps it: in memory up to 256 MiB, in sparse temporary files above (bounded memory for a
    // large guest, and 1 MiB file writes cost less CPU than faulting in a fresh in-memory image page by page).
    if (!this.options.ramStore) this.ramStore = new AutoRamStore(undefined, this.options.maxRamBytes ?? DEFAULT_MAX_RAM_BYTES);
    const transcoder = new Transcoder(this.encoder, { ...this.options, ramStore: this.options.ramStore ?? this.ramStore });
    this.decoder = new StreamDecoder((ev) => {
      transcoder.handle(ev);
      // Postcopy from LISTEN on: every record inline, none behind bulk pages in a worker queue.
      if (this.pooled && ev.type === 'command' && (ev.name === 'POSTCOPY_LISTEN' || ev.package?.commands.some((c) => c.name === 'POSTCOPY_LISTEN'))) {
        void this.pooled.toInline();
      }
      if (ev.type === 'page' && this.requests.size > 0) {
        const key = `${ev.block.idstr}@${ev.offset}`;
        const t = this.requests.get(key);
        if (t !== undefined) {
          // A vCPU waits for this page: out now, not after the rest of the chunk.
          this.requests.delete(key);
          this.encoder!.flush();
          const now = performance.now();
          this.requestToPage.add(now - t);
          this.requestedAdded.add(now - this.arrived);
        }
      }
    }, this.options);
    // Requests are watched only to measure; a return path we cannot read is still copied.
    this.rp = new ReturnPathDecoder((ev) => {
      if (ev.type !== 'REQ_PAGES' && ev.type !== 'REQ_PAGES_ID') return;
      const now = performance.now();
      for (let o = ev.start; o < ev.start + ev.length && this.requests.size < 1 << 16; o += pageSize) this.requests.set(`${ev.block}@${o}`, now);
    });
  }

  private forward(chunk: Uint8Array, arrived: number): void {
    if (this.multifdPooled) {
      // a socket read owns its buffer and is not used after this: it moves to the worker without a copy
      this.multifdPooled.push(chunk, true);
      if (this.multifdPooled.backlog > MAX_MULTIFD_BACKLOG) {
        this.held = true;
        this.src.pause();
      }
      return;
    }
    if (this.multifd) {
      try {
        this.corked(() => this.multifd!.push(chunk));
      } catch (e) {
        this.streamFailed(e);
      }
      return;
    }
    if (!this.decoder) {
      this.toDestination(chunk);
      return;
    }
    this.arrived = arrived;
    try {
      this.decoder.push(chunk);
      if (this.pooled) this.encoder!.flush();
    } catch (e) {
      // The records decoded before the bad one still go out (as they did with a write per read): the next hop
      // then sees a migration stream cut short, not a connection that never carried one.
      if (!this.pooled) this.flushOut();
      this.streamFailed(e);
      return;
    }
    if (this.pooled) {
      this.latency.add(performance.now() - arrived);
      this.drainPool();
      return;
    }
    // The reads libuv makes in one go (up to 32 of 64 KiB) go out as one write, once they are all decoded:
    // a write per read cost a syscall and a wake-up of the reader each. A page a vCPU waits for is flushed at once (start()).
    this.arrivals.push(arrived);
    if (this.arrivals.length === 1) setImmediate(this.flushOut);
  }

  /** Source chunks decoded but not yet flushed to the destination: their arrival times. */
  private arrivals: number[] = [];

  private readonly flushOut = (): void => {
    if (this.done || this.arrivals.length === 0) return;
    try {
      this.encoder!.flush();
    } catch (e) {
      this.streamFailed(e);
      return;
    }
    const now = performance.now();
    for (const t of this.arrivals) this.latency.add(now - t);
    this.arrivals = [];
  };

  /** Sends a partly filled batch to a worker now (nothing more may come for a while); holds the source while too many pages are in flight. */
  private drainPool(): void {
    const inFlight = this.pooled!.pagesInFlight;
    if (inFlight === 0) return;
    const hold = inFlight > MAX_IN_FLIGHT && !this.held;
    if (hold) {
      this.held = true;
      this.src.pause();
    }
    this.pooled!.drain(hold ? MAX_IN_FLIGHT / 2 : inFlight - 1).then(
      () => {
        if (!hold) return;
        this.held = false;
        if (!this.done) this.src.resume();
      },
      (e) => this.streamFailed(e),
    );
  }

  /** Writes made inside `f` reach the destination socket as one writev. */
  private corked(f: () => void): void {
    this.dst.cork();
    try {
      f();
    } finally {
      this.dst.uncork();
    }
  }

  private toDestination(c: Uint8Array): void {
    this.s2dOut += c.length;
    // Each chunk the encoder hands out is its own (ByteWriter.take copies): the socket may keep it.
    if (!this.dst.write(c)) this.src.pause();
  }

  private fromDestination(chunk: Uint8Array): void {
    this.hooks.activity();
    this.d2s += chunk.length;
    if (this.record) this.recorder!.write(this.record, 'd2s', chunk);
    this.src.write(chunk.slice());
    try {
      this.rp?.push(chunk);
    } catch {
      this.rp = undefined;
    }
  }

  private sourceEnded(): void {
    this.srcEnded = true;
    if (this.kind === undefined && this.headBytes > 0) {
      this.start();
      this.forward(Buffer.concat(this.head), performance.now());
    }
    if (this.multifdPooled && !this.done) {
      // the worker's last packets first, then the end of the destination's side
      this.multifdPooled.end().then(
        () => this.dst.end(),
        () => {}, // reported through streamFailed
      );
      return;
    }
    if (this.multifd && !this.done) {
      try {
        this.multifd.end();
      } catch (e) {
        this.streamFailed(e);
        return;
      }
    }
    if (this.decoder && !this.done) {
      try {
        this.decoder.end();
        this.flushOut();
        this.encoder!.flush();
        if (this.pooled) {
          // The pool's last records first, then the end of the destination's side.
          this.pooled.finish().then(
            () => this.dst.end(),
            (e) => this.streamFailed(e),
          );
          return;
        }
      } catch (e) {
        // Cut short by a source that went away: not a malformed stream.
        if (e instanceof MigstreamError && e.code === 'TRUNCATED') {
          this.done = true;
          this.destroy();
          this.hooks.fail({ reason: `source closed conn-${this.n} before the migration stream ended (${this.s2dIn} bytes: ${e.message})`, code: 1 });
          this.finish();
        } else this.streamFailed(e);
        return;
      }
    }
    this.dst.end();
  }

  private destinationEnded(): void {
    this.dstEnded = true;
    this.src.end();
  }

  private sideClosed(side: 'source' | 'destination'): void {
    if (this.done) return;
    const other = side === 'source' ? this.dst : this.src;
    const ended = side === 'source' ? this.srcEnded : this.dstEnded;
    // The main channel is done when its stream was read to the end; before that, a side going away fails it.
    if (this.kind === 'main' ? !this.streamComplete : !ended) {
      this.done = true;
      other.destroy();
      // The failure first: the relay must not take this connection's close for a clean end.
      this.hooks.fail({
        reason: `${side} ${ended ? 'closed' : 'went away on'} conn-${this.n} before the migration stream ended (${this.s2dIn} bytes from the source)`,
        code: 1,
      });
      this.finish();
      return;
    }
    if (this.src.destroyed && this.dst.destroyed) {
      this.done = true;
      this.finish();
    }
  }

  private streamFailed(e: unknown): void {
    if (this.done) return;
    this.done = true;
    this.destroy();
    if (e instanceof MigstreamError) this.hooks.fail({ reason: `bad stream on conn-${this.n} [${e.code}] ${e.message}`, code: 3 });
    else this.hooks.fail({ reason: `conn-${this.n}: ${(e as Error)?.message ?? String(e)}`, code: 1 });
    this.finish();
  }

  private finish(): void {
    this.ramStore?.close();
    this.ramStore = undefined;
    if (this.record) this.recorder!.close(this.record);
    this.record = undefined;
    this.hooks.closed(this);
  }
}
