import { test } from 'node:test';
import { createWithDefaults } from '../helpers/options.js';
import assert from 'node:assert/strict';
import mqtt from 'mqtt';
import { brokerInput } from '../../src/inputs/broker/index.js';
import { filterWithin } from '../../src/inputs/broker/authorize.js';
import type { Principal } from '../../src/core/driver.js';
import { topicMatches, topicFilterError } from '../../src/core/topic.js';
import { BackhaulError } from '../../src/core/errors.js';
import type { Frame } from '../../src/core/types.js';
import { inputContext } from '../helpers/context.js';
import { tryPublish } from '../helpers/mqtt-client.js';
import { until } from '../helpers/until.js';

/** A login allowed everywhere (the registry's ACL is tested through the hub, in test/devices/access.test.ts). */
const anywhere = (username: string): Principal => ({ username, mayPublish: () => true, maySubscribe: () => true });

const text = (p: Frame['payload']) => (typeof p === 'string' ? p : new TextDecoder().decode(p));

test('topicMatches: MQTT wildcard semantics', () => {
  const yes: Array<[string, string]> = [
    ['#', 'a'],
    ['#', 'a/b/c'],
    ['a/#', 'a'],
    ['a/#', 'a/b/c'],
    ['a/+', 'a/b'],
    ['a/+', 'a/'],
    ['+/+', '/x'],
    ['+/b/#', 'a/b'],
    ['a/b', 'a/b'],
    ['$SYS/#', '$SYS/broker/uptime'],
    ['$SYS/+/uptime', '$SYS/broker/uptime'],
  ];
  const no: Array<[string, string]> = [
    ['a/+', 'a/b/c'],
    ['a/+', 'a'],
    ['a/b', 'a/b/c'],
    ['a/b/c', 'a/b'],
    ['#', '$SYS/broker'],
    ['+/broker', '$SYS/broker'],
    ['backhaul/#', 'backhaulx/y'],
    ['a/#/b', 'a/x/b'],
  ];
  for (const [f, t] of yes) assert.equal(topicMatches(f, t), true, `${f} should match ${t}`);
  for (const [f, t] of no) assert.equal(topicMatches(f, t), false, `${f} should not match ${t}`);
  assert.equal(topicFilterError('a/#'), null);
  assert.match(topicFilterError('a/#/b') ?? '', /last/);
  assert.match(topicFilterError('a/b+') ?? '', /whole level/);
});

test('broker: QoS 0 and 1 publishes become frames; PUBACK only after emit resolved; exclusions; delivery', async (t) => {
  const events: string[] = [];
  const base = inputContext({ id: 'devices' });
  // The QoS 1 frame's emit waits until the test lets it go.
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const ctx = {
    ...base,
    emit: async (f: Frame) => {
      events.push(`emit-start ${f.topic}`);
      if (f.topic === 'home/kitchen/hum') await held;
      base.frames.push(f);
      events.push(`emit-done ${f.topic}`);
    },
    // The registry's answer, here: alice with her password.
    authenticate: (u: string, p: string) => Promise.resolve(u === 'alice' && p === 'pw-not-logged' ? anywhere(u) : undefined),
  };
  const input = createWithDefaults(brokerInput, { host: '127.0.0.1', port: 0, topics: ['#'], exclude: ['backhaul/#'], anonymous: true }, ctx);
  await input.start();
  t.after(() => input.stop());
  const url = String(input.info?.().url);
  assert.match(url, /^mqtt:\/\/127\.0\.0\.1:\d+$/);
  assert.notEqual(url, 'mqtt://127.0.0.1:0');

  const sub = await mqtt.connectAsync(url, { clientId: 'watcher', reconnectPeriod: 0 });
  t.after(() => sub.endAsync(true));
  const seen: string[] = [];
  sub.on('message', (topic) => seen.push(topic));
  await sub.subscribeAsync('#', { qos: 1 });

  const pub = await mqtt.connectAsync(url, { clientId: 'valve-1', username: 'alice', password: 'pw-not-logged', reconnectPeriod: 0 });
  t.after(() => pub.endAsync(true));

  await pub.publishAsync('home/kitchen/temp', 'q0', { qos: 0 });
  const hum = pub.publishAsync('home/kitchen/hum', Buffer.from([1, 2, 255]), { qos: 1 }).then(() => events.push('puback home/kitchen/hum'));
  await until(() => events.includes('emit-start home/kitchen/hum'), { what: 'the QoS 1 publish handed to emit' });
  // Positive control: another client's publish is acknowledged meanwhile; the held one is not.
  await sub.publishAsync('backhaul/control', 'ping', { qos: 1 });
  assert.ok(!events.includes('puback home/kitchen/hum'), `no PUBACK while its emit waits: ${events.join(', ')}`);
  release();
  await hum;
  await pub.publishAsync('backhaul/out/x', 'mine', { qos: 1 });
  // QoS 0 has no ack: wait for its frame
  await until(() => base.frames.length >= 2, { what: 'both frames' });

  assert.deepEqual(
    base.frames.map((f) => f.topic),
    ['home/kitchen/temp', 'home/kitchen/hum'],
  );
  const [f0, f1] = base.frames as [Frame, Frame];
  assert.equal(f0.input, 'devices');
  assert.equal(text(f0.payload), 'q0');
  assert.ok(f1.payload instanceof Uint8Array);
  assert.deepEqual([...f1.payload], [1, 2, 255]);
  assert.deepEqual(f1.identity?.username, 'alice');
  assert.deepEqual(f1.identity?.clientId, 'valve-1');
  assert.match(f1.identity?.remoteAddress ?? '', /127\.0\.0\.1/);
  assert.equal(typeof f1.receivedAt, 'number');

  const done = events.indexOf('emit-done home/kitchen/hum');
  const acked = events.indexOf('puback home/kitchen/hum');
  assert.ok(done >= 0 && acked > done, `PUBACK after emit resolved: ${events.join(', ')}`);
  assert.ok(!events.some((e) => e.includes('backhaul/')), 'excluded topic not ingested');

  await until(() => seen.length >= 4, { what: 'four messages at the watcher' });
  assert.deepEqual(seen.sort(), ['backhaul/control', 'backhaul/out/x', 'home/kitchen/hum', 'home/kitchen/temp']);
});

