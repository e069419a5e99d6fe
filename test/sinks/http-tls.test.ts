// The http and emoncms sinks over real TLS: node:https servers with certificates made by openssl
// (test/helpers/tls-client.ts). A private CA in `tls.ca` delivers; no CA, the wrong CA, another host's certificate or
// an expired one are refused with BH_TLS_VERIFY and the reason (retryable, counted); a CA file replaced on disk takes
// effect at the next request; a server asking for a client certificate gets `tls.cert`/`tls.key`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { SinkError } from '../../src/core/driver.js';
import { createLogger } from '../../src/core/logger.js';
import { Metrics } from '../../src/core/metrics.js';
import type { TlsClientConfig } from '../../src/core/tls-client.js';
import { emoncmsSink } from '../../src/sinks/emoncms/index.js';
import { httpSink } from '../../src/sinks/http/index.js';
import { createWithDefaults } from '../helpers/options.js';
import { makeTestPki, type TestPki } from '../helpers/tls-client.js';
import { sinkContext, valve } from './messages.js';

interface HttpsServer {
  readonly url: string;
  readonly bodies: string[];
  /** CN of the client certificate of each request, '' without one. */
  readonly clients: string[];
  close(): Promise<void>;
}

async function startHttps(pki: TestPki, cert: { cert: string; key: string }, mutual = false): Promise<HttpsServer> {
  const bodies: string[] = [];
  const clients: string[] = [];
  const server: Server = createServer(
    { cert: pki.read(cert.cert), key: pki.read(cert.key), ...(mutual ? { requestCert: true, rejectUnauthorized: true, ca: pki.read(pki.ca) } : {}) },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      clients.push(peer.subject ? String(peer.subject.CN) : '');
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        bodies.push(Buffer.concat(chunks).toString('utf8'));
        res.setHeader('Content-Type', 'text/plain');
        res.end('ok');
      });
    },
  );
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    clients,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** `tls` options as a config gives them; createWithDefaults fills in the schema's defaults (insecure, minVersion). */
const tls = (o: Partial<TlsClientConfig>): TlsClientConfig => o as TlsClientConfig;

