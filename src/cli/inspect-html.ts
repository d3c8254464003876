import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { StreamSummary } from '../stream/stats.js';

const PLACEHOLDER = '<script type="application/json" id="migstream-summary"></script>';

/** The browser inspector built by `npm run build:web` (dist/web/inspector.html, next to dist/cli). */
export function inspectorPage(): string {
  const path = fileURLToPath(new URL('../web/inspector.html', import.meta.url));
  if (!existsSync(path)) throw new Error(`${path} is missing: run npm run build:web`);
  return readFileSync(path, 'utf8');
}

/** The inspector page with a stream's summary embedded: it renders the summary without the stream file. */
export function embedSummary(page: string, streamPath: string, summary: StreamSummary): string {
  const at = page.indexOf(PLACEHOLDER);
  if (at < 0) throw new Error('the inspector page has no summary placeholder (rebuild it: npm run build:web)');
  // `<` escaped: stream-controlled strings (idstrs, machine names) cannot close the script element.
  const json = JSON.stringify({ name: basename(streamPath), summary }).replace(/</g, '\\u003c');
  return `${page.slice(0, at)}<script type="application/json" id="migstream-summary">${json}</script>${page.slice(at + PLACEHOLDER.length)}`;
}
