// `backhaul certs …` as a person runs it: the real program in a child process; its files checked by OpenSSL (another
// implementation than the one that made them) and used by real node:tls servers and clients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, createServer, type ConnectionOptions, type TlsOptions, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { makeDeviceCert } from '../../src/core/pki.js';
import { tempDir } from '../helpers/context.js';
import { runToEnd } from '../helpers/process.js';
import { requireServices } from '../helpers/services.js';

/** OpenSSL's command line, or a skip message (CI, BACKHAUL_REQUIRE_SERVICES=1, requires it). */
function opensslSkip(): string | false {
  const r = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  if (r.status === 0) return false;
  if (requireServices) throw new Error('openssl is required (BACKHAUL_REQUIRE_SERVICES=1) but is not on PATH');
  return 'needs the openssl command (apt-get install -y openssl)';
}

function openssl(args: string[]): { code: number | null; out: string } {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

function mode(path: string): number {
  return statSync(path).mode & 0o777;
}

async function certs(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runToEnd(['certs', ...args]);
}

async function ok(args: string[]): Promise<string> {
  const r = await certs(args);
  assert.equal(r.code, 0, `backhaul certs ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** A TLS server on a free port; resolves with its port and the sockets it accepted (authorised or not). */
async function tlsServer(opts: TlsOptions): Promise<{ port: number; accepted: TLSSocket[]; close(): Promise<void> }> {
  const accepted: TLSSocket[] = [];
  const server = createServer(opts, (s) => {
    accepted.push(s);
    s.end('hello\n');
  });
  server.on('tlsClientError', () => undefined); // refused handshakes are what some tests expect
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    accepted,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * Connect as a client the server must refuse: resolves with how it ended. Under TLS 1.3 the client's handshake ends
 * before the server has checked the client's certificate, so a refusal may come as an alert (an error) or as a close.
 */
function refused(opts: ConnectionOptions): Promise<string> {
  return tlsClient(opts).then(
    (r) => {
      if (r.text !== '') throw new Error(`the server greeted a client it should refuse: ${JSON.stringify(r.text)}`);
      return 'closed';
    },
    (e: NodeJS.ErrnoException) => e.code ?? e.message,
  );
}

/** Connect, read the greeting; resolves with it, or rejects with the TLS error (code). */
function tlsClient(opts: ConnectionOptions): Promise<{ text: string; peer: X509Certificate | undefined }> {
  return new Promise((resolve, reject) => {
    const s = connect(opts);
    let text = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.once('error', reject);
    s.once('end', () => {
      const raw = s.getPeerX509Certificate();
      s.destroy();
      resolve({ text, peer: raw });
    });
  });
}

test('init, server, device: 0600 files in a 0700 folder of the config\'s data folder; OpenSSL verifies them and sees the names', async (t) => {
  const skip = opensslSkip();
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const cfg = join(dir.path, 'backhaul.jsonc');
  writeFileSync(cfg, '{ "data": "var", "sinks": {}, "routes": [] }');
  const folder = join(dir.path, 'var', 'certs');

  const init = await ok(['init', '-c', cfg, '--name', 'Test site CA']);
  assert.match(init, new RegExp(`CA: ${folder}/ca.pem\\n`));
  assert.match(init, /subject: CN=Test site CA/);
  assert.match(init, /expires \d{4}-\d\d-\d\dT[\d:]+Z \(in 3650 days\)/);
  const server = await ok(['server', '-c', cfg, '--host', 'mqtt.example.org', '--host', 'Backhaul.local', '--ip', '127.0.0.1', '--ip', '::1']);
  assert.match(server, /names: DNS:mqtt\.example\.org, DNS:backhaul\.local, IP:127\.0\.0\.1, IP:::1/);
  assert.match(server, /\(in 825 days\)/);
  const device = await ok(['device', 'AA-BB-CC-DD-EE-FF', '-c', cfg, '--days', '400']);
  assert.match(device, /device certificate for aa:bb:cc:dd:ee:ff \(mac\)/, 'the id is made canonical like the registry does');
  assert.match(device, /\(in 400 days\)/);
  assert.match(device, /-key\.pem \(mode 0600; copy it to that device only/);
  assert.match(init, /ca-key\.pem \(mode 0600; never copy it/);
  const printed = /fingerprint \(SHA-256\): ([0-9a-f]{64})\n/.exec(device)?.[1];
  assert.ok(printed, device);

  const files = ['ca.pem', 'ca-key.pem', 'server.pem', 'server-key.pem', 'devices/aa:bb:cc:dd:ee:ff.pem', 'devices/aa:bb:cc:dd:ee:ff-key.pem'];
  for (const f of files) assert.equal(mode(join(folder, f)), 0o600, `${f} is 0600`);
  assert.deepEqual(readdirSync(folder).sort(), ['ca-key.pem', 'ca.pem', 'devices', 'server-key.pem', 'server.pem'], 'no temporary files left');
  assert.equal(mode(folder), 0o700);
  assert.equal(mode(join(folder, 'devices')), 0o700);

  // Node's own X.509 parser agrees with what was printed.
  const devPem = readFileSync(join(folder, 'devices/aa:bb:cc:dd:ee:ff.pem'), 'utf8');
  const dev = new X509Certificate(devPem);
  assert.equal(dev.fingerprint256.replace(/:/g, '').toLowerCase(), printed);
  assert.equal(dev.subject, 'CN=aa:bb:cc:dd:ee:ff');
  assert.equal(dev.subjectAltName, 'URI:urn:backhaul:device:aa:bb:cc:dd:ee:ff');
  assert.ok(dev.checkIssued(new X509Certificate(readFileSync(join(folder, 'ca.pem')))));
  assert.ok(dev.checkPrivateKey((await import('node:crypto')).createPrivateKey(readFileSync(join(folder, 'devices/aa:bb:cc:dd:ee:ff-key.pem')))));

  if (skip) return t.skip(skip);
  const ca = join(folder, 'ca.pem');
  for (const f of ['server.pem', 'devices/aa:bb:cc:dd:ee:ff.pem']) {
    const v = openssl(['verify', '-CAfile', ca, join(folder, f)]);
    assert.equal(v.code, 0, v.out);
    assert.match(v.out, /: OK\n/);
  }
  const purpose = openssl(['verify', '-CAfile', ca, '-purpose', 'sslclient', join(folder, 'server.pem')]);
  assert.notEqual(purpose.code, 0, 'a server certificate is no client certificate (extKeyUsage serverAuth only)');
  assert.equal(openssl(['verify', '-CAfile', ca, '-purpose', 'sslclient', join(folder, 'devices/aa:bb:cc:dd:ee:ff.pem')]).code, 0);
  assert.equal(openssl(['verify', '-CAfile', ca, '-purpose', 'sslserver', join(folder, 'server.pem')]).code, 0);

  const text = openssl(['x509', '-in', join(folder, 'server.pem'), '-noout', '-text']);
  assert.equal(text.code, 0, text.out);
  assert.match(text.out, /X509v3 Subject Alternative Name: *\n\s*DNS:mqtt\.example\.org, DNS:backhaul\.local, IP Address:127\.0\.0\.1, IP Address:0:0:0:0:0:0:0:1\n/);
  assert.match(text.out, /X509v3 Extended Key Usage: *\n\s*TLS Web Server Authentication\n/);
  assert.match(text.out, /Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-256/);
  const caText = openssl(['x509', '-in', ca, '-noout', '-text']);
  assert.match(caText.out, /X509v3 Basic Constraints: critical\n\s*CA:TRUE/);
  assert.match(caText.out, /X509v3 Key Usage: critical\n\s*Certificate Sign, CRL Sign\n/);
  const devText = openssl(['x509', '-in', join(folder, 'devices/aa:bb:cc:dd:ee:ff.pem'), '-noout', '-text']);
  assert.match(devText.out, /URI:urn:backhaul:device:aa:bb:cc:dd:ee:ff/);
  assert.match(devText.out, /TLS Web Client Authentication/);
  const key = openssl(['pkey', '-in', join(folder, 'server-key.pem'), '-noout', '-text']);
  assert.equal(key.code, 0, key.out);
  assert.match(key.out, /NIST CURVE: P-256/);
});

test('a node:tls server with the server certificate: a client trusting ca.pem connects by name and address; another name fails', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const d = dir.path;
  await ok(['init', '--dir', d]);
  await ok(['server', '--dir', d, '--host', 'mqtt.example.org', '--ip', '127.0.0.1']);
  const srv = await tlsServer({ cert: readFileSync(join(d, 'server.pem')), key: readFileSync(join(d, 'server-key.pem')) });
  t.after(() => srv.close());
  const ca = readFileSync(join(d, 'ca.pem'));

  const byName = await tlsClient({ host: '127.0.0.1', port: srv.port, ca, servername: 'mqtt.example.org' });
  assert.equal(byName.text, 'hello\n');
  assert.equal(byName.peer?.subject, 'CN=mqtt.example.org');
  const byAddress = await tlsClient({ host: '127.0.0.1', port: srv.port, ca });
  assert.equal(byAddress.text, 'hello\n');

  await assert.rejects(tlsClient({ host: '127.0.0.1', port: srv.port, ca, servername: 'other.example.org' }), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  // Without ca.pem the site's CA is unknown: the certificate is refused.
  await assert.rejects(tlsClient({ host: '127.0.0.1', port: srv.port, servername: 'mqtt.example.org' }), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
});

test('a node:tls server asking for client certificates accepts the device\'s, and refuses none, another CA\'s, and a server certificate', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const d = join(dir.path, 'site');
  const other = join(dir.path, 'other');
  await ok(['init', '--dir', d]);
  await ok(['server', '--dir', d, '--ip', '127.0.0.1']);
  const made = await ok(['device', '0x70B3D57ED0001234', '--kind', 'deveui', '--dir', d]);
  const fingerprint = /fingerprint \(SHA-256\): ([0-9a-f]{64})/.exec(made)?.[1];
  await ok(['init', '--dir', other]);
  await ok(['device', '70b3d57ed0001234', '--kind', 'deveui', '--dir', other]);

  const srv = await tlsServer({
    cert: readFileSync(join(d, 'server.pem')),
    key: readFileSync(join(d, 'server-key.pem')),
    ca: readFileSync(join(d, 'ca.pem')),
    requestCert: true,
    rejectUnauthorized: true,
  });
  t.after(() => srv.close());
  const ca = readFileSync(join(d, 'ca.pem'));
  const as = (folder: string, base: string) => ({
    host: '127.0.0.1',
    port: srv.port,
    ca,
    cert: readFileSync(join(folder, `${base}.pem`)),
    key: readFileSync(join(folder, `${base}-key.pem`)),
  });

  const good = await tlsClient(as(d, 'devices/70b3d57ed0001234'));
  assert.equal(good.text, 'hello\n');
  const seen = srv.accepted.at(-1);
  assert.ok(seen?.authorized, 'the server verified the device certificate');
  const peer = seen.getPeerX509Certificate();
  assert.equal(peer?.subject, 'CN=70b3d57ed0001234');
  assert.equal(peer?.fingerprint256.replace(/:/g, '').toLowerCase(), fingerprint, 'the printed fingerprint is the one a server sees');

  const accepted = srv.accepted.length;
  await refused({ host: '127.0.0.1', port: srv.port, ca }); // no certificate
  await refused(as(other, 'devices/70b3d57ed0001234')); // another site's CA
  await refused(as(d, 'server')); // a serverAuth-only certificate is no client certificate
  assert.equal(srv.accepted.length, accepted, 'no refused client reached the server');
});

test('list: expiry and days left, flags expiring, expired, not signed by the current CA, unreadable; renewal replaces a file 0600', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const d = dir.path;
  const empty = await ok(['list', '--dir', d]);
  assert.match(empty, /no certificates in/);

  await ok(['init', '--dir', d]);
  await ok(['server', '--dir', d, '--host', 'mqtt.example.org']);
  await ok(['server', '--dir', d, '--name', 'short', '--ip', '10.1.2.3', '--days', '1']);
  await ok(['device', 'kitchen-valve', '--kind', 'other', '--dir', d]);
  // An expired one: pki's functions take the clock, so it is made two days in the past.
  const ca = { certPem: readFileSync(join(d, 'ca.pem'), 'utf8'), keyPem: readFileSync(join(d, 'ca-key.pem'), 'utf8') };
  const old = await makeDeviceCert({ ca, deviceId: 'old-valve', days: 1, now: Date.now() - 2 * 86_400_000 });
  writeFileSync(join(d, 'devices', 'old-valve.pem'), old.certPem);

  const table = await ok(['list', '--dir', d]);
  assert.equal(await ok(['list', '--data', join(d, '..', 'nothing-here')]), `no certificates in ${join(d, '..', 'nothing-here', 'certs')} (backhaul certs init makes the CA)\n`);
  assert.match(table, /^FILE\s+SUBJECT\s+NAMES\s+EXPIRES\s+DAYS LEFT\s+FLAGS\n/);
  assert.match(table, /\nca\.pem\s+CN=Backhaul site CA\s+-\s+\d{4}-\d\d-\d\dT[\d:]+Z\s+36(49|50)\s+-\n/);
  assert.match(table, /\nserver\.pem\s+CN=mqtt\.example\.org\s+DNS:mqtt\.example\.org\s+\S+\s+82[45]\s+-\n/);
  assert.match(table, /\nshort\.pem\s+CN=10\.1\.2\.3\s+IP:10\.1\.2\.3\s+\S+\s+[01]\s+expires-soon\n/);
  assert.match(table, /\ndevices\/kitchen-valve\.pem\s+CN=kitchen-valve\s+URI:urn:backhaul:device:kitchen-valve\s+\S+\s+82[45]\s+-\n/);
  assert.match(table, /\ndevices\/old-valve\.pem\s+CN=old-valve\s+\S+\s+\S+\s+-1\s+expired\n/);
  assert.ok(!/-key\.pem/.test(table), 'keys are not listed');
  assert.match(table, /5 certificates in .*, 2 flagged\n$/);

  const rows = JSON.parse(await ok(['list', '--dir', d, '--json'])) as Array<{ file: string; daysLeft: number; notAfter: string; flags: string[]; fingerprint256: string; isCA: boolean }>;
  assert.deepEqual(rows.map((r) => [r.file, r.flags]), [
    ['ca.pem', []],
    ['server.pem', []],
    ['short.pem', ['expires-soon']],
    ['devices/kitchen-valve.pem', []],
    ['devices/old-valve.pem', ['expired']],
  ]);
  assert.equal(rows[0]!.isCA, true);
  assert.equal(rows[1]!.fingerprint256, new X509Certificate(readFileSync(join(d, 'server.pem'))).fingerprint256.replace(/:/g, '').toLowerCase());

  // Renewal: run it again. A file someone opened up is replaced by a new 0600 one with a new certificate.
  chmodSync(join(d, 'server-key.pem'), 0o644);
  const before = rows[1]!.fingerprint256;
  const renewed = await ok(['server', '--dir', d, '--host', 'mqtt.example.org', '--json']);
  const r = JSON.parse(renewed) as { fingerprint256: string; daysLeft: number; file: string };
  assert.notEqual(r.fingerprint256, before);
  assert.equal(r.daysLeft, 825);
  assert.equal(mode(join(d, 'server-key.pem')), 0o600);

  // A new CA (--force): what the old one signed is flagged; a file that is no certificate is named, exit 1.
  const forced = await ok(['init', '--dir', d, '--force']);
  assert.match(forced, /replaced the CA: certificates the old one signed no longer verify/);
  writeFileSync(join(d, 'junk.pem'), 'not a certificate');
  const after = await certs(['list', '--dir', d, '--json']);
  assert.equal(after.code, 1);
  assert.match(after.stderr, /^BH_CERT_READ .*junk\.pem: not a PEM X\.509 certificate\n$/);
  const flagged = Object.fromEntries((JSON.parse(after.stdout) as Array<{ file: string; flags: string[] }>).map((x) => [x.file, x.flags]));
  assert.deepEqual(flagged['server.pem'], ['not-signed-by-ca']);
  assert.deepEqual(flagged['ca.pem'], []);
  assert.deepEqual(flagged['junk.pem'], ['unreadable']);
});

test('refusals: coded errors naming the option or file, exit 1 (2 for usage), and nothing written', async (t) => {
  const dir = tempDir();
  t.after(() => dir.cleanup());
  const d = join(dir.path, 'c');

  const noCa = await certs(['server', '--dir', d, '--ip', '127.0.0.1']);
  assert.equal(noCa.code, 1);
  assert.match(noCa.stderr, /^BH_CERT_NO_CA .*ca\.pem: no CA in .*: run `backhaul certs init` first\n$/);
  assert.equal(existsSync(d), false, 'a refused command makes no folder');
  const noCaDevice = await certs(['device', 'aa:bb:cc:dd:ee:ff', '--dir', d]);
  assert.match(noCaDevice.stderr, /^BH_CERT_NO_CA /);

  for (const [days, why] of [['0', /not a number of days from 1 to 36500/], ['abc', /not a whole number of days/], ['1.5', /not a whole number/], ['40000', /from 1 to 36500/]] as const) {
    const r = await certs(['init', '--dir', d, '--days', days]);
    assert.equal(r.code, 1, days);
    assert.match(r.stderr, new RegExp(`^BH_CERT_DAYS --days: .*${why.source}`));
  }
  assert.equal(existsSync(d), false);

  await ok(['init', '--dir', d]);
  const caBefore = readFileSync(join(d, 'ca.pem'), 'utf8');
  const again = await certs(['init', '--dir', d]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /^BH_CERT_CA_EXISTS .*ca\.pem: a CA exists already .* --force replaces it\n$/);
  assert.equal(readFileSync(join(d, 'ca.pem'), 'utf8'), caBefore, 'the CA is kept');

  const ip = await certs(['server', '--dir', d, '--ip', '300.1.2.3']);
  assert.equal(ip.code, 1);
  assert.match(ip.stderr, /^BH_CERT_IP --ip: "300\.1\.2\.3" is not an IPv4 or IPv6 address\n$/);
  const host = await certs(['server', '--dir', d, '--host', 'bad_host!']);
  assert.match(host.stderr, /^BH_CERT_HOST --host: "bad_host!" is not a DNS host name/);
  const hostIp = await certs(['server', '--dir', d, '--host', '10.0.0.1']);
  assert.match(hostIp.stderr, /an address goes in --ip/);
  const caName = await certs(['init', '--dir', d, '--force', '--name', ' ']);
  assert.match(caName.stderr, /^BH_CERT_NAME --name: " " is not a CA name/);
  assert.equal(readFileSync(join(d, 'ca.pem'), 'utf8'), caBefore, 'a refused --force keeps the CA');
  const name = await certs(['server', '--dir', d, '--name', 'ca', '--ip', '127.0.0.1']);
  assert.match(name.stderr, /^BH_CERT_NAME --name: /);
  assert.equal(existsSync(join(d, 'server.pem')), false, 'nothing written by a refused server command');

  const ambiguous = await certs(['device', '0d49', '--dir', d]);
  assert.equal(ambiguous.code, 1);
  assert.match(ambiguous.stderr, /^BH_DEVICE_ID --kind: cannot tell what kind of id "0d49" is/);
  const badMac = await certs(['device', 'aa:bb', '--kind', 'mac', '--dir', d]);
  assert.match(badMac.stderr, /^BH_DEVICE_ID ID: "aa:bb" is not a MAC address/);

  // A CA key that is not the CA's: refused before anything is signed with it.
  await ok(['device', 'aa:bb:cc:dd:ee:ff', '--dir', d]);
  writeFileSync(join(d, 'ca-key.pem'), readFileSync(join(d, 'devices', 'aa:bb:cc:dd:ee:ff-key.pem')));
  const mismatch = await certs(['server', '--dir', d, '--ip', '127.0.0.1']);
  assert.equal(mismatch.code, 1);
  assert.match(mismatch.stderr, /^BH_CERT_KEY ca: the CA key does not belong to the CA certificate\n$/);
  writeFileSync(join(d, 'ca-key.pem'), 'garbage');
  assert.match((await certs(['server', '--dir', d, '--ip', '127.0.0.1'])).stderr, /^BH_CERT_READ ca: the CA key is not a PKCS#8 PEM/);
  // A file that cannot be read (a folder in its place: unreadable even for root, unlike a 0000 file).
  rmSync(join(d, 'ca.pem'));
  mkdirSync(join(d, 'ca.pem'));
  const unreadable = await certs(['server', '--dir', d, '--ip', '127.0.0.1']);
  assert.equal(unreadable.code, 1);
  assert.match(unreadable.stderr, /^BH_CERT_READ \/.*\/ca\.pem: cannot read the file: EISDIR\n$/);

  const usage = await certs(['list']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /^BH_USAGE certs needs -c FILE/);
  const unknown = await certs(['renew', '--dir', d]);
  assert.equal(unknown.code, 2);
  const help = await runToEnd(['--help']);
  assert.match(help.stdout, /backhaul certs COMMAND/);
});