test('broker: topics option limits what is ingested', async (t) => {
  const ctx = inputContext({ id: 'b2' });
  const input = createWithDefaults(brokerInput, { host: '127.0.0.1', port: 0, topics: ['dev/+/up'], exclude: ['backhaul/#'], anonymous: true }, ctx);
  await input.start();
  t.after(() => input.stop());
  const pub = await mqtt.connectAsync(String(input.info?.().url), { reconnectPeriod: 0 });
  t.after(() => pub.endAsync(true));
  await pub.publishAsync('dev/a/up', 'x', { qos: 1 });
  await pub.publishAsync('dev/a/down', 'y', { qos: 1 });
  await pub.publishAsync('other', 'z', { qos: 1 });
  assert.deepEqual(
    ctx.frames.map((f) => f.topic),
    ['dev/a/up'],
  );
  assert.equal(ctx.frames[0]?.identity?.username, undefined);
});

test('broker: a second broker on the same port fails with BH_PORT_IN_USE and the path', async (t) => {
  const first = createWithDefaults(brokerInput, { host: '127.0.0.1', port: 0, topics: ['#'], exclude: [], anonymous: true }, inputContext({ id: 'one' }));
  await first.start();
  t.after(() => first.stop());
  const port = Number(new URL(String(first.info?.().url)).port);
  const second = createWithDefaults(brokerInput, { host: '127.0.0.1', port, topics: ['#'], exclude: [] }, inputContext({ id: 'two' }));
  await assert.rejects(second.start(), (err: unknown) => {
    assert.ok(err instanceof BackhaulError);
    assert.equal(err.code, 'BH_PORT_IN_USE');
    assert.equal(err.path, 'inputs.two.port');
    assert.match(err.message, new RegExp(`port ${port} on 127\\.0\\.0\\.1 is already in use`));
    return true;
  });
  await second.stop();
});

