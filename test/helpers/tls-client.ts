// Real certificates for the TLS client tests, made with the openssl CLI in a temporary folder: two CAs (the right one
// and an unknown one), server certificates for 127.0.0.1/localhost (valid, expired) and for another host name, one
// signed by the unknown CA, and a client certificate for mutual TLS. OpenSSL 3.0 has no `-not_after` for `x509`/`req`,
// so the expired certificate is signed with `openssl ca`, which takes explicit start and end dates.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { createServer as createHttpsServer } from 'node:https';
import { Aedes } from 'aedes';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { tempDir } from './context.js';

export interface TestPki {
  readonly dir: string;
  /** The CA that signed `server`, `expired`, `otherHost` and `client`. */
  readonly ca: string;
  /** A CA nobody configured; it signed `strangerServer`. */
  readonly otherCa: string;
  /** Server certificate + key for 127.0.0.1 and localhost, from `ca`. */
  readonly server: { cert: string; key: string };
  /** For 127.0.0.1 and localhost, from `ca`, valid in 2020 only. */
  readonly expired: { cert: string; key: string };
  /** For `other.example` only, from `ca`. */
  readonly otherHost: { cert: string; key: string };
  /** For 127.0.0.1 and localhost, from `otherCa`. */
  readonly strangerServer: { cert: string; key: string };
  /** A client certificate (CN backhaul) from `ca`. */
  readonly client: { cert: string; key: string };
  read(file: string): Buffer;
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

function makeCa(dir: string, name: string): { cert: string; key: string } {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '30', '-subj', `/CN=${name}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return { cert, key };
}

function makeLeaf(
  dir: string,
  name: string,
  ca: { cert: string; key: string },
  ext: string,
  dates?: { start: string; end: string },
): { cert: string; key: string } {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.pem`);
  const extFile = join(dir, `${name}.ext`);
  writeFileSync(extFile, `${ext}\n`);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${name}`], dir);
  if (!dates) {
    openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-CAcreateserial', '-out', cert, '-days', '30', '-extfile', extFile], dir);
    return { cert, key };
  }
  // `openssl ca` with a throwaway database: the only way OpenSSL 3.0 signs with a start date in the past.
  const db = join(dir, `${name}-ca`);
  mkdirSync(db);
  writeFileSync(join(db, 'index.txt'), '');
  writeFileSync(join(db, 'serial'), '1000\n');
  const conf = join(db, 'ca.cnf');
  writeFileSync(
    conf,
    [
      '[ca]', 'default_ca = test', '[test]', `dir = ${db}`, 'database = $dir/index.txt', 'serial = $dir/serial', 'new_certs_dir = $dir',
      `certificate = ${ca.cert}`, `private_key = ${ca.key}`, 'default_md = sha256', 'policy = any', 'unique_subject = no', 'copy_extensions = none',
      '[any]', 'commonName = supplied', '',
    ].join('\n'),
  );
  openssl(['ca', '-batch', '-config', conf, '-in', csr, '-out', cert, '-startdate', dates.start, '-enddate', dates.end, '-extfile', extFile, '-notext'], dir);
  return { cert, key };
}

const SERVER_EXT = 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth';

export function makeTestPki(): TestPki {
  const tmp = tempDir('backhaul-tls-');
  const dir = tmp.path;
  const ca = makeCa(dir, 'ca');
  const other = makeCa(dir, 'other-ca');
  return {
    dir,
    ca: ca.cert,
    otherCa: other.cert,
    server: makeLeaf(dir, 'server', ca, SERVER_EXT),
    expired: makeLeaf(dir, 'expired', ca, SERVER_EXT, { start: '20200101000000Z', end: '20200201000000Z' }),
    otherHost: makeLeaf(dir, 'other-host', ca, 'subjectAltName=DNS:other.example\nextendedKeyUsage=serverAuth'),
    strangerServer: makeLeaf(dir, 'stranger', other, SERVER_EXT),
    client: makeLeaf(dir, 'client', ca, 'extendedKeyUsage=clientAuth'),
    read: (file) => readFileSync(file),
    cleanup: () => tmp.cleanup(),
  };
}

/** An aedes broker behind a node:tls listener on a free port; `mutual` asks clients for a certificate from `ca`. */
export interface TlsBroker {
  readonly url: string;
  /** Device seq numbers of every reading published to it. */
  readonly seqs: number[];
  /** Subject CNs of the client certificates it was shown. */
  readonly clientCerts: string[];
  /** Close every client connection (the broker keeps listening), so clients reconnect. */
  dropClients(): void;
  close(): Promise<void>;
}

export async function startTlsBroker(
  pki: TestPki,
  cert: { cert: string; key: string },
  mutual = false,
): Promise<TlsBroker> {
  const seqs: number[] = [];
  const clientCerts: string[] = [];
  const sockets = new Set<TLSSocket>();
  const broker = await Aedes.createBroker({
    authorizePublish: (_client, packet, callback) => {
      const body = JSON.parse(packet.payload.toString()) as { seq?: number };
      if (typeof body.seq === 'number') seqs.push(body.seq);
      callback(null);
    },
  });
  const server = createServer(
    {
      cert: pki.read(cert.cert),
      key: pki.read(cert.key),
      ...(mutual ? { requestCert: true, rejectUnauthorized: true, ca: pki.read(pki.ca) } : {}),
    },
    (socket: TLSSocket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
      const peer = socket.getPeerCertificate();
      if (peer.subject) clientCerts.push(String(peer.subject.CN));
      broker.handle(socket);
    },
  );
  server.on('tlsClientError', () => undefined); // refused handshakes are what these tests make
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `mqtts://127.0.0.1:${port}`,
    seqs,
    clientCerts,
    dropClients: () => {
      for (const s of sockets) s.destroy();
    },
    // Stop listening first, then cut what is open: a client reconnecting meanwhile must not keep the server alive.
    close: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => broker.close(() => r()));
      await closed;
    },
  };
}

/** An aedes broker behind MQTT over WebSocket on a node:https server (`wss://127.0.0.1:<port>/`). */
export async function startWssBroker(pki: TestPki, cert: { cert: string; key: string }): Promise<Omit<TlsBroker, 'clientCerts'>> {
  const seqs: number[] = [];
  const broker = await Aedes.createBroker({
    authorizePublish: (_client, packet, callback) => {
      const body = JSON.parse(packet.payload.toString()) as { seq?: number };
      if (typeof body.seq === 'number') seqs.push(body.seq);
      callback(null);
    },
  });
  const server = createHttpsServer({ cert: pki.read(cert.cert), key: pki.read(cert.key) });
  server.on('tlsClientError', () => undefined);
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => broker.handle(createWebSocketStream(ws)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `wss://127.0.0.1:${port}/`,
    seqs,
    dropClients: () => {
      for (const c of wss.clients) c.terminate();
    },
    // Stop listening first, then cut what is open: a client reconnecting meanwhile must not keep the server alive.
    close: async () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const c of wss.clients) c.terminate();
      server.closeAllConnections();
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => wss.close(() => r()));
      await closed;
    },
  };
}
