// Fuzz target: the embedded broker's packet path. A real `broker` input, started in-process through its public
// definition on a free port, gets one raw TCP connection per generated input: MQTT packets made with mqtt-packet
// (CONNECT with and without logins, wills, PUBLISH at every QoS, SUBSCRIBE, acknowledgements, PINGREQ, DISCONNECT,
// MQTT 3, 3.1.1 and 5), sent whole, mutated, truncated, in chunks, or replaced by random bytes and by fixed headers
// claiming huge lengths. The property: the process throws nothing it does not catch, every connection ends, and at
// checkpoints and at the end a fresh client still connects, publishes at QoS 1 and gets its PUBACK, and its frame
// reaches the data path.
import { createWithDefaults } from '../test/helpers/options.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import fc from 'fast-check';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import type { InputContext, Principal } from '../src/core/driver.js';
import { systemClock } from '../src/core/clock.js';
import { silentLogger } from '../src/core/logger.js';
import { Metrics } from '../src/core/metrics.js';
import type { Frame } from '../src/core/types.js';
import { brokerInput } from '../src/inputs/broker/index.js';
import { mutate } from './decoders.js';
import { formatReport, TargetStats } from './stats.js';

const SERVICE = { username: 'fuzz', password: 'fuzz-password' };
const DEVICE = { username: 'device-1', password: 'device-1-password' };
/** A connection that has not closed this long after the client's FIN counts as lingering (reported). */
const LINGER_MS = 5000;

// ---------------------------------------------------------------- generators

const text = (max: number) => fc.oneof(fc.string({ maxLength: max }), fc.string({ unit: 'binary', maxLength: max }));
const topic = fc.oneof(
  fc.constantFrom('a/b', 'senml/x', '$SYS/x', '#', '+/x', 'a/#', 'backhaul/x', '', 'dev/1/data', 'dev/1/command', 'a//b', '/'),
  text(24),
);
const payload = fc.uint8Array({ maxLength: 64 });
const qos = fc.constantFrom<0 | 1 | 2>(0, 1, 2);
const messageId = fc.integer({ min: 0, max: 65535 });
/** Sessions kept across connections (clean: false) use a few client ids, so the broker keeps a bounded number. */
const POOL = ['c1', 'c2', 'c3', 'fuzz-a', 'fuzz-b'];

type Packet = mqttPacket.Packet;

const connectPacket = fc
  .record({
    version: fc.constantFrom<3 | 4 | 5>(3, 4, 4, 4, 5),
    clientId: fc.oneof(fc.constantFrom(...POOL, ''), text(30)),
    clean: fc.boolean(),
    keepalive: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 65535 })),
    login: fc.constantFrom('none', 'service', 'device', 'bad', 'user-only'),
    will: fc.option(fc.record({ topic, payload, qos, retain: fc.boolean() }), { nil: undefined }),
  })
  .map(({ version, clientId, clean, keepalive, login, will }): Packet => {
    const creds =
      login === 'service'
        ? { username: SERVICE.username, password: Buffer.from(SERVICE.password) }
        : login === 'device'
          ? { username: DEVICE.username, password: Buffer.from(DEVICE.password) }
          : login === 'bad'
            ? { username: DEVICE.username, password: Buffer.from('wrong') }
            : login === 'user-only'
              ? { username: 'someone' }
              : {};
    return {
      cmd: 'connect',
      protocolId: version === 3 ? 'MQIsdp' : 'MQTT',
      protocolVersion: version,
      clientId: clean ? clientId : (POOL[clientId.length % POOL.length] ?? 'c1'),
      clean,
      keepalive,
      ...creds,
      ...(will ? { will: { ...will, payload: Buffer.from(will.payload) } } : {}),
    };
  });

const otherPacket: fc.Arbitrary<Packet> = fc.oneof(
  fc.record({ topic, payload, qos, retain: fc.boolean(), dup: fc.boolean(), messageId }).map(
    (p): Packet => ({ cmd: 'publish', ...p, retain: p.retain && p.payload.length < 16, payload: Buffer.from(p.payload) }),
  ),
  fc.record({ subs: fc.array(fc.record({ topic, qos }), { minLength: 1, maxLength: 3 }), messageId }).map(
    ({ subs, messageId: id }): Packet => ({ cmd: 'subscribe', messageId: id, subscriptions: subs }),
  ),
  fc.record({ topics: fc.array(topic, { minLength: 1, maxLength: 3 }), messageId }).map(({ topics, messageId: id }): Packet => ({ cmd: 'unsubscribe', messageId: id, unsubscriptions: topics })),
  fc.record({ cmd: fc.constantFrom('puback', 'pubrec', 'pubrel', 'pubcomp'), messageId }).map((p) => p as Packet),
  fc.constantFrom<Packet>({ cmd: 'pingreq' }, { cmd: 'disconnect' }),
);

