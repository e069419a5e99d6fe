// Listener addresses and bind failures, shared by every part that listens (inputs, the API): pure, no I/O.
import { BackhaulError, errorText } from './errors.js';

/** The host a person on this machine uses to reach a listener bound to `host`. */
export function reachableHost(host: string): string {
  if (host === '0.0.0.0' || host === '' || host === '::' || host === '[::]') return '127.0.0.1';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

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
  const msg = errorText(err);
  return new BackhaulError('BH_INPUT_FAILED', `cannot listen on ${host}:${port}: ${msg}`, { path, cause: err });
}
