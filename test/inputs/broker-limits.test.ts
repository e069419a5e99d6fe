// The embedded broker against raw TCP sockets: packet size limits before and after login, connection caps, the
// connect timeout, the MQTT versions it speaks, MQTT-3.1.3-8 (the Paho 3.1.1 suite's test_zero_length_clientid),
// login rate limits per address, and QoS 2 exactly once.
import { createWithDefaults } from '../helpers/options.js';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { brokerInput } from '../../src/inputs/broker/index.js';
import type { InputContext, Principal } from '../../src/core/driver.js';
import type { Frame } from '../../src/core/types.js';
import { inputContext } from '../helpers/context.js';
import { until } from '../helpers/until.js';
import { connectPacket, publishPacket, pubrelPacket, RawClient, remainingLength, subscribePacket, TYPE } from '../helpers/mqtt-raw.js';

type BrokerOptions = Parameters<typeof brokerInput.create>[0];

const text = (p: Frame['payload']) => (typeof p === 'string' ? p : new TextDecoder().decode(p));

async function broker(t: TestContext, extra: Partial<BrokerOptions> = {}, ctx: InputContext & { frames: Frame[] } = inputContext({ id: 'devices' })) {
  const input = createWithDefaults(brokerInput, { host: '127.0.0.1', port: 0, topics: ['#'], exclude: ['backhaul/#'], anonymous: true, ...extra }, ctx);
  await input.start();
  t.after(() => input.stop());
  const url = String(input.info?.().url);
  const port = Number(new URL(url).port);
  const refused = (reason: string) => ctx.metrics.value('backhaul_broker_refused_total', { input: ctx.id, reason });
  const raw = async (localAddress?: string) => {
    const c = await RawClient.open(port, localAddress ? { localAddress } : {});
    t.after(() => c.end());
    return c;
  };
  return { input, url, port, ctx, refused, raw };
}

/** A normal mqtt.js client logs in and has a QoS 1 publish acknowledged and ingested. */
async function servesNormalClient(url: string, ctx: { frames: Frame[] }): Promise<void> {
  const before = ctx.frames.length;
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  await c.publishAsync('home/ok', 'still here', { qos: 1 });
  await c.endAsync();
  assert.equal(ctx.frames.length, before + 1);
}

test('broker: a CONNECT claiming 268 MB closes the socket as soon as its header arrives; the broker serves the next client', async (t) => {
  const { url, refused, raw, ctx } = await broker(t, { connectTimeoutMs: 600_000 });
  const attackers = await Promise.all([raw(), raw(), raw(), raw()]);
  for (const a of attackers) {
    a.write(Buffer.from([0x10, 0xff, 0xff, 0xff, 0x7f]));
    a.write(Buffer.alloc(64 * 1024, 0x41)); // "followed by data"
  }
  for (const a of attackers) assert.equal(await a.closesWithin(), true, 'the socket is closed (the connect timeout is 10 minutes here)');
  assert.equal(await refused('connect_too_large'), 4);
  await servesNormalClient(url, ctx);
});

test('broker: a CONNECT bigger than maxConnectBytes, or a remaining length of 5 bytes, is refused before login', async (t) => {
  const { url, refused, raw, ctx } = await broker(t, { connectTimeoutMs: 600_000, maxConnectBytes: 512 });
  const big = await raw();
  big.write(connectPacket({ clientId: 'x'.repeat(600) }));
  assert.equal(await big.closesWithin(), true);
  assert.deepEqual([...big.received], [], 'no CONNACK: the packet was never parsed');
  const odd = await raw();
  odd.write(Buffer.from([0x10, 0x80, 0x80, 0x80, 0x80, 0x01]));
  assert.equal(await odd.closesWithin(), true);
  assert.equal(await refused('connect_too_large'), 1);
  assert.equal(await refused('malformed_length'), 1);
  // Just under the limit logs in.
  const fits = await raw();
  assert.equal(await fits.login({ clientId: 'y'.repeat(400) }), 0);
  await servesNormalClient(url, ctx);
});

