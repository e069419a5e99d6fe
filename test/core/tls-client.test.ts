// The `tls` options through the real config loader (defaults filled from the schema, a key as a secret, cert and
// key only together), and what each of Node's TLS error codes is reported as. The handshakes themselves are tested
// against real servers in test/e2e/tls-client.test.ts, test/sinks/http-tls.test.ts and test/inputs/mqtt-tls.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigErrors } from '../../src/core/errors.js';
import { tlsFailure, type TlsClientConfig } from '../../src/core/tls-client.js';
import { buildConfig } from '../../src/runtime/config.js';
import { builtinRegistry } from '../../src/runtime/registry.js';

const PEM_KEY = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n';

function load(tls: unknown, env: NodeJS.ProcessEnv = {}, url = 'mqtts://broker.example:8883') {
  return buildConfig(
    {
      data: '/tmp/backhaul-tls-config-test',
      inputs: { sim: { type: 'simulator' } },
      sinks: { cloud: { type: url.startsWith('http') ? 'http' : 'mqtt', url, tls } },
      routes: [{ to: ['cloud'] }],
    },
    { source: 'test', dir: '/etc/backhaul' },
    { registry: builtinRegistry(), env },
  );
}

test('tls options: the loader fills insecure and minVersion from the schema; a key may be a secret holding the PEM text', () => {
  const c = load({ ca: 'ca.pem', cert: 'hub.pem', key: { secret: 'hub-key' } }, { BACKHAUL_SECRET_HUB_KEY: PEM_KEY });
  const o = c.sinks.find((s) => s.id === 'cloud')?.options as { tls: TlsClientConfig };
  assert.deepEqual(o.tls, { ca: 'ca.pem', cert: 'hub.pem', key: PEM_KEY, insecure: false, minVersion: 'TLSv1.2' });
  assert.ok(c.secretValues.includes(PEM_KEY), 'the key is scrubbed from logs like any secret');
});

test('tls options: cert without key, key without cert, unknown keys, a bad minVersion and a url without TLS are config errors naming the field', () => {
  const fails = (tls: unknown, path: RegExp, url?: string) =>
    assert.throws(
      () => load(tls, {}, url),
      (e: unknown) => {
        assert.ok(e instanceof ConfigErrors, String(e));
        assert.match(e.message, path);
        return true;
      },
    );
  fails({ cert: 'hub.pem' }, /sinks\.cloud\.tls\.key: a client certificate \(cert\) needs its key/);
  fails({ key: 'hub.key' }, /sinks\.cloud\.tls\.cert: a key needs its client certificate \(cert\)/);
  fails({ ca: 'ca.pem', rejectUnauthorized: false }, /sinks\.cloud\.tls\.rejectUnauthorized/);
  fails({ minVersion: 'TLSv1.1' }, /sinks\.cloud\.tls\.minVersion/);
  // tls on a url without TLS would be ignored (or, for mqtt.js with a cert, quietly made mqtts://).
  fails({ ca: 'ca.pem' }, /sinks\.cloud\.tls: the url is mqtt:\/\/, which has no TLS: use mqtts:\/\/ or leave tls out/, 'mqtt://broker.example');
  fails({ ca: 'ca.pem' }, /sinks\.cloud\.tls: the url is http:\/\/, which has no TLS: use https:\/\//, 'http://archive.example/in');
  assert.doesNotThrow(() => load({ ca: 'ca.pem' }, {}, 'https://archive.example/in'));
});

test('tlsFailure: Node\'s codes become reasons, through `cause`; other errors are not TLS failures', () => {
  const err = (code: string, message = code) => Object.assign(new Error(message), { code });
  const cases: Array<[string, string, string]> = [
    ['CERT_HAS_EXPIRED', 'BH_TLS_VERIFY', 'expired'],
    ['CERT_NOT_YET_VALID', 'BH_TLS_VERIFY', 'not yet valid'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'BH_TLS_VERIFY', 'wrong host'],
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'BH_TLS_VERIFY', 'unknown CA'],
    ['UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'BH_TLS_VERIFY', 'unknown CA'],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'BH_TLS_VERIFY', 'unknown CA'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'BH_TLS_VERIFY', 'unknown CA'],
    ['CERT_REVOKED', 'BH_TLS_VERIFY', 'revoked'],
    ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'BH_TLS_HANDSHAKE', 'client certificate refused'],
    ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'BH_TLS_HANDSHAKE', 'client certificate refused'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'BH_TLS_HANDSHAKE', 'handshake failed'],
  ];
  for (const [code, bh, reason] of cases) {
    assert.deepEqual(tlsFailure(err(code, `m ${code}`)), { code: bh, reason, detail: `m ${code}` }, code);
  }
  // fetch-style wrapping: the socket's error is the cause of the cause.
  const wrapped = new Error('fetch failed', { cause: new Error('outer', { cause: err('CERT_HAS_EXPIRED', 'certificate has expired') }) });
  assert.equal(tlsFailure(wrapped)?.reason, 'expired');
  assert.equal(tlsFailure(err('ECONNREFUSED')), undefined);
  assert.equal(tlsFailure(new Error('no code')), undefined);
  assert.equal(tlsFailure('a string'), undefined);
});
