import type { SectionInfo, RamBlockInfo } from '../stream/events.js';
import { StreamEncoder, type StreamWriter } from '../stream/encoder.js';
import { encoderCompressors, resolveSpecs } from '../stream/page-codecs.js';
import type { PagePool } from '../stream/pool/pool.js';
import { PooledEncoder } from '../stream/pool/pooled-encoder.js';
import type { TranscodeOptions } from '../stream/transcode.js';

/**
 * The relay's writer with `--workers`: pages are compressed on the pool
 * (PooledEncoder, records in call order) until `toInline()`, which the relay
 * calls at POSTCOPY_LISTEN. From then on every record is written by an inline
 * StreamEncoder, so a page a vCPU waits for never queues behind bulk pages
 * in a worker; what it writes is held until the pool's last records are out,
 * then passes straight through.
 */
export class PoolThenInline implements StreamWriter {
  readonly pageSize: number;
  private readonly pooled: PooledEncoder;
  private readonly inline: StreamEncoder;
  private current: StreamWriter;
  private held: Uint8Array[] | undefined;
  private poolDone: Promise<void> | undefined;

  constructor(
    private readonly sink: (chunk: Uint8Array) => void,
    pool: PagePool,
    options: TranscodeOptions,
    private readonly failed: (e: unknown) => void,
  ) {
    this.pageSize = options.pageSize ?? 4096;
    const specs = resolveSpecs(options);
    this.pooled = new PooledEncoder(sink, { spec: specs.spec, chunkSpec: specs.chunkSpec, pool, pageSize: this.pageSize, batchPages: 16 });
    this.inline = new StreamEncoder(
      (c) => {
        if (this.held) this.held.push(c.slice());
        else sink(c);
      },
      { pageSize: this.pageSize, ...encoderCompressors(specs) },
    );
    this.current = this.pooled;
  }

  /** Pages queued on the pool and not yet written. */
  get pagesInFlight(): number {
    return this.current === this.pooled ? this.pooled.pagesInFlight : 0;
  }

  /** Hands a partly filled batch to a worker, and waits until at most `limit` pages are in flight. */
  drain(limit: number): Promise<void> {
    return this.current === this.pooled ? this.pooled.drain(limit) : Promise.resolve();
  }

  /** From now on records are written inline (postcopy); resolves once the pool's records are all out. */
  toInline(): Promise<void> {
    if (this.poolDone) return this.poolDone;
    this.pooled.flush();
    this.current = this.inline;
    this.held = [];
    this.poolDone = this.pooled.finish().then(
      () => {
        const held = this.held ?? [];
        this.held = undefined;
        for (const c of held) this.sink(c);
      },
      (e) => this.failed(e),
    );
    return this.poolDone;
  }

  /** Writes everything: the pool's records, then the inline ones. */
  async finish(): Promise<void> {
    if (this.current === this.pooled) await this.pooled.finish();
    else {
      this.inline.flush();
      await this.poolDone;
    }
  }

  continues(idstr: string): boolean {
    return this.current.continues(idstr);
  }
  zeroPage(idstr: string, offset: number): void {
    this.current.zeroPage(idstr, offset);
  }
  page(idstr: string, offset: number, data: Uint8Array): void {
    this.current.page(idstr, offset, data);
  }
  xbzrlePage(idstr: string, offset: number, encoded: Uint8Array): void {
    this.current.xbzrlePage(idstr, offset, encoded);
  }
  compressPage(idstr: string, offset: number, page: Uint8Array): void {
    this.current.compressPage(idstr, offset, page);
  }
  ramDigest(idstr: string, count: number, digest: Uint8Array): void {
    this.current.ramDigest(idstr, count, digest);
  }
  header(): void {
    this.current.header();
  }
  raw(bytes: Uint8Array): void {
    this.current.raw(bytes);
  }
  sectionStart(s: SectionInfo): void {
    this.current.sectionStart(s);
  }
  sectionPart(sectionId: number): void {
    this.current.sectionPart(sectionId);
  }
  sectionEnd(sectionId: number): void {
    this.current.sectionEnd(sectionId);
  }
  footer(sectionId: number): void {
    this.current.footer(sectionId);
  }
  command(command: number, payload: Uint8Array): void {
    this.current.command(command, payload);
  }
  manifest(payload: Uint8Array): void {
    this.current.manifest(payload);
  }
  memSize(blocks: RamBlockInfo[], ignoreShared?: boolean): void {
    this.current.memSize(blocks, ignoreShared);
  }
  ramEos(): void {
    this.current.ramEos();
  }
  blockChunk(device: string, sector: number, data: Uint8Array | undefined): void {
    this.current.blockChunk(device, sector, data);
  }
  blockVarChunk(device: string, sector: number, length: number, data: Uint8Array | undefined): void {
    this.current.blockVarChunk(device, sector, length, data);
  }
  compressChunk(device: string, sector: number, data: Uint8Array): void {
    this.current.compressChunk(device, sector, data);
  }
  blockProgress(percent: number): void {
    this.current.blockProgress(percent);
  }
  blockEos(): void {
    this.current.blockEos();
  }
  flush(): void {
    this.current.flush();
  }
}