test('broker: after login a packet over maxPacketBytes closes that client only; one at the limit is taken', async (t) => {
  const { refused, raw, ctx } = await broker(t, { maxPacketBytes: 2048 });
  const c = await raw();
  assert.equal(await c.login({ clientId: 'big-sender' }), 0);
  const other = await raw();
  assert.equal(await other.login({ clientId: 'bystander' }), 0);
  // Exactly 2048 bytes in all: 1 type byte + 2 length bytes + 2045 of topic, packet id and payload.
  const topic = 'meters/1';
  const payload = Buffer.alloc(2045 - 2 - topic.length - 2, 0x31);
  const atLimit = publishPacket({ topic, payload, qos: 1, messageId: 1 });
  assert.equal(atLimit.length, 2048);
  c.write(atLimit);
  await c.next(TYPE.PUBACK);
  assert.equal(ctx.frames.length, 1);
  // A header claiming 64 MiB (and a little of it): closed, nothing ingested.
  c.write(Buffer.from([0x32, ...remainingLength(64 * 1024 * 1024)]));
  c.write(Buffer.alloc(4096, 0x32));
  assert.equal(await c.closesWithin(), true);
  assert.equal(await refused('packet_too_large'), 1);
  assert.equal(ctx.frames.length, 1);
  assert.equal(other.open, true);
  other.write(publishPacket({ topic: 'meters/2', payload: 'ok', qos: 1, messageId: 2 }));
  await other.next(TYPE.PUBACK);
  assert.equal(ctx.frames.length, 2);
});

test('broker: connections over maxConnectionsPerAddress or maxConnections are closed at once and counted', async (t) => {
  const { refused, raw } = await broker(t, { maxConnectionsPerAddress: 2, maxConnections: 3 });
  const a1 = await raw('127.0.0.1');
  const a2 = await raw('127.0.0.1');
  assert.equal(await a1.login({ clientId: 'a1' }), 0);
  assert.equal(await a2.login({ clientId: 'a2' }), 0);
  const a3 = await raw('127.0.0.1');
  assert.equal(await a3.closesWithin(), true, 'a third connection from the same address is closed');
  assert.deepEqual([...a3.received], []);
  assert.equal(await refused('max_connections_per_address'), 1);

  const b1 = await raw('127.0.0.2');
  assert.equal(await b1.login({ clientId: 'b1' }), 0, 'another address still gets in');
  const c1 = await raw('127.0.0.3');
  assert.equal(await c1.closesWithin(), true, 'the fourth connection in all is closed');
  assert.equal(await refused('max_connections'), 1);

  // A closed connection frees its place.
  a1.end();
  await until(async () => {
    const again = await raw('127.0.0.1');
    const ok = await again.login({ clientId: 'a1-again' }).then(
      (rc) => rc === 0,
      () => false,
    );
    again.end();
    return ok;
  }, { what: 'a place from 127.0.0.1 again' });
});

test('broker: a client that never completes CONNECT is closed after connectTimeoutMs; one that logged in stays', async (t) => {
  const { refused, raw } = await broker(t, { connectTimeoutMs: 200 });
  const loggedIn = await raw();
  assert.equal(await loggedIn.login({ clientId: 'prompt' }), 0);
  const silent = await raw();
  const slow = await raw();
  slow.write(connectPacket({ clientId: 'slowloris' }).subarray(0, 6)); // half a CONNECT, and nothing more
  assert.equal(await silent.closesWithin(), true);
  assert.equal(await slow.closesWithin(), true);
  assert.equal(await refused('connect_timeout'), 2);
  // The logged-in client is past the timer: it still answers.
  loggedIn.write(publishPacket({ topic: 'a/b', payload: '1', qos: 1, messageId: 5 }));
  await loggedIn.next(TYPE.PUBACK);
  assert.equal(loggedIn.open, true);
});

test('broker: MQTT 3.1.1 and 3.1 are spoken; an MQTT 5 CONNECT gets CONNACK 1 (unacceptable protocol version) and is closed', async (t) => {
  const { raw } = await broker(t);
  const v4 = await raw();
  assert.equal(await v4.login({ clientId: 'v311' }), 0);
  const v3 = await raw();
  assert.equal(await v3.login({ clientId: 'v31', protocolVersion: 3 }), 0);
  const v5 = await raw();
  v5.write(connectPacket({ clientId: 'v5', protocolVersion: 5 }));
  assert.equal(await v5.closesWithin(), true);
  // The 3.1.1 form of CONNACK (MQTT-3.1.2-2): type 2, length 2, no session, return code 1.
  assert.deepEqual([...v5.received], [0x20, 0x02, 0x00, 0x01]);
});

test('broker: MQTT-3.1.3-8 (Paho test_zero_length_clientid): an empty client id with clean session 0 gets CONNACK 2; with clean session 1 it is accepted', async (t) => {
  const { raw, refused } = await broker(t);
  const persistent = await raw();
  persistent.write(connectPacket({ clientId: '', clean: false }));
  assert.equal(await persistent.closesWithin(), true);
  assert.deepEqual([...persistent.received], [0x20, 0x02, 0x00, 0x02]);
  assert.equal(await refused('client_id_empty'), 1);
  const clean = await raw();
  assert.equal(await clean.login({ clientId: '', clean: true }), 0);
});