/** mqtt-packet refuses some combinations (a topic it will not write); those become a byte of garbage instead. */
function generate(p: Packet, version: number): Uint8Array {
  try {
    return mqttPacket.generate(p, { protocolVersion: version });
  } catch {
    return Uint8Array.of(0xf0);
  }
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return Uint8Array.from(Buffer.concat(parts));
}

export interface BrokerInput {
  readonly family: string;
  readonly bytes: Uint8Array;
  /** Where the bytes are split into separate writes (relative positions). */
  readonly cuts: readonly number[];
}

const session = fc.record({ connect: fc.option(connectPacket, { nil: undefined, freq: 8 }), rest: fc.array(otherPacket, { maxLength: 8 }) }).map(({ connect, rest }) => {
  const version = connect?.cmd === 'connect' ? (connect.protocolVersion ?? 4) : 4;
  return concat([...(connect ? [generate(connect, version)] : []), ...rest.map((p) => generate(p, version))]);
});

/** A fixed header claiming up to 268 MB, before or after a valid CONNECT, followed by a little data. */
const hugeHeader = fc.record({ type: fc.constantFrom(0x10, 0x30, 0x32, 0x82), after: fc.option(connectPacket, { nil: undefined }), extra: fc.uint8Array({ maxLength: 200 }) }).map(
  ({ type, after, extra }) => concat([...(after ? [generate(after, 4)] : []), Uint8Array.of(type, 0xff, 0xff, 0xff, 0x7f), extra]),
);

export const brokerInputArb: fc.Arbitrary<BrokerInput> = fc
  .record({
    kind: fc.constantFrom('valid', 'valid', 'valid', 'valid', 'mutated', 'mutated', 'mutated', 'mutated', 'random', 'huge-header'),
    valid: session,
    ops: fc.array(fc.record({ op: fc.constantFrom('flip', 'set', 'insert', 'delete', 'truncate', 'dup'), at: fc.double({ min: 0, max: 1, noNaN: true }), byte: fc.integer({ min: 0, max: 255 }) }), { minLength: 1, maxLength: 6 }),
    random: fc.uint8Array({ maxLength: 512 }),
    huge: hugeHeader,
    cuts: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 4 }),
  })
  .map(({ kind, valid, ops, random, huge, cuts }) => {
    const bytes = kind === 'valid' ? valid : kind === 'mutated' ? mutate(valid, ops) : kind === 'random' ? random : huge;
    return { family: kind, bytes, cuts };
  });

// ---------------------------------------------------------------- running one input

type Outcome = 'closed' | 'reset' | 'refused' | 'lingering';

/** One TCP connection: write the bytes (in chunks), half-close, wait until the broker closes it. */
function runSession(port: number, input: BrokerInput): Promise<Outcome> {
  return new Promise((done) => {
    const socket = tcpConnect({ host: '127.0.0.1', port });
    let settled = false;
    const finish = (o: Outcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      // RST rather than FIN when we give up, so no TIME_WAIT piles up on either side of the loopback.
      if (o === 'lingering') socket.resetAndDestroy();
      else socket.destroy();
      done(o);
    };
    const timer = setTimeout(() => finish('lingering'), LINGER_MS);
    socket.on('error', (e: NodeJS.ErrnoException) => finish(e.code === 'ECONNREFUSED' ? 'refused' : 'reset'));
    socket.on('close', () => finish('closed'));
    socket.on('data', () => undefined);
    socket.once('connect', () => {
      void (async () => {
        const at = [...new Set(input.cuts.map((c) => Math.floor(c * input.bytes.length)))].sort((a, b) => a - b);
        let from = 0;
        for (const to of [...at, input.bytes.length]) {
          if (settled) return;
          if (to > from) socket.write(input.bytes.subarray(from, to));
          from = Math.max(from, to);
          await nextTurn();
        }
        if (!settled) socket.end();
      })();
    });
  });
}

// ---------------------------------------------------------------- the target

export interface BrokerFuzzOptions {
  readonly runs: number;
  readonly seed?: number;
  /** A fresh client must connect and publish every this many inputs (and at the end). */
  readonly checkEvery?: number;
}

