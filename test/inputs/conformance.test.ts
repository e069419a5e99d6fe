// Conformance: what every input in the registry must do (src/core/driver.ts, `InputContext.emit`), each against a
// real source (an MQTT client, an HTTP client, a FIFO writer, a ManualClock). The test's `emit` resolves only when the
// test says so, which shows:
// * the acknowledgement waits for `emit`: the source gets no acknowledgement while its frame's emit is pending,
//   though the input answers other traffic meanwhile (a positive control), and gets it once emit resolved;
// * `stop()` with a frame in flight settles it: stop resolves once that emit did, the source got its answer
//   (inputs that answer their source), and the input released its port, connection, file or timers (a new server
//   listens on the same port; the broker sees no client; a FIFO has no reader; no timer is left).
// What "acknowledgement" means per input is said at its harness. A registered input without a harness fails the first
// test: a new input gets its contract test by adding one entry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants as fsc, openSync, writeSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { Aedes } from 'aedes';
import { ManualClock } from '../../src/core/clock.js';
import type { Input, InputContext, InputDefinition } from '../../src/core/driver.js';
import { SchemaValidator } from '../../src/core/config/validate.js';
import type { Frame } from '../../src/core/types.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { inputContext, tempDir } from '../helpers/context.js';
import { until } from '../helpers/until.js';

/** An input context whose `emit` (and `emitStrict`) waits until the test settles each call. */
interface Gate {
  readonly ctx: InputContext;
  readonly calls: Array<{ readonly frame: Frame; resolve(): void; reject(e: Error): void }>;
}

function gate(clock?: ManualClock): Gate {
  const base = inputContext({ id: 'conf', ...(clock ? { clock } : {}) });
  const calls: Gate['calls'] = [];
  const emit = (frame: Frame) => new Promise<void>((resolve, reject) => calls.push({ frame, resolve, reject }));
  return { ctx: { ...base, emit, emitStrict: (f: Frame) => emit(f).then(() => 1) }, calls };
}

/** One frame sent from the source, and what the source heard back. */
interface Sent {
  /** The source got its acknowledgement (per the harness's meaning). */
  acked(): boolean;
  /** Resolves with the source's answer: acknowledged, or refused (an error status, a closed connection). */
  settled(): Promise<'acked' | 'refused'>;
}

interface Running {
  readonly input: Input;
  /** Make the source send frame `n` (a publish, a POST, a line, a device's timer). */
  send(n: number): Sent;
  /** Traffic the input answers at once while a frame waits (positive control); resolves with that answer. */
  control(): Promise<void>;
  /** After stop(): proves the port, connection, file or timers are released. */
  released(): Promise<void>;
  close(): Promise<void>;
}

interface InputHarness {
  /** What acknowledgement means for this input (the tests' names say it). */
  readonly ack: string;
  /** Frames the input may take before the next waits for an emit (lines pipelines 256); 1 unless it pipelines. */
  readonly window: number;
  /** Whether the source gets an answer (PUBACK, HTTP status) that a stop must not leave hanging. */
  readonly answersSource: boolean;
  start(g: Gate, def: InputDefinition): Promise<Running>;
}

const validator = new SchemaValidator();

function create(def: InputDefinition, options: Record<string, unknown>, ctx: InputContext): Input {
  const o = structuredClone(options);
  assert.deepEqual(validator.validate(def.options, o, 'inputs.conf').map(String), [], 'the harness gives valid options');
  assert.deepEqual(def.check?.(o as never) ?? [], [], 'the harness gives options that pass check');
  return def.create(o, ctx);
}

const portOf = (input: Input) => Number(new URL(String(input.info?.()['url'])).port);

/** A new listener binds the port: whoever held it let go. */
async function portIsFree(port: number): Promise<void> {
  const s = createServer();
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, '127.0.0.1', resolve);
  });
  await new Promise<void>((r) => s.close(() => r()));
}

/** A QoS 1 publish; acknowledged on its PUBACK, refused when the connection closes first. */
function publish(c: MqttClient, topic: string, body: string): Sent {
  let acked = false;
  const settled = new Promise<'acked' | 'refused'>((resolve) => {
    const onClose = () => resolve('refused');
    c.once('close', onClose);
    c.publish(topic, body, { qos: 1 }, (err) => {
      c.off('close', onClose);
      acked = !err;
      resolve(err ? 'refused' : 'acked');
    });
  });
  return { acked: () => acked, settled: () => settled };
}

// ---------------------------------------------------------------- the harnesses

