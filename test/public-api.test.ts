import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as root from 'migstream';
import * as node from 'migstream/node';
import * as sinks from 'migstream/sinks';
import * as codec from 'migstream/codec';
import * as xbzrle from 'migstream/xbzrle';
import * as plan from 'migstream/plan';
import * as relay from 'migstream/relay';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { requireBuiltCli } from './support/cli.js';

requireBuiltCli();
const pkgDir = join(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));

describe('the public API: package entries only', () => {
  it('the root is small: stream surface, one-shot and incremental forms, events, errors, the codec table', () => {
    expect(Object.keys(root).sort()).toEqual(
      [
        'DEFAULT_LIMITS',
        'DEFAULT_XBZRLE_CACHE',
        'DecodeStream',
        'EncodeStream',
        'MigstreamError',
        'OutputClosedError',
        'SnapshotDiskSource',
        'StreamDecoder',
        'StreamEncoder',
        'TranscodeStream',
        'Transcoder',
        'WriteLogDiskSource',
        'bufferBound',
        'cloneEvent',
        'codecSet',
        'decodeAll',
        'decodeEvents',
        'defaultImpl',
        'digestsReady',
        'encodeDumps',
        'formatWriteLog',
        'isStreamFault',
        'parseWriteLog',
        'portableCodecs',
        'readTemplate',
        'registerCodecs',
        'transcodeBytes',
      ].sort(),
    );
    expect(Object.keys(sinks).sort()).toEqual([
      'DiskImage',
      'IterationDigests',
      'RamImage',
      'StatsCollector',
      'VerifyingRamStore',
      'applyPage',
      'digestsReady',
    ]);
    expect(Object.keys(node)).toEqual(
      expect.arrayContaining(['transcodeTransform', 'decodeTransform', 'readFileChunks', 'ThreadPool', 'decodeFile', 'AutoRamStore']),
    );
    expect(Object.keys(xbzrle)).toEqual(expect.arrayContaining(['encodePage', 'decodePage', 'xbzrleEncode', 'xbzrleDecode']));
    expect(Object.keys(codec)).toEqual(expect.arrayContaining(['ByteReader', 'ByteWriter', 'Lz4Compressor', 'fflateZlib']));
    expect(Object.keys(plan)).toEqual(expect.arrayContaining(['Trace', 'FileDumpSource', 'dirtyRateReport', 'planMigration', 'parseSetting', 'simulate']));
    expect(Object.keys(relay)).toEqual(
      expect.arrayContaining(['Relay', 'replayRecording', 'decodeRecording', 'ReturnPathDecoder', 'PreemptDecoder', 'encodeCommand']),
    );
    for (const name of [...Object.keys(root), ...Object.keys(node)]) expect(name).not.toMatch(/Pooled|Piscina|bench|fuzz/i);
  });

  it("under Node, the root entry has Node's codecs and worker pool plugged in", () => {
    expect(root.defaultImpl()).toBe('node');
  });

  it('package.json: layered exports, no side effects but the Node entries, no benchmark-only runtime dependencies', () => {
    expect(Object.keys(pkg.exports).sort()).toEqual(['.', './codec', './node', './package.json', './plan', './relay', './sinks', './xbzrle']);
    expect(pkg.exports['.'].node).toBe('./dist/index.node.js');
    expect(pkg.exports['.'].default).toBe('./dist/index.js');
    // Only what must run on load: install.js plugs Node's codecs in, the worker entry serves its thread, and the
    // Node-side entries import install.js for that effect (a bundler may skip a side-effect-free module whose
    // exports are only re-exports, and with it install.js). node-zlib.js registers the multifd zlib channel codecs
    // on import (install.js and the relay import it for that; the CLI bundle lost them without it). adapters.js and
    // the portable core are free of effects.
    expect(pkg.sideEffects).toEqual([
      './dist/index.node.js',
      './dist/node/index.js',
      './dist/node/install.js',
      './dist/multifd/node-zlib.js',
      './dist/multifd/node-zstd.js',
      './dist/stream/pool/worker.js',
      './dist/plan/index.js',
      './dist/relay/index.js',
    ]);
    expect(Object.keys(pkg.dependencies)).not.toContain('piscina');
    expect(Object.keys(pkg.dependencies)).not.toContain('chart.js');
    expect(pkg.files).toContain('!dist/fuzz');
    expect(pkg.files).toContain('!dist/stream/pool/piscina-*'); // the piscina comparison pool (bench/) imports a devDependency
  });

  it("encode, transcode and decode each take `workers` on their stream form: EncodeStream on 2 workers gives encodeDumps' bytes", async () => {
    const dump = new Uint8Array(1 << 20).map((_, i) => ((i >> 12) % 7 === 0 ? 0 : 97 + ((i * 31) % 5)));
    const series = [{ idstr: 'pc.ram', dumps: [dump, dump.map((b, i) => (i % 8192 === 0 ? b ^ 1 : b))] }];
    const parts: Uint8Array[] = [];
    root.encodeDumps(series, (c) => void parts.push(c.slice()), { compress: { codec: 'lz4' } });
    const es = new root.EncodeStream(series, { compress: { codec: 'lz4' }, workers: 2 });
    const got = new Uint8Array(await new Response(es.readable).arrayBuffer());
    expect(Buffer.compare(got, Buffer.concat(parts))).toBe(0);
    expect(es.summary?.iterations.length).toBe(2);
  });

  it('a round trip through the entries: xbzrle encodePage/decodePage are symmetric', () => {
    const a = new Uint8Array(4096).fill(1);
    const b = a.slice();
    b.fill(9, 100, 200);
    const delta = xbzrle.encodePage(a, b)!;
    expect(delta.length).toBeLessThan(120);
    expect(xbzrle.decodePage(a, delta)).toEqual(b);
    expect(
      xbzrle.encodePage(
        a,
        new Uint8Array(4096).map((_, i) => i * 7),
      ),
    ).toBeUndefined(); // overflow: QEMU sends the page whole
  });

  it('decodeEvents + RamImage rebuild a real QEMU stream; errors are MigstreamError with INTERNAL for a handler bug', async () => {
    const fx = loadFixture('xbzrle-hit');
    const ram = new sinks.RamImage();
    for await (const ev of root.decodeEvents([fx.stream], { workers: 2 })) {
      if (ev.type === 'ram-blocks') ram.setBlocks(ev.blocks);
      else if (ev.type === 'page') ram.apply(ev);
    }
    expect(Buffer.compare(ram.blocks.get('pc.ram')!, fx.ram)).toBe(0);
    const e = (() => {
      try {
        root.decodeAll(fx.stream, () => {
          throw new Error('handler bug');
        });
      } catch (x) {
        return x;
      }
    })();
    expect(e).toBeInstanceOf(root.MigstreamError);
    expect((e as root.MigstreamError).code).toBe('INTERNAL');
    expect(root.isStreamFault(e)).toBe(false);
  });
});
