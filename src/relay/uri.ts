/** Where a relay listens or connects: QEMU's `unix:PATH` and `tcp:HOST:PORT` URIs. */
export type SocketAddress = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export function parseUri(uri: string, flag: string): SocketAddress {
  if (uri.startsWith('unix:')) {
    const path = uri.slice(5);
    if (path.length === 0) throw new RangeError(`${flag}: unix: needs a PATH`);
    return { kind: 'unix', path };
  }
  if (uri.startsWith('tcp:')) {
    const rest = uri.slice(4);
    const at = rest.lastIndexOf(':');
    const host = rest.slice(0, at).replace(/^\[(.*)\]$/, '$1');
    const port = Number(rest.slice(at + 1));
    if (at <= 0 || !Number.isInteger(port) || port < 0 || port > 65535 || rest.slice(at + 1) === '') {
      throw new RangeError(`${flag}: expected tcp:HOST:PORT, got "${uri}"`);
    }
    return { kind: 'tcp', host, port };
  }
  throw new RangeError(`${flag}: expected unix:PATH or tcp:HOST:PORT, got "${uri}"`);
}

/** Options for net.connect / server.listen. */
export function netOptions(a: SocketAddress): { path: string } | { host: string; port: number } {
  return a.kind === 'unix' ? { path: a.path } : { host: a.host, port: a.port };
}

export function formatUri(a: SocketAddress): string {
  return a.kind === 'unix' ? `unix:${a.path}` : `tcp:${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}