const brokerHarness: InputHarness = {
  ack: 'the PUBACK of a QoS 1 publish',
  window: 1,
  answersSource: true,
  async start(g, def) {
    const input = create(def, { host: '127.0.0.1', port: 0, topics: ['#'], exclude: ['control/#'], anonymous: true }, g.ctx);
    await input.start();
    const port = portOf(input);
    const url = `mqtt://127.0.0.1:${port}`;
    const device = await mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: 'conf-device' });
    const other = await mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: 'conf-other' });
    return {
      input,
      send: (n) => publish(device, `conf/${n}`, `frame ${n}`),
      // Another client's publish on an excluded topic is acknowledged at once.
      control: () => other.publishAsync('control/x', 'ping', { qos: 1 }).then(() => undefined),
      released: () => portIsFree(port),
      async close() {
        await device.endAsync(true);
        await other.endAsync(true);
      },
    };
  },
};

const mqttHarness: InputHarness = {
  ack: 'its PUBACK to the broker for a QoS 1 message',
  window: 1,
  answersSource: true,
  async start(g, def) {
    // A real broker, aedes on port 0, that tells which of its deliveries the input acknowledged.
    const broker = await Aedes.createBroker();
    const server = createServer(broker.handle);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `mqtt://127.0.0.1:${(server.address() as { port: number }).port}`;
    // The input takes one message at a time (mqtt.js hands it the next after the callback), so its n-th PUBACK is
    // the n-th frame's.
    let pubacks = 0;
    broker.on('ack', (_packet, client) => {
      if (client.id.startsWith('backhaul-')) pubacks++;
    });
    const input = create(def, { url, topics: ['conf/#'], qos: 1, connectTimeoutMs: 3000, reconnectMinMs: 100, reconnectMaxMs: 300 }, g.ctx);
    await input.start();
    const pub = await mqtt.connectAsync(url, { reconnectPeriod: 0, clientId: 'conf-publisher' });
    return {
      input,
      send: (n) => {
        publish(pub, `conf/${n}`, `frame ${n}`); // the broker acknowledges this at once; what counts is the input's PUBACK
        const acked = () => pubacks >= n;
        return { acked, settled: () => until(acked, { what: `the input's PUBACK of frame ${n}` }).then(() => 'acked' as const, () => 'refused' as const) };
      },
      // A publish nobody subscribed to goes through the same broker and is acknowledged at once.
      control: () => pub.publishAsync('control/x', 'ping', { qos: 1 }).then(() => undefined),
      // The input's connection is gone: the broker holds no client but the publisher.
      released: () => until(() => broker.connectedClients === 1, { what: 'the input to disconnect from the broker' }),
      async close() {
        await pub.endAsync(true);
        await new Promise<void>((r) => broker.close(() => r()));
        await new Promise<void>((r) => server.close(() => r()));
      },
    };
  },
};

const httpHarness: InputHarness = {
  ack: 'the HTTP 202 answer',
  window: 1,
  answersSource: true,
  async start(g, def) {
    const input = create(def, { host: '127.0.0.1', port: 0, path: '/ingest' }, g.ctx);
    await input.start();
    const port = portOf(input);
    return {
      input,
      send(n) {
        let status = 0;
        const settled = fetch(`http://127.0.0.1:${port}/ingest`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ device: 'conf', n }),
        }).then(
          async (res) => {
            await res.arrayBuffer();
            status = res.status;
            return status === 202 ? ('acked' as const) : ('refused' as const);
          },
          () => 'refused' as const,
        );
        return { acked: () => status === 202, settled: () => settled };
      },
      // Another path is answered (404) at once.
      control: () => fetch(`http://127.0.0.1:${port}/elsewhere`, { method: 'POST' }).then((r) => r.arrayBuffer().then(() => undefined)),
      released: () => portIsFree(port),
      close: () => Promise.resolve(),
    };
  },
};

const LINES_WINDOW = 256;

const linesHarness: InputHarness = {
  ack: `reading on: a line counts as acknowledged once the line ${LINES_WINDOW} after it was read (${LINES_WINDOW} lines in flight)`,
  window: LINES_WINDOW,
  answersSource: false,
  async start(g, def) {
    const dir = tempDir('backhaul-lines-conf-');
    const fifo = join(dir.path, 'radio.fifo');
    execFileSync('mkfifo', [fifo]);
    const input = create(def, { path: fifo, reopen: false }, g.ctx);
    await input.start();
    const writer = openSync(fifo, fsc.O_WRONLY | fsc.O_NONBLOCK);
    return {
      input,
      send(n) {
        writeSync(writer, `{"@":"819c","+":${n % 16}}\n`);
        const acked = () => g.calls.length >= n + LINES_WINDOW;
        return { acked, settled: () => until(acked, { what: `line ${n + LINES_WINDOW} read` }).then(() => 'acked' as const, () => 'refused' as const) };
      },
      control: () => Promise.resolve(), // a FIFO has nothing else to answer
      // The read end is closed: opening the FIFO to write without blocking finds no reader (ENXIO).
      released() {
        assert.throws(() => closeSync(openSync(fifo, fsc.O_WRONLY | fsc.O_NONBLOCK)), /ENXIO/);
        return Promise.resolve();
      },
      close() {
        closeSync(writer);
        dir.cleanup();
        return Promise.resolve();
      },
    };
  },
};

