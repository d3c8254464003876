#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { isStreamFault, MigstreamError, OutputClosedError } from '../codec/errors.js';
import '../node/install.js';
import { runDemo } from './demo.js';
import { DEFAULT_XBZRLE_CACHE } from '../stream/transcode.js';
import type { CachePolicy } from '../xbzrle/page-cache.js';
import { runEncode, runExtract, runInspect, runTranscode, type EncodeCommand } from './commands.js';
import { parseSize, UsageError } from './io.js';
import { runVerify } from './verify.js';
import { checkChunkSize } from '../stream/chunk-size.js';
import { COMPRESS_FLAGS, COMPRESS_USAGE, compressOption } from './compression.js';
import { BENCH_HELP, runBenchCommand } from './bench.js';
import { PLAN_HELP, runDirtyRate, runPlan } from './plan.js';
import { RELAY_USAGE, runRelay, runReplay } from './relay.js';
import { attachChannels } from '../multifd/files.js';
import { MULTIFD_FLAGS, MULTIFD_USAGE, multifdRelayOption, runEncodeMultifd, runMultifdSplit } from './multifd.js';

const USAGE = `usage: migstream <command> [options]

commands:
  inspect STREAM [--json] [--html FILE]        summarise a migration stream (--html: the browser inspector with the summary)
  extract STREAM --out DIR [--disk-size DEV=BYTES]...
                                               write RAMBlocks, disks and devices.json into DIR
  transcode IN OUT [--xbzrle[=SIZE]] [--cache-policy lru|qemu] [--stats]
                   [--chunk SIZE] [--disk-size DEV=SIZE]... [--digest]
         ${COMPRESS_USAGE}
                                               re-encode with QEMU 7.2 records (loadable by QEMU);
                                               --xbzrle re-sends pages as deltas (cache SIZE, default 64MiB);
                                               --compress zlib: QEMU's compressed pages (level, default 1);
                                               lz4: migstream's extension (acceleration, default 1);
                                               --chunk: variable-size disk chunks (4KiB..1MiB, migstream's extension),
                                               compressed like --compress unless --chunk-compress says otherwise;
                                               --workers: compress/decompress on N worker threads;
                                               --digest: per-iteration digests (migstream's extension);
                                               an input's digests are checked, and dropped without it
  encode --dumps D0 D1 … | --manifest FILE --out STREAM [--block NAME] [--template STREAM]
         [--xbzrle[=SIZE]] [--cache-policy lru|qemu] ${COMPRESS_USAGE}
         [--disk NAME=IMG [--disk-writes NAME=LOG]]... [--zero-blocks] [--chunk SIZE] [--digest]
                                               a series of RAM dumps → a multi-iteration stream
${MULTIFD_USAGE}
  verify STREAM --against DIR [--json]         compare decoded RAMBlocks and disks with extract-named files
                                               (exit 0 equal, 1 different, 3 bad stream)
  demo                                         transcode, extract and verify a bundled real-QEMU stream
${RELAY_USAGE}
${BENCH_HELP}
${PLAN_HELP}

STREAM, IN may be "-" (stdin); OUT may be "-" (stdout). A multifd migration: a relay recording directory, or
its main channel as STREAM/IN with --channel FILE for each multifd channel (inspect, extract, verify, transcode).
--strict (inspect, extract, transcode, verify): a damaged vmdesc trailer after EOF is an error (exit 3);
without it, a warning on stderr, as QEMU 7.2 skips the trailer and loads such a stream.
exit status: 0 ok, 1 I/O or internal error, 2 usage error, 3 malformed or unsupported stream`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'inspect': {
      const { values, positionals } = parse(rest, { json: { type: 'boolean' }, strict: { type: 'boolean' }, channel: CHANNEL, html: { type: 'string' } });
      return runInspect(channels(one(positionals, 'STREAM'), values.channel as string[] | undefined), {
        json: values.json === true,
        strict: values.strict === true,
        html: values.html as string | undefined,
      });
    }
    case 'extract': {
      const { values, positionals } = parse(rest, {
        out: { type: 'string' },
        'disk-size': { type: 'string', multiple: true },
        strict: { type: 'boolean' },
        channel: CHANNEL,
      });
      if (typeof values.out !== 'string') throw new UsageError('extract needs --out DIR');
      return runExtract(
        channels(one(positionals, 'STREAM'), values.channel as string[] | undefined),
        values.out,
        parseSizes(values['disk-size'] as string[] | undefined),
        values.strict === true,
      );
    }
    case 'transcode': {
      const { values, positionals } = parse(withOptionalValue(rest, '--xbzrle'), {
        xbzrle: { type: 'string' },
        'cache-policy': { type: 'string' },
        stats: { type: 'boolean' },
        chunk: { type: 'string' },
        'disk-size': { type: 'string', multiple: true },
        digest: { type: 'boolean' },
        strict: { type: 'boolean' },
        channel: CHANNEL,
        ...MULTIFD_FLAGS,
        ...COMPRESS_FLAGS,
      });
      if (positionals.length !== 2) throw new UsageError('transcode needs IN and OUT');
      if (values.multifd !== undefined) return runMultifdSplit(channels(positionals[0]!, values.channel as string[] | undefined), positionals[1]!, values);
      return runTranscode(channels(positionals[0]!, values.channel as string[] | undefined), positionals[1]!, {
        xbzrle: xbzrleOption(values.xbzrle as string | undefined, values['cache-policy'] as string | undefined),
        stats: values.stats === true,
        compress: compressOption(values),
        blockChunk: chunkOption(values.chunk as string | undefined),
        diskSizes: parseSizes(values['disk-size'] as string[] | undefined),
        digest: values.digest === true ? 'xxh64' : undefined,
        strict: values.strict === true,
      });
    }
    case 'encode': {
      const { values, positionals } = parse(withOptionalValue(rest, '--xbzrle'), {
        dumps: { type: 'boolean' },
        manifest: { type: 'string' },
        out: { type: 'string' },
        block: { type: 'string' },
        template: { type: 'string' },
        xbzrle: { type: 'string' },
        'cache-policy': { type: 'string' },
        disk: { type: 'string', multiple: true },
        'disk-writes': { type: 'string', multiple: true },
        'zero-blocks': { type: 'boolean' },
        chunk: { type: 'string' },
        digest: { type: 'boolean' },
        ...MULTIFD_FLAGS,
        ...COMPRESS_FLAGS,
      });
      if (typeof values.out !== 'string') throw new UsageError('encode needs --out STREAM');
      if (!values.dumps && typeof values.manifest !== 'string') throw new UsageError('encode needs --dumps D0 D1 … or --manifest FILE');
      if (values.dumps && positionals.length === 0) throw new UsageError('--dumps needs at least one dump file');
      return (values.multifd === undefined ? runEncode : (cmd: EncodeCommand) => runEncodeMultifd(cmd, values))({
        dumps: values.dumps ? positionals : undefined,
        manifest: values.manifest as string | undefined,
        block: (values.block as string | undefined) ?? 'pc.ram',
        out: values.out,
        template: values.template as string | undefined,
        xbzrle: xbzrleOption(values.xbzrle as string | undefined, values['cache-policy'] as string | undefined),
        disks: namedPaths(values.disk as string[] | undefined, '--disk'),
        diskWrites: namedPaths(values['disk-writes'] as string[] | undefined, '--disk-writes'),
        zeroBlocks: values['zero-blocks'] === true,
        blockChunk: chunkOption(values.chunk as string | undefined),
        compress: compressOption(values),
        digest: values.digest === true ? 'xxh64' : undefined,
      });
    }
    case 'verify': {
      const { values, positionals } = parse(rest, { against: { type: 'string' }, json: { type: 'boolean' }, strict: { type: 'boolean' }, channel: CHANNEL });
      if (typeof values.against !== 'string') throw new UsageError('verify needs --against DIR');
      return runVerify(
        channels(one(positionals, 'STREAM'), values.channel as string[] | undefined),
        values.against,
        values.json === true,
        values.strict === true,
      );
    }
    case 'relay': {
      const { values } = parse(withOptionalValue(rest, '--xbzrle'), {
        listen: { type: 'string' },
        connect: { type: 'string' },
        record: { type: 'string' },
        once: { type: 'boolean' },
        'idle-timeout': { type: 'string' },
        json: { type: 'boolean' },
        xbzrle: { type: 'string' },
        'cache-policy': { type: 'string' },
        chunk: { type: 'string' },
        digest: { type: 'boolean' },
        'multifd-compression': MULTIFD_FLAGS['multifd-compression'],
        'multifd-level': MULTIFD_FLAGS['multifd-level'],
        'multifd-long': { type: 'boolean' },
        ...COMPRESS_FLAGS,
      });
      if (typeof values.listen !== 'string' || typeof values.connect !== 'string') throw new UsageError('relay needs --listen URI and --connect URI');
      const compress = compressOption(values);
      const idle = values['idle-timeout'] === undefined ? undefined : Number(values['idle-timeout']);
      if (idle !== undefined && !(idle > 0)) throw new UsageError(`--idle-timeout expects seconds > 0, got "${values['idle-timeout']}"`);
      return runRelay({
        listen: values.listen,
        connect: values.connect,
        record: values.record as string | undefined,
        once: values.once === true,
        idleTimeoutS: idle,
        json: values.json === true,
        workers: compress?.workers || undefined,
        transcode: {
          xbzrle: xbzrleOption(values.xbzrle as string | undefined, values['cache-policy'] as string | undefined),
          compress: compress?.spec,
          chunkCompress: compress?.chunkSpec,
          blockChunk: chunkOption(values.chunk as string | undefined),
          digest: values.digest === true ? 'xxh64' : undefined,
          multifd: multifdRelayOption(values),
        },
      });
    }
    case 'replay': {
      const { values, positionals } = parse(rest, { connect: { type: 'string' }, json: { type: 'boolean' }, pace: { type: 'string' } });
      return runReplay(one(positionals, 'DIR'), values.connect as string | undefined, values.json === true, values.pace as string | undefined);
    }
    case 'bench':
      return runBenchCommand(rest);
    case 'dirty-rate':
      return runDirtyRate(rest);
    case 'plan':
      return runPlan(rest);
    case 'demo':
      parse(rest, {});
      return runDemo();
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? 2 : 0;
    default:
      throw new UsageError(`unknown command "${command}"`);
  }
}