test('broker: stop closes clients and the port; no frames after stop', async () => {
  const base = inputContext({ id: 's' });
  // The frame 'held' stays in flight until the test lets it go, so the stop can be watched while under way.
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let holding = false;
  const ctx = {
    ...base,
    emit: async (f: Frame) => {
      if (text(f.payload) === 'held') {
        holding = true;
        await held;
      }
      base.frames.push(f);
    },
  };
  const input = createWithDefaults(brokerInput, { host: '127.0.0.1', port: 0, topics: ['#'], exclude: [], anonymous: true }, ctx);
  await input.start();
  const url = String(input.info?.().url);
  const c = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  const late = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  // Positive control: before stop, a publish is a frame.
  assert.equal(await tryPublish(c, 'meters/1', 'before'), true);
  assert.deepEqual(base.frames.map((f) => text(f.payload)), ['before']);
  const inFlight = tryPublish(c, 'meters/1', 'held');
  await until(() => holding, { what: 'the held publish in flight' });
  const closed = new Promise<void>((r) => c.once('close', () => r()));
  const stopping = input.stop();
  // While the stop waits for the frame in flight, a publish from another client is refused (its connection closed,
  // no PUBACK), and never becomes a frame.
  assert.equal(await tryPublish(late, 'meters/2', 'during stop'), false, 'a publish during stop is refused');
  release();
  await stopping;
  await closed;
  assert.equal(await inFlight, true, 'the publish that was in flight is acknowledged');
  // After stop: no connection is taken, and the port is free again.
  await assert.rejects(mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 2000 }));
  await c.endAsync(true);
  await late.endAsync(true);
  const again = createWithDefaults(brokerInput, { host: '127.0.0.1', port: Number(new URL(url).port), topics: ['#'], exclude: [] }, inputContext());
  await again.start();
  await again.stop();
  assert.deepEqual(base.frames.map((f) => text(f.payload)), ['before', 'held'], 'no frame after stop');
});

test('broker: when the data path fails, a QoS 1 publish is not acknowledged; the device resends it', async (t) => {
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
  const input = createWithDefaults(brokerInput, { host: '127.0.0.1', port: 0, topics: ['#'], exclude: [], anonymous: true }, ctx);
  await input.start();
  t.after(() => input.stop());
  const pub = await mqtt.connectAsync(String(input.info?.().url), { clientId: 'resender', reconnectPeriod: 100 });
  t.after(() => pub.endAsync(true));
  let closes = 0;
  pub.on('close', () => closes++);
  pub.on('error', () => undefined);
  await pub.publishAsync('meters/1', 'kWh 42', { qos: 1 }); // resolves only on the PUBACK after the resend
  assert.equal(calls, 2);
  assert.ok(closes >= 1, 'the client was disconnected');
  assert.deepEqual(
    base.frames.map((f) => text(f.payload)),
    ['kWh 42'],
  );
  assert.equal(await base.metrics.value('backhaul_input_errors_total', { input: 'flaky' }), 1);
});

test('broker: a client giving a username must have the right password (checked by the hub), else CONNACK 4', async (t) => {
  const base = inputContext({ id: 'devices' });
  const ctx = { ...base, authenticate: (u: string, p: string) => Promise.resolve(u === 'valve-7' && p === 'right-password' ? anywhere(u) : undefined) };
  const input = createWithDefaults(brokerInput, { host: '127.0.0.1', port: 0, topics: ['#'], exclude: ['backhaul/#'], anonymous: true }, ctx);
  await input.start();
  t.after(() => input.stop());
  const url = String(input.info?.().url);
  await assert.rejects(
    mqtt.connectAsync(url, { username: 'valve-7', password: 'wrong', reconnectPeriod: 0 }),
    /Bad username or password|bad user/i,
  );
  const ok = await mqtt.connectAsync(url, { username: 'valve-7', password: 'right-password', reconnectPeriod: 0 });
  await ok.publishAsync('x/y', '{}', { qos: 1 });
  await ok.endAsync();
  assert.equal(base.frames[0]?.identity?.username, 'valve-7');
  assert.ok((await base.metrics.value('backhaul_input_errors_total', { input: 'devices' })) >= 1, 'the refusal is counted');
});

test('filterWithin: a subscription is granted only inside an allowed filter', () => {
  const yes: Array<[string, string]> = [
    ['a/b', 'a/b'],
    ['a/b', 'a/+'],
    ['a/+', 'a/+'],
    ['a/+', 'a/#'],
    ['a/b/c', 'a/#'],
    ['a', 'a/#'],
    ['a/#', 'a/#'],
    ['#', '#'],
    ['x/+/y', '#'],
  ];
  const no: Array<[string, string]> = [
    ['a/#', 'a/+'],
    ['a/+', 'a/b'],
    ['#', 'a/#'],
    ['a/b/c', 'a/+'],
    ['b/c', 'a/#'],
    ['$SYS/#', '#'],
    ['$SYS/x', '+/x'],
  ];
  for (const [f, a] of yes) assert.ok(filterWithin(f, a), `${f} within ${a}`);
  for (const [f, a] of no) assert.ok(!filterWithin(f, a), `${f} not within ${a}`);
});

