import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { build } from 'esbuild';
import { chromium, type BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFixture } from '../fixtures/qemu/lib.mjs';
import { requireBuiltCli } from './support/cli.js';
import { CHROMIUM, CHROMIUM_ARGS, chromiumGate } from './support/chromium.js';

requireBuiltCli(); // the bundle is made from the package entries in dist/
const available = chromiumGate('browser test');

const root = join(import.meta.dirname, '..');
const ORIGIN = 'http://localhost:8571'; // never contacted: every request is answered by page.route below (localhost is a secure context, for crypto.subtle)

describe.skipIf(!available)('the portable core in headless Chromium', () => {
  let context: BrowserContext;
  let bundle: string;
  const profile = mkdtempSync(join(tmpdir(), 'migstream-chromium-'));

  beforeAll(async () => {
    // The root entry as a browser resolves it (no `node` condition): esbuild fails on any node:* import.
    const r = await build({
      stdin: { contents: "export * from 'migstream';\nexport { RamImage } from 'migstream/sinks';\n", resolveDir: root, loader: 'js' },
      bundle: true,
      platform: 'browser',
      format: 'iife',
      globalName: 'migstream',
      write: false,
      logLevel: 'silent',
    });
    bundle = r.outputFiles[0]!.text;
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', ...CHROMIUM_ARGS],
    });
  }, 120_000);

  afterAll(async () => {
    await context?.close();
    rmSync(profile, { recursive: true, force: true });
  });

  it('the bundle has no Node API in it', () => {
    expect(bundle.length).toBeGreaterThan(10_000);
    expect(bundle).not.toMatch(/require\(["']node:|from ["']node:|\bprocess\.versions\b|\bBuffer\.from\b/);
  });

  it.each(['plain', 'xbzrle-hit', 'compress-l1'])(
    '%s: decodeEvents over fetch() rebuilds the source RAM (SHA-256 equals the ground truth)',
    async (name) => {
      const fx = loadFixture(name);
      const page = await context.newPage();
      const pageErrors: string[] = [];
      page.on('pageerror', (e) => pageErrors.push(e.message));
      await page.route(`${ORIGIN}/**`, (route) => {
        const path = new URL(route.request().url()).pathname;
        if (path === '/') return route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>migstream</title>' });
        if (path === '/migstream.js') return route.fulfill({ contentType: 'text/javascript', body: bundle });
        if (path === '/stream.bin') return route.fulfill({ contentType: 'application/octet-stream', body: fx.stream });
        return route.abort();
      });
      await page.goto(`${ORIGIN}/`);
      await page.addScriptTag({ url: `${ORIGIN}/migstream.js` });
      const result = await page.evaluate(async () => {
        const m = (
          globalThis as unknown as { migstream: typeof import('../src/index.js') & { RamImage: typeof import('../src/stream/ram-image.js').RamImage } }
        ).migstream;
        const response = await fetch('/stream.bin');
        const ram = new m.RamImage();
        let events = 0;
        for await (const ev of m.decodeEvents(response.body!)) {
          events++;
          if (ev.type === 'ram-blocks') ram.setBlocks(ev.blocks);
          else if (ev.type === 'page') ram.apply(ev);
        }
        const pcRam = ram.blocks.get('pc.ram')!;
        const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', pcRam));
        return {
          events,
          impl: m.defaultImpl(),
          sha256: Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join(''),
          node: typeof (globalThis as { process?: unknown }).process,
        };
      });
      await page.close();
      expect(pageErrors).toEqual([]);
      expect(result.node).toBe('undefined');
      expect(result.impl).toBe('portable'); // fflate and migstream's LZ4
      expect(result.events).toBeGreaterThan(1000);
      expect(result.sha256).toBe(createHash('sha256').update(fx.ram).digest('hex'));
    },
    120_000,
  );
});
