// Real certificates for TLS tests, made with `backhaul certs` (the real CLI; `openssl` is still what the tests check
// them and the listeners with): a CA, a server certificate for 127.0.0.1 and localhost signed by it, and on request a
// device's client certificate. `renewServer` writes a new key and certificate (new
// serial) over the server's files, as a renewal would. Tests skip with `opensslSkip()` when openssl is missing
// (and fail in CI, BACKHAUL_REQUIRE_SERVICES=1).
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { accessSync, constants, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BIN } from './process.js';
import { requireServices } from './services.js';

export const OPENSSL = '/usr/bin/openssl';

export function opensslSkip(): string | false {
  try {
    accessSync(OPENSSL, constants.X_OK);
    return false;
  } catch {
    if (requireServices) throw new Error(`openssl at ${OPENSSL} is required (BACKHAUL_REQUIRE_SERVICES=1) but is not there`);
    return `needs the openssl CLI at ${OPENSSL} (apt-get install -y openssl)`;
  }
}


export interface TestPki {
  readonly dir: string;
  /** The CA's certificate (PEM file): what clients trust. */
  readonly ca: string;
  readonly caKey: string;
  /** The server's certificate and key (PEM files). */
  readonly cert: string;
  readonly key: string;
  /** SHA-256 fingerprint of the server certificate now on disk (`AA:BB:…`, as node's X509Certificate gives it). */
  fingerprint(): string;
  /** A new key and certificate (new serial) in place of the server's, each file replaced in one rename. */
  renewServer(): void;
  /** A client certificate with this CN, signed by the CA (`backhaul certs device`): its cert and key files. */
  client(cn: string, kind?: string): { cert: string; key: string };
}

/** `backhaul certs …` in `dir`, as a person runs it (the tests' certificates are the ones users get). */
function certs(args: readonly string[], dir: string): void {
  execFileSync(process.execPath, [BIN, 'certs', ...args, '--dir', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Makes a CA and a server certificate for 127.0.0.1 and localhost in `dir`, with `backhaul certs`. */
export function makePki(dir: string): TestPki {
  const ca = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca-key.pem');
  const cert = join(dir, 'server.pem');
  const key = join(dir, 'server-key.pem');
  certs(['init', '--name', 'Backhaul test CA', '--days', '2'], dir);
  // Renewing is running it again: a new key and serial, each file replaced in one rename.
  const server = () => certs(['server', '--host', 'localhost', '--ip', '127.0.0.1', '--days', '2'], dir);
  server();
  return {
    dir,
    ca,
    caKey,
    cert,
    key,
    fingerprint: () => new X509Certificate(readFileSync(cert)).fingerprint256,
    renewServer: server,
    client(id, kind = 'other') {
      certs(['device', id, '--kind', kind, '--days', '2'], dir);
      return { cert: join(dir, 'devices', `${id}.pem`), key: join(dir, 'devices', `${id}-key.pem`) };
    },
  };
}
