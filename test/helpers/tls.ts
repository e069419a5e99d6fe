// Real certificates for TLS tests, made with the `openssl` CLI: a CA, a server certificate for 127.0.0.1 and
// localhost signed by it, and on request a client certificate. `renewServer` writes a new key and certificate (new
// serial) over the server's files, as a renewal would. Tests skip with `opensslSkip()` when openssl is missing
// (and fail in CI, BACKHAUL_REQUIRE_SERVICES=1).
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { accessSync, constants, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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

function openssl(args: readonly string[], cwd: string): void {
  execFileSync(OPENSSL, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
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
  /** A client certificate with this CN, signed by the CA: its cert and key files. */
  client(cn: string): { cert: string; key: string };
}

let serial = 1000;

/** Makes a CA and a server certificate for 127.0.0.1 and localhost in `dir`. */
export function makePki(dir: string): TestPki {
  const ca = join(dir, 'ca.pem');
  const caKey = join(dir, 'ca-key.pem');
  const cert = join(dir, 'server.pem');
  const key = join(dir, 'server-key.pem');
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey, '-out', ca, '-days', '2', '-subj', '/CN=Backhaul test CA'], dir);

  const issue = (cn: string, outCert: string, outKey: string, ext: string) => {
    const csr = join(dir, `${cn}.csr`);
    const extFile = join(dir, `${cn}.ext`);
    writeFileSync(extFile, ext);
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', `${outKey}.new`, '-out', csr, '-subj', `/CN=${cn}`], dir);
    serial += 1;
    openssl(['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-set_serial', String(serial), '-days', '2', '-extfile', extFile, '-out', `${outCert}.new`], dir);
    // Key first, then certificate: each file changes in one step, as `mv` of a renewed file does.
    renameSync(`${outKey}.new`, outKey);
    renameSync(`${outCert}.new`, outCert);
  };
  const serverExt = 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n';
  issue('localhost', cert, key, serverExt);
  return {
    dir,
    ca,
    caKey,
    cert,
    key,
    fingerprint: () => new X509Certificate(readFileSync(cert)).fingerprint256,
    renewServer: () => issue('localhost', cert, key, serverExt),
    client(cn) {
      const c = { cert: join(dir, `client-${cn}.pem`), key: join(dir, `client-${cn}-key.pem`) };
      issue(cn, c.cert, c.key, 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n');
      return c;
    },
  };
}
