import { test } from 'node:test';
import { createWithDefaults } from '../helpers/options.js';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { Aedes, type AedesOptions, type AuthenticateError } from 'aedes';
import { connectAsync } from 'mqtt';
import { SinkError, type Sink } from '../../src/core/driver.js';
import { messageToJson, messageToSenml } from '../../src/sinks/format.js';
import { mqttSink } from '../../src/sinks/mqtt/index.js';
import { freePort } from '../helpers/servers.js';
import { until } from '../helpers/until.js';
import { MOSQUITTO, serviceSkip } from '../helpers/services.js';
import { offline, reading, T0, valve, sinkContext } from './messages.js';

interface Broker {
  port: number;
  url: string;
  /** Publishes the broker received from clients, in order. */
  received: Array<{ topic: string; qos: number; retain: boolean }>;
  close(): Promise<void>;
}

/**
 * aedes sends the PUBACK of a QoS 1 publish after `authorizePublish` calls back (and before routing it on), so the
 * hook records what the broker took and can hold the acknowledgement back for `ackDelayMs`.
 */
async function startBroker(port = 0, opts: AedesOptions = {}, ackDelayMs = 0): Promise<Broker> {
  const received: Broker['received'] = [];
  const broker = await Aedes.createBroker({
    ...opts,
    authorizePublish: (_client, packet, callback) => {
      received.push({ topic: packet.topic, qos: packet.qos, retain: packet.retain });
      if (ackDelayMs > 0) setTimeout(() => callback(null), ackDelayMs);
      else callback(null);
    },
  });
  const server: Server = createServer(broker.handle);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  const bound = (server.address() as AddressInfo).port;
  return {
    port: bound,
    url: `mqtt://127.0.0.1:${bound}`,
    received,
    close: async () => {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

interface Got {
  topic: string;
  payload: unknown;
  qos: number;
  retain: boolean;
}

async function subscriber(url: string, filter: string) {
  const client = await connectAsync(url, { reconnectPeriod: 0 });
  const got: Got[] = [];
  client.on('message', (topic, payload, packet) => {
    got.push({ topic, payload: JSON.parse(payload.toString('utf8')) as unknown, qos: packet.qos, retain: packet.retain });
  });
  await client.subscribeAsync(filter, { qos: 1 });
  return { got, close: () => client.endAsync() };
}

const isRetryable = (retryable: boolean, re?: RegExp) => (e: unknown) => {
  assert.ok(e instanceof SinkError, `expected a SinkError, got ${String(e)}`);
  assert.equal(e.retryable, retryable, e.message);
  if (re) assert.match(e.message, re);
  return true;
};

async function opened(options: Partial<Parameters<typeof mqttSink.create>[0]>): Promise<Sink> {
  const sink = createWithDefaults(mqttSink, options, sinkContext({ id: 'up' }));
  await sink.open();
  return sink;
}

test('mqtt sink: one QoS 1 message per value on backhaul/{device}/{measurement}, events on backhaul/events/{type}', async () => {
  const broker = await startBroker(0, {}, 150);
  const sub = await subscriber(broker.url, 'backhaul/#');
  const sink = await opened({ url: broker.url });
  try {
    const batch = [valve, offline, reading('b/39a#', T0 + 1000, { light: 31 })];
    const t = Date.now();
    await sink.write(batch);
    // write resolved only once the broker acknowledged every message (it holds each PUBACK back 150 ms)
    assert.ok(Date.now() - t >= 140, `write resolved after ${Date.now() - t} ms, before the PUBACKs`);
    assert.equal(broker.received.length, 5 + 1 + 1);
    assert.ok(broker.received.every((p) => p.qos === 1 && !p.retain));
    await until(() => sub.got.length === 7, { what: 'all messages at the subscriber', timeoutMs: 5000 });
    assert.deepEqual(
      sub.got.map((g) => g.topic),
      [
        'backhaul/819c/temperature',
        'backhaul/819c/battery',
        'backhaul/819c/occupancy',
        'backhaul/819c/boiler',
        'backhaul/819c/status',
        'backhaul/events/device.offline',
        'backhaul/b_39a_/light',
      ],
    );
    assert.ok(sub.got.every((g) => g.qos === 1));
    assert.deepEqual(sub.got[0]?.payload, {
      device: '819c',
      measurement: 'temperature',
      value: 16.625,
      unit: 'Cel',
      ts: T0,
      time: '2026-01-01T00:00:00.000Z',
      seq: 12,
    });
    assert.deepEqual(sub.got[3]?.payload, { device: '819c', measurement: 'boiler', value: true, ts: T0, time: '2026-01-01T00:00:00.000Z', seq: 12 });
    assert.deepEqual(sub.got[5]?.payload, messageToJson(offline));
    assert.deepEqual(sub.got[6]?.payload, { device: 'b/39a#', measurement: 'light', value: 31, ts: T0 + 1000, time: '2026-01-01T00:00:01.000Z' });
  } finally {
    await sink.close();
    await sub.close();
    await broker.close();
  }
});

test('mqtt sink: per-reading topics with JSON or SenML payloads, retain, custom event topic', async () => {
  const broker = await startBroker();
  const sub = await subscriber(broker.url, 'site/#');
  const json = await opened({ url: broker.url, topic: 'site/{input}/{device}', eventTopic: 'site/ev/{device}/{type}', retain: true });
  const senml = await opened({ url: broker.url, topic: 'site/senml/{device}', payload: 'senml', qos: 0 });
  try {
    await json.write([valve, offline]);
    await senml.write([valve]);
    await until(() => sub.got.length === 3, { what: 'three messages', timeoutMs: 5000 });
    const byTopic = new Map(sub.got.map((g) => [g.topic, g]));
    assert.deepEqual(byTopic.get('site/radio/819c')?.payload, messageToJson(valve));
    assert.deepEqual(byTopic.get('site/ev/819c/device.offline')?.payload, messageToJson(offline));
    assert.deepEqual(byTopic.get('site/senml/819c')?.payload, messageToSenml(valve));
    assert.deepEqual(
      broker.received.map((p) => [p.topic, p.qos, p.retain]),
      [
        ['site/radio/819c', 1, true],
        ['site/ev/819c/device.offline', 1, true],
        ['site/senml/819c', 0, false],
      ],
    );
    // the retained reading is there for a subscriber that comes later
    const late = await subscriber(broker.url, 'site/radio/+');
    await until(() => late.got.length === 1, { what: 'the retained message', timeoutMs: 5000 });
    assert.equal(late.got[0]?.retain, true);
    assert.deepEqual(late.got[0]?.payload, messageToJson(valve));
    await late.close();
  } finally {
    await json.close();
    await senml.close();
    await sub.close();
    await broker.close();
  }
});

test('mqtt sink: broker down → open still resolves, write throws retryable at once; reconnects when the broker returns', async () => {
  const port = await freePort();
  const sink = createWithDefaults(mqttSink, { url: `mqtt://127.0.0.1:${port}`, timeoutMs: 2000 }, sinkContext());
  await sink.open();
  let broker: Broker | undefined;
  try {
    const t = Date.now();
    await assert.rejects(sink.write([valve]), isRetryable(true, /not connected/));
    assert.ok(Date.now() - t < 200, 'a write while offline must fail at once, not wait');
    broker = await startBroker(port);
    const b = broker;
    await until(
      () =>
        sink.write([valve]).then(
          () => true,
          () => false,
        ),
      { what: 'the sink to reconnect', timeoutMs: 10_000 },
    );
    assert.equal(b.received.length, 5);
    // the broker goes away: the next write fails, retryable
    await b.close();
    broker = undefined;
    await until(
      () =>
        sink.write([valve]).then(
          () => false,
          (e: unknown) => e instanceof SinkError && e.retryable,
        ),
      { what: 'a retryable failure', timeoutMs: 5000 },
    );
  } finally {
    await sink.close();
    await broker?.close();
  }
});

test('mqtt sink: a broker that does not acknowledge within timeoutMs fails the batch, retryable', async () => {
  const broker = await startBroker(0, {}, 1500);
  const sink = await opened({ url: broker.url, timeoutMs: 300 });
  try {
    await assert.rejects(sink.write([valve]), isRetryable(true, /did not acknowledge the batch within 300 ms/));
  } finally {
    await sink.close();
    await broker.close();
  }
});

test('mqtt sink: refused credentials and bad templates are not retryable; the password never appears', async () => {
  const broker = await startBroker(0, {
    authenticate: (_c, username, password, done) => {
      if (username === 'hub' && password?.toString() === 'right-pass') return done(null, true);
      const err = new Error('bad credentials') as AuthenticateError;
      err.returnCode = 4;
      done(err, false);
    },
  });
  try {
    const wrong = createWithDefaults(mqttSink, { url: broker.url, username: 'hub', password: 'wr0ng-pass' }, sinkContext());
    await assert.rejects(wrong.open(), (e: unknown) => {
      isRetryable(false, /refused the connection/)(e);
      assert.ok(!(e as Error).message.includes('wr0ng-pass'));
      return true;
    });
    await wrong.close();
    const right = await opened({ url: broker.url, username: 'hub', password: 'right-pass' });
    await right.write([valve]);
    assert.equal(broker.received.length, 5);
    await right.close();

    for (const bad of [
      { topic: 'x/{device}/{measurement}', payload: 'senml' as const },
      { topic: 'x/+/{device}' },
      { topic: 'x/{devcie}' },
      { eventTopic: 'ev/{measurement}' },
    ]) {
      const s = createWithDefaults(mqttSink, { url: broker.url, ...bad }, sinkContext());
      await assert.rejects(s.open(), isRetryable(false));
      await s.close();
    }
  } finally {
    await broker.close();
  }
});

const mosquittoSkip = await serviceSkip(MOSQUITTO);

test('mqtt sink against the real Mosquitto: QoS 1 delivery of readings and events', { skip: mosquittoSkip }, async () => {
  const run = `bh-test-${randomBytes(6).toString('hex')}`;
  const sub = await subscriber(MOSQUITTO.url, `${run}/#`);
  const sink = await opened({ url: MOSQUITTO.url, topic: `${run}/{device}/{measurement}`, eventTopic: `${run}/events/{type}` });
  try {
    await sink.write([valve, offline]);
    await until(() => sub.got.length === 6, { what: 'six messages from Mosquitto', timeoutMs: 5000 });
    const topics = sub.got.map((g) => g.topic).sort();
    assert.deepEqual(topics, [
      `${run}/819c/battery`,
      `${run}/819c/boiler`,
      `${run}/819c/occupancy`,
      `${run}/819c/status`,
      `${run}/819c/temperature`,
      `${run}/events/device.offline`,
    ]);
    assert.ok(sub.got.every((g) => g.qos === 1));
    assert.deepEqual(sub.got.find((g) => g.topic === `${run}/819c/battery`)?.payload, {
      device: '819c',
      measurement: 'battery',
      value: 2.55,
      unit: 'V',
      ts: T0,
      time: '2026-01-01T00:00:00.000Z',
      seq: 12,
    });
  } finally {
    await sink.close();
    await sub.close();
  }
});