function context(dataDir: string, frames: { alive: number; all: number }): InputContext {
  const device: Principal = {
    username: DEVICE.username,
    device: 'device-1',
    mayPublish: (t) => t.startsWith('dev/1/') && t !== 'dev/1/command',
    maySubscribe: (f) => f === 'dev/1/command',
  };
  return {
    id: 'fuzz',
    logger: silentLogger(),
    metrics: new Metrics(),
    clock: systemClock,
    signal: new AbortController().signal,
    dataDir,
    resolvePath: (p: string) => (isAbsolute(p) ? p : resolve(dataDir, p)),
    emit: (f: Frame) => {
      frames.all++;
      if (f.topic === 'fuzz/alive') frames.alive++;
      return Promise.resolve();
    },
    emitStrict: (f: Frame) => {
      frames.all++;
      if (f.topic === 'fuzz/alive') frames.alive++;
      return Promise.resolve(1);
    },
    authenticate: (u: string, p: string) => Promise.resolve(u === DEVICE.username && p === DEVICE.password ? device : undefined),
    authenticateCertificate: () => Promise.resolve({ refused: 'no certificate logins in the fuzz target' }),
  };
}

/** A fresh client connects, publishes at QoS 1, gets its PUBACK, and the frame reaches the data path. */
async function assertResponsive(url: string, frames: { alive: number }, n: number): Promise<void> {
  const before = frames.alive;
  const c = await mqtt.connectAsync(url, { ...SERVICE, clientId: `fuzz-check-${n}`, reconnectPeriod: 0, connectTimeout: 10_000 });
  try {
    await c.publishAsync('fuzz/alive', `after ${n} inputs`, { qos: 1 });
  } finally {
    await c.endAsync(true);
  }
  if (frames.alive !== before + 1) throw new Error(`after ${n} inputs the broker acknowledged a publish that did not reach the data path`);
}

export async function fuzzBroker(o: BrokerFuzzOptions): Promise<{ stats: TargetStats; report: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'backhaul-fuzz-'));
  const frames = { alive: 0, all: 0 };
  const input = createWithDefaults(brokerInput, 
    {
      host: '127.0.0.1',
      port: 0,
      topics: ['#'],
      exclude: [],
      anonymous: true,
      users: [{ ...SERVICE, publish: ['#'], subscribe: ['#'] }],
      // Every generated session comes from 127.0.0.1: the per-address caps and login backoff, which would refuse
      // them (rightly), are lifted so the packet path itself is what gets fuzzed. Their own tests are in test/inputs.
      maxConnectionsPerAddress: 10_000,
      loginLimit: { burst: 1_000_000, perSecond: 1_000_000, failuresBeforeBackoff: 1_000_000, backoffMs: 1, maxBackoffMs: 1 },
    },
    context(dataDir, frames),
  );
  const uncaught: unknown[] = [];
  const onUncaught = (e: unknown) => uncaught.push(e);
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  const stats = new TargetStats('broker packet path', 'wall time from connect to close');
  const rssBefore = process.memoryUsage().rss;
  await input.start();
  try {
    const url = String(input.info?.()['url']);
    const port = Number(new URL(url).port);
    const checkEvery = o.checkEvery ?? 5000;
    await assertResponsive(url, frames, 0);
    await fc.assert(
      fc.asyncProperty(brokerInputArb, async (i) => {
        const t0 = process.hrtime.bigint();
        const outcome = await runSession(port, i);
        stats.record(i.bytes.length, Number(process.hrtime.bigint() - t0), i.family, outcome);
        if (uncaught.length > 0) throw new Error(`the broker let an exception escape: ${String(uncaught[0])}`);
        if (stats.runs % checkEvery === 0) await assertResponsive(url, frames, stats.runs);
      }),
      // A failure depends on the broker's state as much as on the input: report it as found, without shrinking.
      { numRuns: o.runs, endOnFailure: true, ...(o.seed === undefined ? {} : { seed: o.seed }) },
    );
    await assertResponsive(url, frames, stats.runs);
    if (uncaught.length > 0) throw new Error(`the broker let an exception escape: ${String(uncaught[0])}`);
  } finally {
    process.off('uncaughtException', onUncaught);
    process.off('unhandledRejection', onUncaught);
    await input.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
  const mib = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MiB`;
  const report = `${formatReport(stats, [])}\n  frames ingested   ${frames.all}\n  process RSS       ${mib(rssBefore)} before, ${mib(process.memoryUsage().rss)} after; responsive at every checkpoint`;
  return { stats, report };
}
