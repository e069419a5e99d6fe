// Small helpers shared by the input drivers.
import { BackhaulError } from '../core/errors.js';

/** A plain Uint8Array view of a Buffer's bytes (no copy), so frames carry exactly the type `Frame` declares. */
export function bytes(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** The host a person on this machine uses to reach a listener bound to `host`. */
export function reachableHost(host: string): string {
  if (host === '0.0.0.0' || host === '' || host === '::' || host === '[::]') return '127.0.0.1';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** Maps a listen() failure to the coded error a person can act on. */
/** A listener's bind failure as a coded error at the config path of its port (`inputs.<id>.port`, `api.port`). */
export function listenError(err: unknown, host: string, port: number, inputId: string, portPath = `inputs.${inputId}.port`): BackhaulError {
  const code = (err as { code?: unknown } | null)?.code;
  const path = portPath;
  if (code === 'EADDRINUSE') {
    return new BackhaulError(
      'BH_PORT_IN_USE',
      `port ${port} on ${host} is already in use; set ${path} to a free port (or 0 for any)`,
      { path, cause: err },
    );
  }
  if (code === 'EACCES') {
    return new BackhaulError(
      'BH_INPUT_FAILED',
      `not allowed to listen on port ${port} on ${host} (ports below 1024 need privileges); choose a port above 1023`,
      { path, cause: err },
    );
  }
  if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') {
    return new BackhaulError('BH_INPUT_FAILED', `cannot listen on ${host}: no such local address`, {
      path: `inputs.${inputId}.host`,
      cause: err,
    });
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new BackhaulError('BH_INPUT_FAILED', `cannot listen on ${host}:${port}: ${msg}`, { path, cause: err });
}

/** Keeps the promises of emits in flight, so `stop()` can wait for them to settle. */
export class InFlight {
  private readonly pending = new Set<Promise<unknown>>();
  track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    const remove = () => this.pending.delete(p);
    p.then(remove, remove);
    return p;
  }
  get size(): number {
    return this.pending.size;
  }
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A promise with its resolve function, for `done()`. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