type Spec = Record<string, { type: 'string' | 'boolean'; multiple?: boolean }>;

function parse(args: string[], options: Spec) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

const CHANNEL = { type: 'string', multiple: true } as const;

/** `STREAM --channel FILE …`: STREAM is a multifd main channel, the FILEs its channels (any order). */
function channels(path: string, files: string[] | undefined): string {
  if (files?.length) {
    if (path === '-') throw new UsageError('--channel needs STREAM to be a file');
    attachChannels(path, files);
  }
  return path;
}

function one(positionals: string[], name: string): string {
  if (positionals.length !== 1) throw new UsageError(`expected exactly one ${name}`);
  return positionals[0]!;
}

/** DEV=SIZE pairs. */
function parseSizes(pairs: string[] | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const p of pairs ?? []) {
    const at = p.lastIndexOf('=');
    if (at <= 0) throw new UsageError(`--disk-size expects DEV=SIZE, got "${p}"`);
    out[p.slice(0, at)] = parseSize(p.slice(at + 1), '--disk-size');
  }
  return out;
}

/** NAME=PATH pairs (the name may itself contain "="; the path is after the last one). */
function namedPaths(pairs: string[] | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs ?? []) {
    const at = p.indexOf('=');
    if (at <= 0 || at === p.length - 1) throw new UsageError(`${flag} expects NAME=PATH, got "${p}"`);
    out[p.slice(0, at)] = p.slice(at + 1);
  }
  return out;
}