test('broker: anonymous clients are refused by default; service users log in with their password and stay inside their filters', async (t) => {
  const base = inputContext({ id: 'devices' });
  const input = createWithDefaults(brokerInput, 
    {
      host: '127.0.0.1',
      port: 0,
      topics: ['#'],
      exclude: ['backhaul/#'],
      users: [
        { username: 'backhaul-sink', password: 'sink-secret', publish: ['backhaul/#'], subscribe: [] },
        { username: 'dashboard', password: 'dash-secret', publish: [], subscribe: ['backhaul/#'] },
      ],
    },
    base,
  );
  await input.start();
  t.after(() => input.stop());
  const url = String(input.info?.().url);
  await assert.rejects(mqtt.connectAsync(url, { reconnectPeriod: 0 }), /Not authorized|Bad username/i);
  await assert.rejects(mqtt.connectAsync(url, { username: 'backhaul-sink', password: 'nope', reconnectPeriod: 0 }), /Bad username or password/i);

  const dash = await mqtt.connectAsync(url, { username: 'dashboard', password: 'dash-secret', reconnectPeriod: 0 });
  t.after(() => dash.endAsync(true));
  const granted = await dash.subscribeAsync('backhaul/#', { qos: 1 });
  assert.deepEqual(granted.map((g) => [g.topic, g.qos]), [['backhaul/#', 1]]);
  // SUBACK 0x80 for a filter outside its own (mqtt.js turns it into an error); the client stays connected.
  await assert.rejects(dash.subscribeAsync('secret/#', { qos: 1 }), /Unspecified error/);
  assert.ok(dash.connected);
  const got: string[] = [];
  dash.on('message', (topic) => got.push(topic));

  const sink = await mqtt.connectAsync(url, { username: 'backhaul-sink', password: 'sink-secret', reconnectPeriod: 0 });
  await sink.publishAsync('backhaul/819c/temperature', '17.5', { qos: 1 });
  // Outside its filters: the broker closes the connection, and nothing is delivered or ingested.
  const closed = new Promise<void>((resolve) => sink.once('close', () => resolve()));
  sink.publish('u4/301/valve', '{"id":"0d49","t":1}', { qos: 1 });
  await closed;
  sink.end(true);
  // Positive control: a publish the login may make, sent after the refused one, arrives; the refused one did not.
  const again = await mqtt.connectAsync(url, { username: 'backhaul-sink', password: 'sink-secret', reconnectPeriod: 0 });
  await again.publishAsync('backhaul/819c/after', '1', { qos: 1 });
  await again.endAsync();
  await until(() => got.length >= 2, { what: 'the second allowed publish at the dashboard' });
  assert.deepEqual(got, ['backhaul/819c/temperature', 'backhaul/819c/after']);
  assert.deepEqual(base.frames.map((f) => f.topic), []); // backhaul/# is excluded from ingest; the refused one never came in
  assert.ok((await base.metrics.value('backhaul_input_errors_total', { input: 'devices' })) >= 3, 'refusals are counted');
});

test('broker: disconnect(username) closes every connection of that login, and only those', async (t) => {
  const ctx = { ...inputContext({ id: 'dc' }), authenticate: (u: string, p: string) => Promise.resolve(p === 'pw' ? anywhere(u) : undefined) };
  const input = createWithDefaults(brokerInput, { host: '127.0.0.1', port: 0, topics: ['#'], exclude: [] }, ctx);
  await input.start();
  t.after(() => input.stop());
  const url = String(input.info?.().url);
  const connect = (clientId: string, username: string) => mqtt.connectAsync(url, { clientId, username, password: 'pw', reconnectPeriod: 0 });
  const a1 = await connect('a-1', 'dev-a');
  const a2 = await connect('a-2', 'dev-a');
  const b = await connect('b-1', 'dev-b');
  t.after(() => Promise.all([a1, a2, b].map((c) => c.endAsync(true))));
  const closed = (c: mqtt.MqttClient) => new Promise<void>((r) => c.once('close', () => r()));
  const gone = Promise.all([closed(a1), closed(a2)]);
  assert.equal(input.broker?.disconnect('dev-a'), 2);
  assert.equal(input.broker?.disconnect('dev-a'), 0, 'a login already being closed is not counted again');
  await gone;
  assert.equal(input.broker?.disconnect('nobody'), 0);
  assert.equal(b.connected, true);
  await b.publishAsync('x/y', 'still here', { qos: 1 });
  assert.deepEqual(ctx.frames.map((f) => f.topic), ['x/y']);
});
