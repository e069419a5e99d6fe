// src/core/pki.ts's pure functions: the checks of what a person types, and certificates read back by Node's own X.509
// parser (another implementation than the one that made them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { checkDays, checkHost, checkIp, describeCertificate, deviceUri, fingerprintOfDer, isIpAddress, isSignedBy, makeCa, makeDeviceCert, makeServerCert, normaliseFingerprint } from '../../src/core/pki.js';
import { BackhaulError } from '../../src/core/errors.js';

test('addresses, host names and days: what is refused carries its code and path', () => {
  for (const ip of ['127.0.0.1', '10.255.0.1', '::1', '2001:db8::42', '::ffff:192.0.2.1']) assert.ok(isIpAddress(ip), ip);
  for (const ip of ['300.1.1.1', '1.2.3', '01.2.3.4', '1.2.3.4.5', 'host', '::g', '[::1]', 'fe80::1%eth0', '']) assert.ok(!isIpAddress(ip), ip);
  assert.throws(() => checkIp('1.2.3', '--ip'), (e: BackhaulError) => e.code === 'BH_CERT_IP' && e.path === '--ip');
  assert.equal(checkHost('Concentrator.LAN.'), 'concentrator.lan');
  assert.equal(checkHost('*.site.example'), '*.site.example');
  for (const h of ['', 'a_b', '-x.example', 'x..example', '10.0.0.1', 'a'.repeat(64)]) {
    assert.throws(() => checkHost(h, 'host[0]'), (e: BackhaulError) => e.code === 'BH_CERT_HOST' && e.path === 'host[0]', h);
  }
  for (const d of [0, -1, 1.5, 36_501, Number.NaN]) assert.throws(() => checkDays(d), (e: BackhaulError) => e.code === 'BH_CERT_DAYS', String(d));
  assert.equal(checkDays(36_500), 36_500);
  assert.equal(deviceUri('aa:bb:cc:dd:ee:ff'), 'urn:backhaul:device:aa:bb:cc:dd:ee:ff');
  assert.equal(deviceUri('we/ird 100%'.replace(' ', '')), 'urn:backhaul:device:we%2Fird100%25');
});

test('a CA, a server and a device certificate at a given time: validity, names, chain and fingerprint as Node reads them', async () => {
  const now = Date.UTC(2030, 0, 1, 12, 0, 0, 500);
  const ca = await makeCa({ name: 'Site, "A"', days: 10, now });
  const server = await makeServerCert({ ca, dnsNames: ['mqtt.example.org'], ipAddresses: ['192.0.2.7', '2001:db8::7'], days: 5, now });
  const device = await makeDeviceCert({ ca, deviceId: '70b3d57ed0001234', days: 3, now });

  const caInfo = await describeCertificate(ca.certPem);
  assert.equal(caInfo.isCA, true);
  assert.equal(caInfo.commonName, 'Site, "A"', 'special characters in the name survive');
  assert.equal(caInfo.notBefore.getTime(), now - 500 - 3_600_000, 'an hour early, to the second');
  assert.equal(caInfo.notAfter.getTime(), now - 500 + 1000 + 10 * 86_400_000, 'N days later, rounded up to the second');

  const s = await describeCertificate(server.certPem);
  assert.deepEqual(s.sans, ['DNS:mqtt.example.org', 'IP:192.0.2.7', 'IP:2001:db8::7']);
  assert.equal(s.isCA, false);
  assert.equal(s.issuer, caInfo.subject);
  const node = new X509Certificate(server.certPem);
  assert.equal(node.subjectAltName, 'DNS:mqtt.example.org, IP Address:192.0.2.7, IP Address:2001:DB8:0:0:0:0:0:7');
  assert.equal(node.checkHost('mqtt.example.org'), 'mqtt.example.org');
  assert.equal(node.checkHost('other.example.org'), undefined);
  assert.equal(node.checkIP('192.0.2.7'), '192.0.2.7');
  assert.ok(node.checkIssued(new X509Certificate(ca.certPem)));
  assert.equal(node.fingerprint256.replace(/:/g, '').toLowerCase(), s.fingerprint256);
  assert.match(s.fingerprint256, /^[0-9a-f]{64}$/);
  assert.equal(fingerprintOfDer(node.raw), s.fingerprint256, 'the form a TLS server computes from the peer certificate');
  assert.equal(normaliseFingerprint(node.fingerprint256), s.fingerprint256, 'Node\'s and OpenSSL\'s AB:CD:… form');
  assert.equal(normaliseFingerprint(`sha256 Fingerprint=${node.fingerprint256}`), s.fingerprint256);
  assert.equal(normaliseFingerprint(s.fingerprint256.slice(2)), undefined);

  const dev = await describeCertificate(device.certPem);
  assert.equal(dev.commonName, '70b3d57ed0001234');
  assert.deepEqual(dev.sans, ['URI:urn:backhaul:device:70b3d57ed0001234']);
  assert.equal(await isSignedBy(device.certPem, ca.certPem), true);
  const otherCa = await makeCa({ name: 'other', days: 10, now });
  assert.equal(await isSignedBy(device.certPem, otherCa.certPem), false);

  // The CA's key must be the CA's: another one is refused before anything is signed.
  await assert.rejects(makeDeviceCert({ ca: { certPem: ca.certPem, keyPem: otherCa.keyPem }, deviceId: 'x', days: 1, now }), { code: 'BH_CERT_KEY' });
  await assert.rejects(makeDeviceCert({ ca: { certPem: server.certPem, keyPem: server.keyPem }, deviceId: 'x', days: 1, now }), { code: 'BH_CERT_READ' });
  await assert.rejects(describeCertificate('nothing'), { code: 'BH_CERT_READ' });
  await assert.rejects(makeServerCert({ ca, dnsNames: [], ipAddresses: [], days: 1, now }), { code: 'BH_CERT_HOST' });
});