/** --chunk SIZE: a power of two from 4 KiB to 1 MiB. */
function chunkOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const size = parseSize(value, '--chunk');
  try {
    checkChunkSize(size);
  } catch (e) {
    throw new UsageError(`--chunk: ${(e as Error).message}`);
  }
  return size;
}

/** Lets `--flag` stand alone or take `--flag=VALUE` (parseArgs needs a value for strings). */
function withOptionalValue(args: string[], flag: string): string[] {
  return args.map((a) => (a === flag ? `${flag}=default` : a));
}

function xbzrleOption(value: string | undefined, policy: string | undefined): { cacheBytes: number; policy: CachePolicy } | undefined {
  if (policy !== undefined && policy !== 'lru' && policy !== 'qemu') throw new UsageError(`--cache-policy is lru or qemu, got "${policy}"`);
  if (value === undefined) {
    if (policy !== undefined) throw new UsageError('--cache-policy needs --xbzrle');
    return undefined;
  }
  const cacheBytes = value === 'default' ? DEFAULT_XBZRLE_CACHE : parseSize(value, '--xbzrle');
  if (policy === 'qemu' && (cacheBytes < 4096 || (cacheBytes & (cacheBytes - 1)) !== 0)) {
    throw new UsageError(`--cache-policy qemu needs a power-of-two cache size of at least 4KiB, got ${cacheBytes}`);
  }
  return { cacheBytes, policy: (policy ?? 'lru') as CachePolicy };
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    if (e instanceof UsageError) {
      process.stderr.write(`migstream: ${e.message}\n${USAGE}\n`);
      process.exitCode = 2;
    } else if (e instanceof OutputClosedError || (e instanceof MigstreamError && e.code === 'OUTPUT_CLOSED')) {
      // an I/O condition (e.g. `| head -c N`), not a bad stream: one line naming the output
      const output = e instanceof OutputClosedError ? e.message : e.detail;
      process.stderr.write(`migstream: ${output}\n`);
      process.exitCode = 1;
    } else if (e instanceof MigstreamError && !isStreamFault(e)) {
      process.stderr.write(`migstream: ${e.code === 'INTERNAL' ? 'internal error' : e.code.toLowerCase()} [${e.code}] ${e.message}\n`);
      if (process.env.MIGSTREAM_DEBUG) process.stderr.write(`${(e as { cause?: Error }).cause?.stack}\n`);
      process.exitCode = 1;
    } else if (e instanceof MigstreamError) {
      process.stderr.write(`migstream: bad stream [${e.code}] ${e.message}\n`);
      process.exitCode = 3;
    } else {
      const err = e as NodeJS.ErrnoException;
      process.stderr.write(`migstream: ${err?.message ?? String(e)}\n`);
      if (process.env.MIGSTREAM_DEBUG) process.stderr.write(`${err?.stack}\n`);
      process.exitCode = 1;
    }
  },
);
