// Black-box: the real `backhaul` program serving TLS everywhere it listens (the API, the embedded broker's mqtts,
// the `http` input), with certificates made by openssl; renewed files served after SIGHUP while an open MQTT
// connection stays up; and `backhaul check` naming a missing certificate file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { tempDir } from '../helpers/context.js';
import { runBackhaul, runToEnd } from '../helpers/process.js';
import { freePort } from '../helpers/servers.js';
import { makePki, opensslSkip } from '../helpers/tls.js';
import { until } from '../helpers/until.js';

const skip = opensslSkip();

function httpsCall(url: string, ca: Buffer | undefined, method = 'GET', body?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, ...(ca ? { ca } : {}), headers: body !== undefined ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.once('error', reject);
    req.end(body);
  });
}

function servedFingerprint(port: number, ca: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.destroy();
      resolve(fp);
    });
    s.once('error', reject);
  });
}

test('backhaul serves HTTPS (API, http input) and mqtts; SIGHUP serves renewed certificates; open connections stay', { skip }, async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const pki = makePki(dir.path);
  // The http input's key comes from the secrets store (the PEM itself); the others name files, relative to the config.
  const ingestKey = readFileSync(pki.key, 'utf8');
  const [apiPort, mqttsPort, ingestPort] = [await freePort(), await freePort(), await freePort()];
  const cfg = join(dir.path, 'backhaul.jsonc');
  writeFileSync(
    cfg,
    `{
      "data": "data",
      "api": { "host": "127.0.0.1", "port": ${apiPort}, "tls": { "cert": "server.pem", "key": "server-key.pem", "watchMs": 0 } },
      "inputs": {
        "devices": { "type": "broker", "host": "127.0.0.1", "tcp": false, "anonymous": true, "tlsPort": ${mqttsPort},
                     "tls": { "cert": "server.pem", "key": "server-key.pem", "watchMs": 0 } },
        "ingest": { "type": "http", "host": "127.0.0.1", "port": ${ingestPort}, "decoder": "json",
                    "tls": { "cert": "${pki.cert}", "key": { "secret": "ingest-key" } } }
      },
      "sinks": { "history": { "type": "sqlite" } },
      "routes": [ { "to": ["history"] } ]
    }`,
  );
  const app = runBackhaul(['start', '-c', cfg], { BACKHAUL_SECRET_INGEST_KEY: ingestKey });
  t.after(() => app.stop());
  await app.waitFor((l) => l.msg === 'backhaul running');
  assert.ok(app.logs.some((l) => l.msg === 'API listening' && l['url'] === `https://127.0.0.1:${apiPort}`));
  assert.ok(app.logs.some((l) => l.msg === 'embedded MQTT broker listening' && l['url'] === `mqtts://127.0.0.1:${mqttsPort}`));
  assert.ok(!app.logs.some((l) => l.msg === 'embedded MQTT broker listening' && String(l['url']).startsWith('mqtt:')), 'no plain MQTT with tcp: false');

  const ca = readFileSync(pki.ca);
  const health = await httpsCall(`https://localhost:${apiPort}/api/v1/health`, ca);
  assert.equal(health.status, 200);
  // Not trusted without the CA: the certificate is really checked.
  await assert.rejects(httpsCall(`https://localhost:${apiPort}/api/v1/health`, undefined), /self[- ]signed|unable to (get|verify)/i);

  const posted = await httpsCall(`https://localhost:${ingestPort}/ingest`, ca, 'POST', '{"device":"tls-probe","temperature":20.5}');
  assert.equal(posted.status, 202, posted.body);

  const open = await mqtt.connectAsync(`mqtts://localhost:${mqttsPort}`, { ca, clientId: 'stays-open', reconnectPeriod: 0 });
  t.after(() => open.endAsync(true));
  let closed = false;
  open.on('close', () => (closed = true));

  const before = pki.fingerprint();
  assert.equal(await servedFingerprint(apiPort, ca), before);
  pki.renewServer();
  const after = pki.fingerprint();
  assert.notEqual(after, before);
  // watchMs 0: only the signal reloads. Before it, the old certificate is still served.
  assert.equal(await servedFingerprint(mqttsPort, ca), before);
  app.proc.kill('SIGHUP');
  const line = await app.waitFor((l) => l.msg === 'SIGHUP: certificates reloaded');
  assert.deepEqual(line['reloaded'], ['inputs.devices', 'api']);
  // The http input shares the certificate file but its key is the secret's, which the renewal did not change: the
  // pair does not match, so it is refused and the input keeps serving the certificate it had.
  assert.deepEqual(line['refused'], ['inputs.ingest']);
  assert.equal(await servedFingerprint(ingestPort, ca), before);
  assert.equal((await httpsCall(`https://localhost:${ingestPort}/ingest`, ca, 'POST', '{"device":"tls-probe","temperature":20.6}')).status, 202);
  assert.equal(await servedFingerprint(apiPort, ca), after);
  assert.equal(await servedFingerprint(mqttsPort, ca), after);
  await open.publishAsync('home/after/sighup', '{"device":"tls-open","v":1}', { qos: 1 });
  assert.equal(closed, false, 'the open MQTT connection stayed up');

  // A broken file on SIGHUP: refused with its code, the renewed certificate still served, nothing stops.
  writeFileSync(pki.cert, 'garbage\n');
  app.proc.kill('SIGHUP');
  await app.waitFor((l) => l.msg === 'TLS certificate reload failed' && l['code'] === 'BH_TLS_RELOAD' && l['path'] === 'api.tls.cert');
  await until(() => app.logs.filter((l) => l.msg === 'SIGHUP: certificates reloaded').length === 2, { what: 'the second SIGHUP handled' });
  assert.equal(await servedFingerprint(apiPort, ca), after);
  assert.equal((await httpsCall(`https://localhost:${apiPort}/api/v1/health`, ca)).status, 200);
  assert.equal(await app.stop(), 0);
});

test('backhaul check names a missing certificate file at its config path (API and input)', { skip }, async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  makePki(dir.path);
  const cfg = join(dir.path, 'backhaul.jsonc');
  writeFileSync(
    cfg,
    `{
      "api": { "port": 0, "tls": { "cert": "nope.pem", "key": "server-key.pem" } },
      "inputs": { "devices": { "type": "broker", "port": 0, "tls": { "cert": "server.pem", "key": "missing-key.pem" } } },
      "sinks": { "out": { "type": "console" } },
      "routes": [ { "to": ["out"] } ]
    }`,
  );
  const r = await runToEnd(['check', '-c', cfg]);
  assert.notEqual(r.code, 0);
  const out = r.stdout + r.stderr;
  assert.match(out, /BH_TLS_FILE api\.tls\.cert: cannot read the cert file .*nope\.pem: ENOENT/);
  assert.match(out, /BH_TLS_FILE inputs\.devices\.tls\.key: cannot read the key file .*missing-key\.pem: ENOENT/);
});
