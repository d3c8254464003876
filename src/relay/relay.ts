import { connect, createServer, type Server, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { RelayConnection, type RelayFailure, type RelayTranscodeOptions } from './connection.js';
import { RecordingWriter } from './recording.js';
import { formatUri, netOptions, type SocketAddress } from './uri.js';
import { createPool } from '../stream/pool/pool-factory.js';
import { resolveSpecs } from '../stream/page-codecs.js';
import type { PagePool } from '../stream/pool/pool.js';
import { MultifdPool } from '../multifd/pool-recoder.js';

export interface RelayOptions {
  listen: SocketAddress;
  connect: SocketAddress;
  /** How the main channel is transcoded, and (multifd) how multifd channels are re-encoded. */
  transcode: RelayTranscodeOptions;
  /** Record each connection's bytes into this directory. */
  record?: string;
  /** Serve one migration (the first main channel and the channels beside it), then exit. */
  once?: boolean;
  /** Fail when no byte moved for this many seconds. */
  idleTimeoutS?: number;
  /**
   * Compress pages on this many worker threads (needs migstream/node's pool factory) until a
   * migration's POSTCOPY_LISTEN; from then on inline, so a requested page never queues behind bulk pages.
   */
  workers?: number;
  /** Called once the relay listens. */
  onListening?: () => void;
}

export interface ConnectionSummary {
  n: number;
  kind: string;
  /** Bytes from the source, and what the relay wrote to the destination for them. */
  s2dIn: number;
  s2dOut: number;
  d2s: number;
  /** Per source chunk: ms from its arrival to its bytes written to the destination socket. */
  addedLatency: ReturnType<RelayConnection['latency']['summary']>;
  /** Postcopy: pages the destination requested, from the request passing the relay to the page leaving it, and the relay's own share. */
  requestedPages: { requestToPage: ConnectionSummary['addedLatency']; added: ConnectionSummary['addedLatency'] };
  /** A multifd channel re-encoded on the worker pool: the worker that held its compression state. */
  multifdWorker?: number;
}

export interface RelayResult {
  code: number;
  /** Set when the relay ended on a failure. */
  reason?: string;
  connections: ConnectionSummary[];
}

/**
 * `migstream relay`: accepts connections on `listen`, opens one to `connect`
 * per accepted connection in accept order (each only after the previous one
 * is connected, so a relay pair keeps QEMU's channel order), and moves bytes
 * both ways through a RelayConnection. Any failure closes every connection.
 */
export class Relay {
  private readonly server: Server;
  private readonly conns: RelayConnection[] = [];
  private readonly pending = new Set<Socket>();
  private readonly summaries: ConnectionSummary[] = [];
  private readonly recorder: RecordingWriter | undefined;
  private chain: Promise<void> = Promise.resolve();
  private readonly pool: PagePool | undefined;
  /** With `workers` and multifd re-encoding: each channel's recoder pinned to one of these workers. */
  private readonly multifdPool: MultifdPool | undefined;
  private accepted = 0;
  private mainServed = false;
  private ending = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private resolveDone!: (r: RelayResult) => void;
  readonly done: Promise<RelayResult>;

  constructor(private readonly opts: RelayOptions) {
    this.done = new Promise((r) => (this.resolveDone = r));
    // page workers only where the main channel compresses pages (a multifd relay may need none)
    const specs = resolveSpecs(opts.transcode);
    this.pool = opts.workers && (specs.spec || specs.chunkSpec) ? createPool(opts.workers) : undefined;
    this.multifdPool = opts.workers && opts.transcode.multifd ? new MultifdPool(opts.workers) : undefined;
    this.recorder = opts.record ? new RecordingWriter(opts.record, { listen: formatUri(opts.listen), connect: formatUri(opts.connect) }) : undefined;
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => this.accept(s));
    this.server.on('error', (e) => this.fail({ reason: `cannot listen on ${formatUri(opts.listen)}: ${e.message}`, code: 1 }));
    if (opts.listen.kind === 'unix') rmSync(opts.listen.path, { force: true });
    this.server.listen(netOptions(opts.listen), () => opts.onListening?.());
    this.activity();
  }

  /** The TCP port actually bound (for `tcp:HOST:0`). */
  get port(): number | undefined {
    const a = this.server.address();
    return a && typeof a === 'object' ? a.port : undefined;
  }

  /** Bytes moved so far by the open connections (for a progress line). */
  live(): { n: number; s2dIn: number; s2dOut: number; d2s: number }[] {
    return this.conns.map((c) => ({ n: c.n, s2dIn: c.s2dIn, s2dOut: c.s2dOut, d2s: c.d2s }));
  }

  /** SIGINT/SIGTERM and the like: close both sides of everything. */
  stop(reason: string, code: number): void {
    this.fail({ reason, code });
  }

  private accept(src: Socket): void {
    if (this.ending) {
      src.destroy();
      return;
    }
    const n = this.accepted++;
    this.pending.add(src);
    src.on('error', () => {});
    this.chain = this.chain.then(() => this.open(n, src));
  }

  private open(n: number, src: Socket): Promise<void> {
    return new Promise((resolve) => {
      if (this.ending) {
        src.destroy();
        resolve();
        return;
      }
      const dst = connect({ ...netOptions(this.opts.connect), allowHalfOpen: true });
      this.pending.add(dst);
      dst.once('error', (e) => {
        this.pending.delete(dst);
        src.destroy();
        this.fail({ reason: `cannot connect conn-${n} to ${formatUri(this.opts.connect)}: ${e.message}`, code: 1 });
        resolve();
      });
      dst.once('connect', () => {
        this.pending.delete(src);
        this.pending.delete(dst);
        dst.removeAllListeners('error');
        dst.setNoDelay?.(true);
        src.setNoDelay?.(true);
        const c = new RelayConnection(
          n,
          src,
          dst,
          this.opts.transcode,
          {
            fail: (f) => this.fail(f),
            closed: (conn) => this.closed(conn),
            activity: () => this.activity(),
          },
          this.recorder,
          this.pool,
          this.multifdPool,
        );
        this.conns.push(c);
        resolve();
      });
    });
  }

  private closed(c: RelayConnection): void {
    this.summaries.push(summaryOf(c));
    const i = this.conns.indexOf(c);
    if (i >= 0) this.conns.splice(i, 1);
    if (c.kind === 'main') this.mainServed = true;
    if (this.opts.once && this.mainServed && !this.ending) {
      // The channels beside the main one close with it; a straggler gets a moment, then is cut.
      this.ending = true;
      this.server.close();
      if (this.conns.length > 0) setTimeout(() => this.finish(0), 5000).unref();
    }
    if (this.ending && this.conns.length === 0) this.finish(0);
  }

  private activity(): void {
    if (!this.opts.idleTimeoutS) return;
    if (this.idleTimer) this.idleTimer.refresh();
    else this.idleTimer = setTimeout(() => this.fail({ reason: `idle for ${this.opts.idleTimeoutS} s`, code: 1 }), this.opts.idleTimeoutS * 1000);
  }

  private failure: RelayFailure | undefined;

  private fail(f: RelayFailure): void {
    if (this.failure) return;
    this.failure = f;
    this.ending = true;
    for (const s of this.pending) s.destroy();
    for (const c of [...this.conns]) c.destroy();
    this.server.close();
    setImmediate(() => this.finish(f.code));
  }

  private finishedResult: RelayResult | undefined;

  private finish(code: number): void {
    if (this.finishedResult) return;
    if (this.idleTimer) clearTimeout(this.idleTimer);
    for (const c of this.conns) this.summaries.push(summaryOf(c));
    for (const c of [...this.conns]) c.destroy();
    this.server.close();
    this.recorder?.closeAll();
    void this.pool?.close();
    void this.multifdPool?.close();
    const connections = [...this.summaries].sort((a, b) => a.n - b.n);
    this.finishedResult = this.failure ? { code: this.failure.code, reason: this.failure.reason, connections } : { code, connections };
    this.resolveDone(this.finishedResult);
  }
}

function summaryOf(c: RelayConnection): ConnectionSummary {
  return {
    n: c.n,
    kind: c.kind ?? 'other',
    s2dIn: c.s2dIn,
    s2dOut: c.s2dOut,
    d2s: c.d2s,
    addedLatency: c.latency.summary(),
    requestedPages: { requestToPage: c.requestToPage.summary(), added: c.requestedAdded.summary() },
    ...(c.multifdWorker !== undefined ? { multifdWorker: c.multifdWorker } : {}),
  };
}
