// A `migstream relay --once --json` child process for the WAN benchmarks: resolves `ready` once it
// listens and `done` with its exit code and output; `killers` gets a function that stops it.
// SPDX-License-Identifier: MIT
import { spawn } from 'node:child_process';
import { join } from 'node:path';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');

/**
 * @param {string[]} args relay arguments (listen, connect, options)
 * @param {(() => void)[]} killers
 * @param {string[]} [nodeArgs] e.g. --cpu-prof flags
 */
export function spawnRelay(args, killers, nodeArgs = []) {
  const child = spawn(process.execPath, [...nodeArgs, CLI, 'relay', ...args, '--once', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  killers.push(() => child.kill('SIGKILL'));
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  const ready = new Promise((r) => child.stderr.on('data', (d) => (err += d).includes('listening') && r()));
  const done = new Promise((r) => child.on('exit', (code) => r({ code, out, err })));
  return { ready, done, pid: child.pid };
}
