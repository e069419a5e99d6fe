// The mqtt sink and its runner across a broker outage, with a broker the test owns (aedes on a port chosen at run
// time), stopped and started again on the same port: the runner's retry wait ends when the sink reconnects, and only
// the outbox resends what was in flight when the connection was lost (mqtt.js resends nothing by itself).
import { createWithDefaults } from '../helpers/options.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type AddressInfo } from 'node:net';
import { Aedes } from 'aedes';
import type { OutboxOptions } from '../../src/core/config/schema.js';
import type { Reading } from '../../src/core/types.js';
import { memoryOutbox as newMemoryOutbox } from '../../src/outbox/journal.js';
import { SinkRunner } from '../../src/outbox/runner.js';
import { mqttSink } from '../../src/sinks/mqtt/index.js';
import { systemClock } from '../../src/core/clock.js';
import { freePort } from '../helpers/servers.js';
import { until } from '../helpers/until.js';
import { reading, sinkContext, T0 } from './messages.js';

interface Arrival {
  readonly seq: number;
  readonly messageId: number | undefined;
}

interface TestBroker {
  /** Every PUBLISH the broker read from a client, in order. */
  readonly arrivals: Arrival[];
  close(): Promise<void>;
}

/**
 * aedes acknowledges a QoS 1 PUBLISH once `authorizePublish` calls back; `withholdAcks` never calls back, so the
 * publishes stay in flight at the sink until the broker is killed.
 */
async function startBroker(port: number, withholdAcks = false): Promise<TestBroker> {
  const arrivals: Arrival[] = [];
  const broker = await Aedes.createBroker({
    authorizePublish: (_client, packet, callback) => {
      const body = JSON.parse(packet.payload.toString()) as { seq: number };
      arrivals.push({ seq: body.seq, messageId: packet.messageId });
      if (!withholdAcks) callback(null);
    },
  });
  const server = createServer(broker.handle);
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  assert.equal((server.address() as AddressInfo).port, port);
  return {
    arrivals,
    close: async () => {
      await new Promise<void>((r) => broker.close(() => r()));
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

const r = (seq: number): Reading => reading('d1', T0 + seq * 1000, { n: seq }, { seq });
const memoryOutbox = () => newMemoryOutbox({ maxItems: 1000, maxBytes: 1 << 30, overflow: 'drop-oldest' }, systemClock);
const outboxOpts = (retryMinMs: number, retryMaxMs: number): OutboxOptions => ({
  type: 'memory',
  sync: 'full',
  maxItems: 1000,
  maxBytes: 1 << 30,
  overflow: 'drop-oldest',
  batchSize: 100,
  lingerMs: 0,
  retryMinMs,
  retryMaxMs,
  failingAfterMs: 300_000,
});

// The backoff after the failed write is at least 30 s (60 s with "equal jitter", never under half), and this test
// gives up after 20 s: the backlog can only get through if the reconnect ended the wait.
test('mqtt sink + runner: after the broker comes back, the backlog flows at once, not when a 60 s backoff ends', { timeout: 20_000 }, async () => {
  const port = await freePort();
  let broker: TestBroker | undefined = await startBroker(port);
  const ctx = sinkContext({ id: 'up' });
  const sink = createWithDefaults(mqttSink, { url: `mqtt://127.0.0.1:${port}`, topic: 't/{device}', timeoutMs: 2000 }, ctx);
  const runner = new SinkRunner('up', 'mqtt', sink, memoryOutbox(), outboxOpts(60_000, 60_000), ctx);
  runner.start();
  try {
    await runner.enqueue([r(0)]);
    await until(() => runner.status().delivered === 1, { what: 'the first reading delivered' });

    await broker.close();
    broker = undefined;
    await runner.enqueue([r(1), r(2), r(3)]);
    await until(() => runner.status().state === 'retrying', { what: 'a failed write while the broker is down' });
    assert.equal(runner.status().retries, 1);

    const back = await startBroker(port);
    broker = back;
    await until(() => runner.status().delivered === 4, { what: 'the backlog delivered after the reconnect' });
    assert.equal(runner.status().retries, 1, 'one failed write, then the reconnect ended the wait');
    assert.equal(runner.status().state, 'up');
    assert.deepEqual(
      back.arrivals.map((a) => a.seq),
      [1, 2, 3],
    );
  } finally {
    await runner.stop(0);
    await broker?.close();
  }
});

test('mqtt sink: QoS 1 publishes in flight when the connection is lost are resent by the outbox only, once each, in order', { timeout: 30_000 }, async () => {
  const port = await freePort();
  const first = await startBroker(port, true);
  let broker: TestBroker | undefined = first;
  const ctx = sinkContext({ id: 'up' });
  const sink = createWithDefaults(mqttSink, { url: `mqtt://127.0.0.1:${port}`, topic: 't/{device}', timeoutMs: 20_000 }, ctx);
  const runner = new SinkRunner('up', 'mqtt', sink, memoryOutbox(), outboxOpts(100, 400), ctx);
  runner.start();
  const seqs = [0, 1, 2, 3, 4, 5, 6, 7];
  try {
    await runner.enqueue(seqs.map(r));
    // The batch is written and the broker holds back every PUBACK: eight QoS 1 publishes in flight.
    await until(() => first.arrivals.length === seqs.length, { what: 'the batch at the first broker' });
    assert.equal(runner.status().delivered, 0);

    await first.close(); // the connection is lost before any acknowledgement
    broker = undefined;
    await until(() => runner.status().retries >= 2, { what: 'retries while the broker is down' });

    const second = await startBroker(port);
    broker = second;
    await until(() => runner.status().backlog === 0, { what: 'the backlog delivered to the second broker' });
    // Whatever mqtt.js would resend by itself goes out right after the CONNACK, before the outbox's batch; the
    // batch's PUBACKs have all come, so anything resent by mqtt.js would be here by now.
    assert.equal(runner.status().delivered, seqs.length);
    assert.deepEqual(
      second.arrivals.map((a) => a.seq),
      seqs,
      'each message once, in order: the outbox resent the batch and mqtt.js resent nothing',
    );
    // mqtt.js 5.16 replays a stored packet without the DUP flag but with its old packet id; the outbox's resend is
    // a new publish with a new id.
    const oldIds = new Set(first.arrivals.map((a) => a.messageId));
    assert.ok(
      second.arrivals.every((a) => !oldIds.has(a.messageId)),
      'no packet of the lost connection was replayed',
    );
  } finally {
    await runner.stop(0);
    await broker?.close();
  }
});