test('broker: failed logins back off their own address only; another address logs in as the same device', async (t) => {
  const base = inputContext({ id: 'devices' });
  const ctx = {
    ...base,
    authenticate: (u: string, p: string): Promise<Principal | undefined> =>
      Promise.resolve(u === 'dev-b' && p === 'b-password' ? { username: u, device: 'dev-b', mayPublish: () => true, maySubscribe: () => true } : undefined),
  };
  const { raw, refused } = await broker(t, { anonymous: false, loginLimit: { failuresBeforeBackoff: 3, backoffMs: 60_000, burst: 100, perSecond: 100 } }, ctx);
  const codes: number[] = [];
  for (let i = 0; i < 5; i++) {
    const attacker = await raw('127.0.0.2');
    codes.push(await attacker.login({ clientId: `guess-${i}`, username: 'dev-b', password: `guess-${i}` }));
  }
  // Three wrong passwords (CONNACK 4), then the address is backed off (CONNACK 3, server unavailable).
  assert.deepEqual(codes, [4, 4, 4, 3, 3]);
  const stillOff = await raw('127.0.0.2');
  assert.equal(await stillOff.login({ clientId: 'guess-right', username: 'dev-b', password: 'b-password' }), 3, 'even the right password, from the backed-off address');
  const realB = await raw('127.0.0.1');
  assert.equal(await realB.login({ clientId: 'dev-b', username: 'dev-b', password: 'b-password' }), 0, 'the real device, from its own address');
  assert.equal(await refused('bad_login'), 3);
  assert.equal(await refused('login_backoff'), 3);
});

test('broker: logins are rate limited per address (token bucket), service accounts too', async (t) => {
  const { raw, refused } = await broker(t, {
    anonymous: false,
    users: [{ username: 'svc', password: 'svc-password' }],
    loginLimit: { burst: 2, perSecond: 0.001, failuresBeforeBackoff: 100, backoffMs: 1000, maxBackoffMs: 1000 },
  });
  const codes: number[] = [];
  for (let i = 0; i < 3; i++) {
    const c = await raw('127.0.0.4');
    codes.push(await c.login({ clientId: `svc-${i}`, username: 'svc', password: 'svc-password' }));
  }
  assert.deepEqual(codes, [0, 0, 3]);
  assert.equal(await refused('login_rate'), 1);
  const elsewhere = await raw('127.0.0.5');
  assert.equal(await elsewhere.login({ clientId: 'svc-x', username: 'svc', password: 'svc-password' }), 0);
});

test('broker: QoS 2 is exactly once: the same PUBLISH three times (DUP) before PUBREL is ingested and delivered once', async (t) => {
  const { raw, ctx, url } = await broker(t);
  const sub = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  t.after(() => sub.endAsync(true));
  const delivered: string[] = [];
  sub.on('message', (_t, p) => delivered.push(p.toString()));
  await sub.subscribeAsync('q2/#', { qos: 2 });

  const c = await raw();
  assert.equal(await c.login({ clientId: 'q2-sender' }), 0);
  // All three copies in one write, so aedes reads them in one chunk.
  const first = publishPacket({ topic: 'q2/a', payload: 'once', qos: 2, messageId: 7 });
  const dup = publishPacket({ topic: 'q2/a', payload: 'once', qos: 2, messageId: 7, dup: true });
  c.write(Buffer.concat([first, dup, dup]));
  for (let i = 0; i < 3; i++) await c.next(TYPE.PUBREC);
  // And once more after the PUBRECs, still before PUBREL.
  c.write(dup);
  await c.next(TYPE.PUBREC);
  c.write(pubrelPacket(7));
  await c.next(TYPE.PUBCOMP);
  assert.deepEqual(ctx.frames.map((f) => text(f.payload)), ['once']);

  // After PUBREL the packet id may carry a new message.
  c.write(publishPacket({ topic: 'q2/a', payload: 'next', qos: 2, messageId: 7 }));
  await c.next(TYPE.PUBREC);
  c.write(pubrelPacket(7));
  await c.next(TYPE.PUBCOMP);
  assert.deepEqual(ctx.frames.map((f) => text(f.payload)), ['once', 'next']);
  await until(() => delivered.length >= 2, { what: 'deliveries' });
  // A subscriber at QoS 2 got each message once too.
  const probe = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  await probe.publishAsync('q2/end', 'end', { qos: 1 });
  await probe.endAsync();
  await until(() => delivered.includes('end'), { what: 'the end marker' });
  assert.deepEqual(delivered, ['once', 'next', 'end']);
});

