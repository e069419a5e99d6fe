// A private NATS server with JetStream (Debian's nats-server, or NATS_SERVER), on a free port with its store in a
// temp folder, for tests that need a far end of their own (the conformance suite stops and restarts it). With `tls`
// it requires TLS on its port (`--tls`: clients are not asked for a certificate), with that certificate and key.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { freePort } from './servers.js';
import { requireServices, tcpReachable } from './services.js';

export const NATS_SERVER = process.env['NATS_SERVER'] ?? '/usr/sbin/nats-server';

/** Why tests needing a private nats-server are skipped here, or false. In CI (BACKHAUL_REQUIRE_SERVICES=1) it must exist. */
export function natsServerSkip(): string | false {
  if (existsSync(NATS_SERVER)) return false;
  const why = `needs nats-server at ${NATS_SERVER} (apt-get install -y nats-server, or set NATS_SERVER)`;
  if (requireServices) throw new Error(`BACKHAUL_REQUIRE_SERVICES=1 but ${why}`);
  return why;
}

export interface PrivateNats {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
  /** SIGSTOP / SIGCONT: a server that keeps its sockets open but answers nothing (a hung host), for faults. */
  freeze(): void;
  thaw(): void;
}

export async function startNats(
  storeDir: string,
  opts: { user?: string; pass?: string; tls?: { cert: string; key: string }; port?: number } = {},
): Promise<PrivateNats> {
  // `port`: the one a stopped server had, to stand in for it (clients reconnect to the address they know).
  const port = opts.port ?? (await freePort());
  const args = ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', storeDir];
  if (opts.user !== undefined) args.push('--user', opts.user, '--pass', opts.pass ?? '');
  if (opts.tls !== undefined) args.push('--tls', '--tlscert', opts.tls.cert, '--tlskey', opts.tls.key);
  const proc: ChildProcess = spawn(NATS_SERVER, args, { stdio: 'ignore' });
  let exited = false;
  proc.once('exit', () => (exited = true));
  const until = Date.now() + 10_000;
  while (!(await tcpReachable('127.0.0.1', port, 200))) {
    if (exited || Date.now() > until) {
      proc.kill('SIGKILL');
      throw new Error(`nats-server did not start on port ${port}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    freeze: () => void proc.kill('SIGSTOP'),
    thaw: () => void proc.kill('SIGCONT'),
    stop: () =>
      new Promise<void>((resolve) => {
        if (exited) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGCONT'); // a frozen one could not act on SIGTERM
        proc.kill('SIGTERM');
      }),
  };
}