function tlsRefusal(code: string, reason: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof SinkError, `expected a SinkError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.equal(e.retryable, true, 'a TLS failure is retried like an outage');
    assert.match(e.message, reason);
    return true;
  };
}

test('http sink over https: a private CA delivers; no CA, another CA, another host or an expired certificate are refused with the reason', async (t) => {
  const pki = makeTestPki();
  t.after(() => pki.cleanup());
  const good = await startHttps(pki, pki.server);
  t.after(() => good.close());
  const other = await startHttps(pki, pki.otherHost);
  t.after(() => other.close());
  const old = await startHttps(pki, pki.expired);
  t.after(() => old.close());
  const metrics = new Metrics();

  const make = async (url: string, o?: Partial<TlsClientConfig>) => {
    const s = createWithDefaults(httpSink, { url: `${url}/in`, ...(o ? { tls: tls(o) } : {}) }, sinkContext({ id: 'web', metrics }));
    await s.open();
    t.after(() => s.close());
    return s;
  };

  await (await make(good.url, { ca: pki.ca })).write([valve]);
  assert.equal(good.bodies.length, 1);
  assert.equal((JSON.parse(good.bodies[0] ?? '[]') as unknown[]).length, 1);

  await assert.rejects((await make(good.url)).write([valve]), tlsRefusal('BH_TLS_VERIFY', /^sink web: the certificate of https:\/\/127\.0\.0\.1:\d+ is not accepted: unknown CA/));
  await assert.rejects((await make(good.url, { ca: pki.otherCa })).write([valve]), tlsRefusal('BH_TLS_VERIFY', /unknown CA/));
  await assert.rejects((await make(other.url, { ca: pki.ca })).write([valve]), tlsRefusal('BH_TLS_VERIFY', /: wrong host \(/));
  await assert.rejects((await make(old.url, { ca: pki.ca })).write([valve]), tlsRefusal('BH_TLS_VERIFY', /: expired \(/));
  assert.equal(good.bodies.length, 1, 'nothing delivered past a refused certificate');
  assert.equal(other.bodies.length + old.bodies.length, 0);
  assert.equal(await metrics.value('backhaul_tls_failures_total', { client: 'sinks.web', reason: 'unknown CA' }), 2);
  assert.equal(await metrics.value('backhaul_tls_failures_total', { client: 'sinks.web', reason: 'wrong host' }), 1);
  assert.equal(await metrics.value('backhaul_tls_failures_total', { client: 'sinks.web', reason: 'expired' }), 1);

  // servername: the certificate for other.example is right when that is the name Backhaul asks for.
  await (await make(other.url, { ca: pki.ca, servername: 'other.example' })).write([valve]);
  assert.equal(other.bodies.length, 1);
});

test('http sink: a CA file replaced on disk takes effect at the next request, without reopening the sink', async (t) => {
  const pki = makeTestPki();
  t.after(() => pki.cleanup());
  const srv = await startHttps(pki, pki.server);
  t.after(() => srv.close());
  const caFile = join(pki.dir, 'trusted.pem');
  copyFileSync(pki.otherCa, caFile);
  const sink = createWithDefaults(httpSink, { url: `${srv.url}/in`, tls: tls({ ca: caFile }) }, sinkContext({ id: 'web' }));
  await sink.open();
  t.after(() => sink.close());
  await assert.rejects(sink.write([valve]), tlsRefusal('BH_TLS_VERIFY', /unknown CA/));
  copyFileSync(pki.ca, caFile);
  await sink.write([valve]);
  assert.equal(srv.bodies.length, 1);
  // And back: a kept-alive connection made with the old CA is not reused once the file says otherwise.
  copyFileSync(pki.otherCa, caFile);
  await assert.rejects(sink.write([valve]), tlsRefusal('BH_TLS_VERIFY', /unknown CA/));
  assert.equal(srv.bodies.length, 1);
});

test('http and emoncms sinks with a client certificate (mutual TLS); without one the server refuses, BH_TLS_HANDSHAKE', async (t) => {
  const pki = makeTestPki();
  t.after(() => pki.cleanup());
  const srv = await startHttps(pki, pki.server, true);
  t.after(() => srv.close());
  const mtls = tls({ ca: pki.ca, cert: pki.client.cert, key: pki.client.key });
  const web = createWithDefaults(httpSink, { url: `${srv.url}/in`, tls: mtls }, sinkContext({ id: 'web' }));
  await web.open();
  t.after(() => web.close());
  await web.write([valve]);
  const emon = createWithDefaults(emoncmsSink, { url: srv.url, apikey: 'k3y-for-emoncms', tls: mtls }, sinkContext({ id: 'emon' }));
  await emon.open();
  t.after(() => emon.close());
  await emon.write([valve]);
  assert.deepEqual(srv.clients, ['client', 'client']);
  assert.match(srv.bodies[1] ?? '', /node=/);

  const anon = createWithDefaults(httpSink, { url: `${srv.url}/in`, tls: tls({ ca: pki.ca }) }, sinkContext({ id: 'anon' }));
  await anon.open();
  t.after(() => anon.close());
  await assert.rejects(anon.write([valve]), tlsRefusal('BH_TLS_HANDSHAKE', /^sink anon: the TLS handshake with https:\/\/127\.0\.0\.1:\d+ failed: client certificate refused/));
  assert.equal(srv.bodies.length, 2);
});

test('tls files: a missing CA file fails open() with BH_TLS_FILE naming the option; a key without cert is a config problem', async (t) => {
  const pki = makeTestPki();
  t.after(() => pki.cleanup());
  const sink = createWithDefaults(httpSink, { url: 'https://127.0.0.1:9/in', tls: tls({ ca: join(pki.dir, 'nope.pem') }) }, sinkContext({ id: 'web' }));
  await assert.rejects(sink.open(), (e: unknown) => {
    assert.ok(e instanceof SinkError);
    assert.equal(e.code, 'BH_TLS_FILE');
    assert.equal(e.retryable, false);
    assert.match(e.message, /^sinks\.web\.tls\.ca: cannot read the ca file .*nope\.pem/);
    return true;
  });
  const junk = join(pki.dir, 'junk.pem');
  writeFileSync(junk, 'not a certificate\n');
  const notPem = createWithDefaults(httpSink, { url: 'https://127.0.0.1:9/in', tls: tls({ ca: junk }) }, sinkContext({ id: 'web' }));
  await assert.rejects(notPem.open(), /sinks\.web\.tls\.ca: the ca file .*junk\.pem holds no PEM block/);
  const bad = httpSink.check?.({ url: 'https://x/', method: 'POST', headers: {}, timeoutMs: 1000, tls: { key: pki.client.key, insecure: false, minVersion: 'TLSv1.2' } });
  assert.deepEqual(bad, [{ path: 'tls.cert', message: 'a key needs its client certificate (cert)' }]);
});

test('tls.insecure delivers to a server whose certificate does not verify, with a warning logged at open; a key given as PEM text (a secret) works', async (t) => {
  const pki = makeTestPki();
  t.after(() => pki.cleanup());
  const srv = await startHttps(pki, pki.otherHost, true);
  t.after(() => srv.close());
  const lines: string[] = [];
  const logger = createLogger({ level: 'warn', pretty: false, destination: { write: (l: string) => lines.push(l) } });
  // The key as a `{"secret": NAME}` value arrives: the PEM text itself, not a file name.
  const key = pki.read(pki.client.key).toString('utf8');
  const sink = createWithDefaults(httpSink, { url: `${srv.url}/in`, tls: tls({ insecure: true, cert: pki.client.cert, key }) }, sinkContext({ id: 'lab', logger }));
  await sink.open();
  t.after(() => sink.close());
  await sink.write([valve]);
  assert.equal(srv.bodies.length, 1);
  assert.deepEqual(srv.clients, ['client']);
  assert.ok(lines.some((l) => l.includes('tls.insecure') && l.includes('NOT verified')), lines.join(''));
});
