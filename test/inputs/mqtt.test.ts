import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { mqttInput } from '../../src/inputs/mqtt/index.js';
import { BackhaulError } from '../../src/core/errors.js';
import type { Frame } from '../../src/core/types.js';
import { inputContext } from '../helpers/context.js';
import { MOSQUITTO, serviceSkip } from '../helpers/services.js';
import { until } from '../helpers/until.js';

const text = (p: Frame['payload']) => (typeof p === 'string' ? p : new TextDecoder().decode(p));

/** A throwaway aedes broker on a given port (0 = any), closable and restartable. */
async function miniBroker(port: number): Promise<{ port: number; broker: Aedes; close(): Promise<void> }> {
  const broker = await Aedes.createBroker();
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    broker.handle(s);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port }, () => resolve());
  });
  const addr = server.address();
  return {
    port: typeof addr === 'object' && addr ? addr.port : port,
    broker,
    async close() {
      const closed = new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => broker.close(() => r()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

const skip = await serviceSkip(MOSQUITTO);

test('mqtt: subscribes on Mosquitto, receives QoS 0 and QoS 1', { skip }, async (t) => {
  const run = randomBytes(4).toString('hex');
  const base = inputContext({ id: 'lora' });
  const input = mqttInput.create({ url: MOSQUITTO.url, topics: [`bhtest/${run}/+/up`], qos: 1, clean: true, connectTimeoutMs: 5000, reconnectMinMs: 200, reconnectMaxMs: 1000, trustTopics: false }, base);
  await input.start();
  t.after(() => input.stop());
  assert.deepEqual(input.info?.(), { url: MOSQUITTO.url });

  const pub = await mqtt.connectAsync(MOSQUITTO.url, { reconnectPeriod: 0 });
  t.after(() => pub.endAsync(true));
  await pub.publishAsync(`bhtest/${run}/a/up`, 'zero', { qos: 0 });
  await pub.publishAsync(`bhtest/${run}/b/up`, Buffer.from('one'), { qos: 1 });
  await pub.publishAsync(`bhtest/${run}/b/down`, 'not subscribed', { qos: 1 });
  // Positive control: a subscribed publish sent after the unsubscribed one arrives, and the unsubscribed one did not.
  await pub.publishAsync(`bhtest/${run}/c/up`, 'after', { qos: 1 });
  await until(() => base.frames.length >= 3, { what: 'three frames from Mosquitto' });
  assert.deepEqual(
    base.frames.map((f) => [f.topic, text(f.payload)]),
    [
      [`bhtest/${run}/a/up`, 'zero'],
      [`bhtest/${run}/b/up`, 'one'],
      [`bhtest/${run}/c/up`, 'after'],
    ],
  );
  assert.ok(base.frames.every((f) => f.input === 'lora' && f.payload instanceof Uint8Array));
});

test('mqtt: the PUBACK of a QoS 1 message goes out only after emit resolved', async (t) => {
  const b = await miniBroker(0);
  t.after(() => b.close());
  const events: string[] = [];
  b.broker.on('ack', (_packet, client) => {
    if (client.id.startsWith('backhaul-')) events.push('puback');
  });
  const base = inputContext({ id: 'acks' });
  // Each emit waits until the test lets it go.
  const gates: Array<() => void> = [];
  const ctx = {
    ...base,
    emit: async (f: Frame) => {
      events.push(`emit-start ${text(f.payload)}`);
      await new Promise<void>((r) => gates.push(r));
      base.frames.push(f);
      events.push(`emit-done ${text(f.payload)}`);
    },
  };
  const url = `mqtt://127.0.0.1:${b.port}`;
  const input = mqttInput.create({ url, topics: ['t/#'], qos: 1, clean: true, connectTimeoutMs: 3000, reconnectMinMs: 100, reconnectMaxMs: 300, trustTopics: false }, ctx);
  await input.start();
  t.after(() => input.stop());
  const pub = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  t.after(() => pub.endAsync(true));
  await pub.publishAsync('t/1', 'm1', { qos: 1 });
  await pub.publishAsync('t/2', 'm2', { qos: 1 });
  await until(() => gates.length === 1, { what: 'm1 handed to emit' });
  // Positive control: a publish nobody subscribed to passes the broker meanwhile; m1 stays unacknowledged and m2
  // is not handed over while m1 waits.
  await pub.publishAsync('other/x', 'ping', { qos: 1 });
  assert.deepEqual(events, ['emit-start m1']);
  gates[0]!();
  await until(() => gates.length === 2, { what: 'm2 handed to emit after m1' });
  gates[1]!();
  await until(() => events.filter((e) => e.startsWith('puback')).length === 2, { what: 'two PUBACKs from the input' });
  // the n-th PUBACK reaches the broker after the n-th emit resolved; messages are handed over one at a time
  const at = (e: string, n: number) => events.map((x, i) => (x === e ? i : -1)).filter((i) => i >= 0)[n] ?? -1;
  assert.ok(at('puback', 0) > events.indexOf('emit-done m1'), events.join(', '));
  assert.ok(at('puback', 1) > events.indexOf('emit-done m2'), events.join(', '));
  assert.ok(events.indexOf('emit-start m2') > events.indexOf('emit-done m1'), events.join(', '));
});

test('mqtt: a message whose connection was lost while it was made durable is not acknowledged on the next connection', async (t) => {
  const b = await miniBroker(0);
  t.after(() => b.close());
  // aedes numbers a clean session's deliveries from 1 again, so a stale PUBACK for m1 on the new connection would
  // acknowledge whatever the broker sent there first. Count the input's PUBACKs per connection.
  let connection = 0;
  const acks: number[] = [];
  let inputConn: Socket | undefined;
  let disconnected = 0;
  b.broker.on('client', (client) => {
    if (client.id.startsWith('backhaul-')) {
      connection++;
      inputConn = client.conn as Socket;
    }
  });
  b.broker.on('clientDisconnect', (client) => {
    if (client.id.startsWith('backhaul-')) disconnected++;
  });
  let subscribed = 0;
  b.broker.on('subscribe', (_subs, client) => {
    if (client.id.startsWith('backhaul-')) subscribed++;
  });
  b.broker.on('ack', (_packet, client) => {
    if (client.id.startsWith('backhaul-')) acks.push(connection);
  });
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  const started: string[] = [];
  const base = inputContext({ id: 'stale' });
  const ctx = {
    ...base,
    emit: async (f: Frame) => {
      started.push(text(f.payload));
      if (text(f.payload) === 'm1') await held;
      base.frames.push(f);
    },
  };
  const url = `mqtt://127.0.0.1:${b.port}`;
  const input = mqttInput.create({ url, topics: ['t/#'], qos: 1, clean: true, connectTimeoutMs: 3000, reconnectMinMs: 100, reconnectMaxMs: 300, trustTopics: false }, ctx);
  await input.start();
  let stopped = false;
  t.after(() => (stopped ? undefined : input.stop()));
  const pub = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  t.after(() => pub.endAsync(true));
  await pub.publishAsync('t/1', 'm1', { qos: 1 });
  await until(() => started.includes('m1'), { what: 'started.includes(\'m1\')' });
  // Cut the input's connection while m1 is still being made durable; it reconnects with a new clean session.
  assert.ok(inputConn);
  inputConn.destroy();
  await until(() => subscribed === 2, { what: 'subscribed === 2' });
  release();
  await until(() => base.frames.length === 1, { what: 'base.frames.length === 1' });
  await pub.publishAsync('t/2', 'm2', { qos: 1 });
  await until(() => base.frames.length === 2, { what: 'base.frames.length === 2' });
  // A graceful stop flushes every PUBACK before the DISCONNECT, and the broker reads them in order.
  await input.stop();
  stopped = true;
  await until(() => disconnected >= 1 && connection === 2, { what: 'disconnected >= 1 && connection === 2' });
  assert.deepEqual(base.frames.map((f) => text(f.payload)), ['m1', 'm2'], 'm1 is kept: its readings were queued');
  assert.deepEqual(acks, [2], 'one PUBACK on the second connection (m2), none for m1');
});

test('mqtt: reconnects with backoff and resubscribes after the broker restarts', async (t) => {
  let broker = await miniBroker(0);
  const port = broker.port;
  const url = `mqtt://127.0.0.1:${port}`;
  t.after(() => broker.close());
  const ctx = inputContext({ id: 'ext' });
  const input = mqttInput.create({ url, topics: ['sensors/#'], qos: 1, clean: true, connectTimeoutMs: 3000, reconnectMinMs: 100, reconnectMaxMs: 300, trustTopics: false }, ctx);
  await input.start();
  t.after(() => input.stop());

  const publish = async (payload: string) => {
    const pub = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
    await pub.publishAsync('sensors/r1', payload, { qos: 1 });
    await pub.endAsync();
  };
  await publish('before');
  await until(() => ctx.frames.length === 1, { what: 'ctx.frames.length === 1' });

  await broker.close();
  // The outage is seen (counted once) before the broker comes back.
  await until(async () => (await ctx.metrics.value('backhaul_input_errors_total', { input: 'ext' })) >= 1, { what: 'the outage counted' });
  broker = await miniBroker(port);
  // the input reconnects and resubscribes by itself; publish until the subscription is back
  await until(
    async () => {
      await publish('after');
      return ctx.frames.some((f) => text(f.payload) === 'after');
    },
    { what: 'a frame after the broker restarted', everyMs: 200 },
  );
  assert.equal(text(ctx.frames[0]?.payload ?? ''), 'before');
  assert.equal(await ctx.metrics.value('backhaul_input_errors_total', { input: 'ext' }), 1, 'one outage, counted once');
});

test('mqtt: start() rejects with BH_INPUT_FAILED naming the url, without the password', async () => {
  const b = await miniBroker(0);
  const port = b.port;
  await b.close(); // nothing listens there now
  const ctx = inputContext({ id: 'gone' });
  const input = mqttInput.create(
    { url: `mqtt://127.0.0.1:${port}`, topics: ['#'], qos: 1, clean: true, username: 'u', password: 'sekret-pw', connectTimeoutMs: 400, reconnectMinMs: 100, reconnectMaxMs: 200, trustTopics: false },
    ctx,
  );
  await assert.rejects(input.start(), (err: unknown) => {
    assert.ok(err instanceof BackhaulError);
    assert.equal(err.code, 'BH_INPUT_FAILED');
    assert.equal(err.path, 'inputs.gone.url');
    assert.match(err.message, new RegExp(`mqtt://127\\.0\\.0\\.1:${port}`));
    assert.doesNotMatch(err.message, /sekret/);
    return true;
  });
  await input.stop();
});
