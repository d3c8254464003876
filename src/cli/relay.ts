import type { RelayTranscodeOptions } from '../relay/connection.js';
import { Relay, type RelayResult } from '../relay/relay.js';
import { replayRecording, type ReplayPace } from '../relay/replay.js';
import { parseUri as parseAddress, type SocketAddress } from '../relay/uri.js';
import { formatBytes, parseSize, UsageError } from './io.js';

/** A bad URI on the command line is a usage error (exit 2); the library says RangeError. */
function parseUri(uri: string, flag: string): SocketAddress {
  try {
    return parseAddress(uri, flag);
  } catch (e) {
    throw e instanceof RangeError ? new UsageError(e.message) : e;
  }
}

export const RELAY_USAGE = `  relay --listen URI --connect URI [transcode options] [--record DIR] [--once] [--idle-timeout S] [--json]
                                               relay a live migration between two QEMUs (URI: unix:PATH or
                                               tcp:HOST:PORT): the source→destination stream is transcoded
                                               (default: QEMU 7.2 records), the return path copied back at once;
                                               --record DIR keeps conn-N.s2d / conn-N.d2s / conn-N.timing / index.json;
                                               --workers N compresses on N threads until postcopy (then inline)
                                               and re-encodes each multifd channel on one of N workers;
                                               --multifd-compression none|zlib|zstd|brotli|zstd-dedup [--multifd-level L]:
                                               re-encode multifd channels packet by packet (ids, sync points kept);
                                               brotli (default quality 5) and zstd-dedup (a page the channel sent
                                               before as an 8-byte reference, the rest zstd) are migstream's own
                                               forms between two relays;
                                               --multifd-long (zstd, zstd-dedup): 128 MiB window, long-distance matching
  replay DIR --connect URI [--pace recorded|RATE] [--json]
                                               play a recording into a destination QEMU, its connections in order;
                                               --pace recorded: at the times the bytes reached the relay,
                                               --pace RATE (e.g. 16MiB): at most RATE bytes per second per connection`;

export interface RelayCli {
  listen: string;
  connect: string;
  transcode: RelayTranscodeOptions;
  record?: string;
  once: boolean;
  idleTimeoutS?: number;
  json: boolean;
  workers?: number;
}

export async function runRelay(o: RelayCli): Promise<number> {
  const relay = new Relay({
    listen: parseUri(o.listen, '--listen'),
    connect: parseUri(o.connect, '--connect'),
    transcode: o.transcode,
    record: o.record,
    once: o.once,
    idleTimeoutS: o.idleTimeoutS,
    workers: o.workers,
    onListening: () => {
      const port = relay.port;
      process.stderr.write(
        `migstream relay: listening on ${port !== undefined && o.listen.startsWith('tcp:') ? o.listen.replace(/:\d+$/, `:${port}`) : o.listen}\n`,
      );
    },
  });
  const onSignal = (sig: NodeJS.Signals) => relay.stop(`stopped by ${sig}`, sig === 'SIGINT' ? 130 : 143);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // On a terminal, one progress line, rewritten each second.
  const progress = process.stderr.isTTY
    ? setInterval(() => {
        const line = relay
          .live()
          .map((c) => `conn-${c.n} ${formatBytes(c.s2dIn)} in → ${formatBytes(c.s2dOut)} out, ${formatBytes(c.d2s)} back`)
          .join('; ');
        if (line) process.stderr.write(`\r\x1b[K${line}`);
      }, 1000)
    : undefined;
  const result = await relay.done;
  if (progress) {
    clearInterval(progress);
    process.stderr.write('\r\x1b[K');
  }
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  report(result, o.json);
  return result.code;
}

function report(r: RelayResult, json: boolean): void {
  if (json) process.stdout.write(`${JSON.stringify(r)}\n`);
  if (r.reason) {
    process.stderr.write(`migstream relay: ${r.reason}\n`); // one line, the reason
    return;
  }
  if (json) return;
  for (const c of r.connections) {
    const l = c.addedLatency;
    process.stderr.write(
      `conn-${c.n} (${c.kind}): ${formatBytes(c.s2dIn)} in → ${formatBytes(c.s2dOut)} out, ${formatBytes(c.d2s)} back; ` +
        `added latency per chunk median ${l.medianMs} ms, p99 ${l.p99Ms} ms\n`,
    );
  }
}

export async function runReplay(dir: string, connect: string | undefined, json: boolean, pace?: string): Promise<number> {
  if (connect === undefined) throw new UsageError('replay needs --connect URI');
  const r = await replayRecording(dir, parseUri(connect, '--connect'), paceOption(pace));
  if (json) process.stdout.write(`${JSON.stringify(r)}\n`);
  else for (const c of r.connections) process.stderr.write(`conn-${c.n} (${c.kind}): sent ${formatBytes(c.sent)}, received ${formatBytes(c.received)}\n`);
  return 0;
}

function paceOption(pace: string | undefined): ReplayPace | undefined {
  if (pace === undefined) return undefined;
  if (pace === 'recorded') return { kind: 'recorded' };
  const bytesPerSecond = parseSize(pace.replace(/\/s$/, ''), '--pace');
  if (bytesPerSecond <= 0) throw new UsageError(`--pace expects "recorded" or a rate > 0 such as 16MiB, got "${pace}"`);
  return { kind: 'rate', bytesPerSecond };
}