test('broker: QoS 2 across a reconnect (clean session 0): the resent PUBLISH is not ingested again', async (t) => {
  const { raw, ctx } = await broker(t);
  const c = await raw();
  assert.equal(await c.login({ clientId: 'q2-persistent', clean: false }), 0);
  c.write(publishPacket({ topic: 'q2/b', payload: 'kept', qos: 2, messageId: 9 }));
  await c.next(TYPE.PUBREC);
  c.end(); // the PUBREC "was lost": the client will resend the PUBLISH
  await c.closed;
  const again = await raw();
  assert.equal(await again.login({ clientId: 'q2-persistent', clean: false }), 0);
  again.write(publishPacket({ topic: 'q2/b', payload: 'kept', qos: 2, messageId: 9, dup: true }));
  await again.next(TYPE.PUBREC);
  again.write(pubrelPacket(9));
  await again.next(TYPE.PUBCOMP);
  assert.equal(ctx.frames.length, 1);
});

test('broker: a QoS 2 publish the data path failed to take is not acknowledged, and its resend is ingested once', async (t) => {
  const base = inputContext({ id: 'flaky' });
  let calls = 0;
  const ctx = {
    ...base,
    emit: (f: Frame) => {
      calls++;
      if (calls === 1) return Promise.reject(new Error('outbox unavailable'));
      base.frames.push(f);
      return Promise.resolve();
    },
  };
  const { raw } = await broker(t, {}, ctx);
  const c = await raw();
  assert.equal(await c.login({ clientId: 'q2-flaky', clean: false }), 0);
  c.write(publishPacket({ topic: 'q2/c', payload: 'retry me', qos: 2, messageId: 3 }));
  assert.equal(await c.closesWithin(), true, 'dropped without PUBREC');
  assert.equal(c.packets.filter((p) => p.type === TYPE.PUBREC).length, 0);
  const again = await raw();
  assert.equal(await again.login({ clientId: 'q2-flaky', clean: false }), 0);
  again.write(publishPacket({ topic: 'q2/c', payload: 'retry me', qos: 2, messageId: 3, dup: true }));
  await again.next(TYPE.PUBREC);
  again.write(publishPacket({ topic: 'q2/c', payload: 'retry me', qos: 2, messageId: 3, dup: true }));
  await again.next(TYPE.PUBREC);
  again.write(pubrelPacket(3));
  await again.next(TYPE.PUBCOMP);
  assert.deepEqual(base.frames.map((f) => text(f.payload)), ['retry me']);
});

test('broker: a QoS 2 subscription is granted QoS 2', async (t) => {
  const { raw } = await broker(t);
  const c = await raw();
  assert.equal(await c.login({ clientId: 'sub2' }), 0);
  c.write(subscribePacket(1, 'x/#', 2));
  const ack = await c.next(TYPE.SUBACK);
  assert.deepEqual([...ack.body], [0, 1, 2]);
});

test('broker: packets are parsed as sent however the bytes come: with the CONNECT in one write, and one byte at a time after it (3.1.1 and 3.1)', async (t) => {
  const { raw, ctx } = await broker(t);
  for (const protocolVersion of [4, 3] as const) {
    const c = await raw();
    c.socket.setNoDelay(true);
    // A CONNECT and a QoS 1 PUBLISH in one write, before the CONNACK.
    c.write(Buffer.concat([connectPacket({ clientId: `split-${protocolVersion}`, protocolVersion }), publishPacket({ topic: `v${protocolVersion}/first`, payload: 'a', qos: 1, messageId: 1 })]));
    assert.equal((await c.next(TYPE.CONNACK)).body[1], 0);
    await c.next(TYPE.PUBACK);
    // Then two publishes, byte by byte.
    const bytes = Buffer.concat([
      publishPacket({ topic: `v${protocolVersion}/second`, payload: 'b'.repeat(300), qos: 1, messageId: 2 }),
      publishPacket({ topic: `v${protocolVersion}/third`, payload: 'c', qos: 0 }),
    ]);
    for (const b of bytes) {
      c.write(Buffer.from([b]));
      await new Promise((r) => setImmediate(r));
    }
    await c.next(TYPE.PUBACK);
    await until(() => ctx.frames.some((f) => f.topic === `v${protocolVersion}/third`), { what: 'the last publish' });
    assert.equal(c.open, true);
  }
  assert.deepEqual(
    ctx.frames.map((f) => [f.topic, text(f.payload).length]),
    [['v4/first', 1], ['v4/second', 300], ['v4/third', 1], ['v3/first', 1], ['v3/second', 300], ['v3/third', 1]],
  );
});