const simulatorHarness: InputHarness = {
  ack: "the device's next frame: it is scheduled only once its frame's emit resolved",
  window: 1,
  answersSource: false,
  async start(g, def) {
    const clock = g.ctx.clock as ManualClock;
    const input = create(def, { devices: 1, intervalMs: 1000, badFrameRate: 0, seed: 7 }, g.ctx);
    await input.start();
    return {
      input,
      send() {
        clock.advance(2000); // the device's timer fires: its frame goes to emit
        const acked = () => clock.pending() > 0;
        return { acked, settled: () => until(acked, { what: 'the next frame scheduled' }).then(() => 'acked' as const, () => 'refused' as const) };
      },
      control: () => Promise.resolve(), // time is the ManualClock's: nothing runs unless the test moves it
      released() {
        assert.equal(clock.pending(), 0, 'no timer is left');
        clock.advance(60_000);
        assert.equal(g.calls.length, 1, 'nothing is emitted after stop()');
        return Promise.resolve();
      },
      close: () => Promise.resolve(),
    };
  },
};

const harnesses: Readonly<Record<string, InputHarness>> = {
  broker: brokerHarness,
  mqtt: mqttHarness,
  http: httpHarness,
  lines: linesHarness,
  simulator: simulatorHarness,
};

// ---------------------------------------------------------------- the suite

const inputs = builtinRegistry().inputs;

test('input conformance: every registered input type has a harness, and every harness an input', () => {
  assert.deepEqual([...inputs.keys()].filter((t) => !(t in harnesses)), [], 'add a harness to test/inputs/conformance.test.ts');
  assert.deepEqual(Object.keys(harnesses).filter((t) => !inputs.has(t)), [], 'a harness for an input type no longer registered');
});

for (const [type, def] of inputs) {
  const h = harnesses[type];
  if (!h) continue;
  const name = `input conformance: ${type}`;

  test(`${name}: the acknowledgement (${h.ack}) waits for emit`, async (t) => {
    const g = gate(new ManualClock(Date.UTC(2026, 0, 1)));
    const r = await h.start(g, def);
    let stopped = false;
    t.after(async () => {
      for (const c of g.calls) c.resolve();
      if (!stopped) await r.input.stop();
      await r.close();
    });
    const first = r.send(1);
    for (let n = 2; n <= h.window; n++) r.send(n);
    await until(() => g.calls.length >= h.window, { what: `${h.window} frame(s) handed to emit` });
    if (h.window > 1) r.send(h.window + 1);
    await r.control();
    assert.equal(first.acked(), false, 'no acknowledgement while its emit is pending');
    assert.equal(g.calls.length, h.window, `the frame past the window (${h.window}) is not taken while the window waits`);
    g.calls[0]!.resolve();
    assert.equal(await first.settled(), 'acked', 'acknowledged once emit resolved');
    assert.equal(first.acked(), true);
    for (const c of g.calls) c.resolve();
    await r.input.stop();
    stopped = true;
  });

  test(`${name}: stop() with a frame in flight settles it and releases what the input holds`, async (t) => {
    const g = gate(new ManualClock(Date.UTC(2026, 0, 1)));
    const r = await h.start(g, def);
    t.after(() => r.close());
    const sent = r.send(1);
    await until(() => g.calls.length >= 1, { what: 'the frame handed to emit' });
    let done = false;
    const stopping = r.input.stop().then(() => (done = true));
    // A stop under way has stopped taking frames but waits for the one in flight; settle it as the data path would.
    g.calls[0]!.resolve();
    await until(() => done, { what: 'stop() to resolve once the frame in flight settled' });
    await stopping;
    if (h.answersSource) {
      let answer: string | undefined;
      void sent.settled().then((a) => (answer = a));
      await until(() => answer !== undefined, { what: 'the source to get its answer for the frame in flight' });
      assert.equal(answer, 'acked', 'the frame in flight was queued, so it is acknowledged');
    }
    await r.released();
    for (const c of g.calls) c.resolve();
  });
}
