// The load generator of the end-to-end benchmark (bench/e2e.ts), in its own process: K simulated devices, each a
// real MQTT client (mqtt.js, the same library and version Backhaul uses), publishing OpenTRV-style JSON frames of
// about 200 bytes at QoS 1, each carrying the moment it was sent. The same generator drives every system compared.
//
//   forked by the benchmark; IPC requests: connect, run, storm, disconnect (LoadgenRequest in e2e-lib.ts)
//
// A frame: {"id":"1a2b","seq":17,"sent":1763800000123.456,"T|C16":301,"B|cV":287,"pad":"......"}
//   id      the device id (as registered), seq its own frame counter (never reused in a process's life, so a
//           subscriber can tell duplicates), sent the wall-clock send time in ms with µs resolution,
//   T|C16   temperature in 1/16 °C and B|cV battery in centivolts (the OpenTRV JSON names), pad up to ~200 bytes.
//
// Paced runs publish `rate` frames a second spread over the devices in turn, checking the clock every millisecond;
// at most `maxInflight` frames may wait for their PUBACK, so a system that cannot keep up makes the generator fall
// behind (the run's send rate shows it) instead of piling up an unbounded queue here. Unpaced runs keep `window`
// frames in flight in all (spread over the devices) and publish the next as soon as a PUBACK comes: a closed loop
// that measures how fast the system acknowledges. A storm connects every device at once (at most `concurrency`
// attempts in flight, failed ones retried after a randomised delay) and reports how long until all were connected.
import { performance } from 'node:perf_hooks';
import { connect, type MqttClient } from 'mqtt';
import {
  dieWithParent,
  frame,
  nowMs,
  percentiles,
  round1,
  sleep,
  type ConnectResult,
  type LoadgenReply,
  type LoadgenRequest,
  type RunResult,
  type SimDevice,
  type StormResult,
} from './e2e-lib.js';

interface Sim {
  readonly dev: SimDevice;
  readonly client: MqttClient;
  seq: number;
}

let sims: Sim[] = [];
let measuring = false;
let disconnects = 0;

function reply(r: LoadgenReply): void {
  process.send?.(r);
}

function connectOne(url: string, dev: SimDevice, keepalive: number, prefix: string): Promise<MqttClient> {
  return new Promise<MqttClient>((resolve, reject) => {
    const c = connect(url, {
      clientId: `${prefix}${dev.id}`,
      ...(dev.username !== undefined ? { username: dev.username } : {}),
      ...(dev.password !== undefined ? { password: dev.password } : {}),
      clean: true,
      keepalive,
      reconnectPeriod: 0,
      connectTimeout: 300_000,
      protocolVersion: 4,
    });
    let settled = false;
    const fail = (e: Error) => {
      if (settled) return;
      settled = true;
      c.end(true);
      reject(e);
    };
    c.once('error', fail);
    c.once('close', () => fail(new Error('connection closed before CONNACK')));
    c.once('connect', () => {
      if (settled) return;
      settled = true;
      c.off('error', fail);
      c.on('error', () => undefined);
      c.on('close', () => {
        if (measuring) disconnects++;
      });
      resolve(c);
    });
  });
}

async function connectAll(req: Extract<LoadgenRequest, { t: 'connect' }>): Promise<ConnectResult> {
  const t0 = performance.now();
  const errors: string[] = [];
  let ok = 0;
  let failed = 0;
  let next = 0;
  const worker = async () => {
    while (next < req.devices.length) {
      const dev = req.devices[next++]!;
      try {
        const client = await connectOne(req.url, dev, req.keepalive, req.clientPrefix);
        sims.push({ dev, client, seq: 0 });
        ok++;
      } catch (e) {
        failed++;
        if (errors.length < 5) errors.push(`${dev.id}: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, req.concurrency) }, worker));
  return { t: 'connected', ok, failed, ms: Math.round(performance.now() - t0), errors };
}

type StormRequest = Extract<LoadgenRequest, { t: 'storm' }>;

/** One connection attempt of the storm: resolves with the client on CONNACK 0, rejects with a short reason. */
function attemptOne(req: StormRequest, dev: SimDevice, onDrop: (c: MqttClient) => void): Promise<MqttClient> {
  return new Promise<MqttClient>((resolve, reject) => {
    const c = connect(req.url, {
      clientId: `${req.clientPrefix}${dev.id}`,
      ...(dev.username !== undefined ? { username: dev.username } : {}),
      ...(dev.password !== undefined ? { password: dev.password } : {}),
      clean: true,
      keepalive: req.keepalive,
      reconnectPeriod: 0,
      // Our own timer below gives up (as a device's MQTT client would); mqtt.js's is kept out of the way.
      connectTimeout: req.connectTimeoutMs * 10,
      protocolVersion: 4,
    });
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      c.end(true);
      reject(new Error(why));
    };
    const timer = setTimeout(() => fail('timeout'), req.connectTimeoutMs);
    c.once('error', (e: Error & { code?: string | number }) => {
      // mqtt.js reports a refused CONNACK as an error whose code is the return code.
      fail(typeof e.code === 'number' ? `connack ${e.code}` : `error ${e.code ?? e.message}`);
    });
    c.once('close', () => fail('closed'));
    c.once('connect', () => {
      if (settled) {
        c.end(true);
        return;
      }
      settled = true;
      clearTimeout(timer);
      c.removeAllListeners('error');
      c.on('error', () => undefined);
      c.once('close', () => onDrop(c));
      resolve(c);
    });
  });
}

/**
 * Every device connects at once, with at most `concurrency` attempts in flight (so the generator's own event loop
 * and the machine's accept queue are not the limit), failed attempts retried after a randomised delay, until all
 * are connected together or the deadline passes.
 */
async function storm(req: StormRequest): Promise<StormResult> {
  const n = req.devices.length;
  const t0 = performance.now();
  const startedAt = nowMs();
  const deadline = t0 + req.deadlineMs;
  const queue: Array<{ dev: SimDevice; readyAt: number }> = req.devices.map((dev) => ({ dev, readyAt: t0 }));
  const failures: Record<string, number> = {};
  const errors: string[] = [];
  const latency: number[] = [];
  const tries = new Map<string, number>();
  const timeline: number[] = [];
  let connectedNow = 0;
  let attempts = 0;
  let failedAttempts = 0;
  let dropped = 0;
  let allConnectedMs: number | null = null;
  let over = false;
  const finished = () => over || connectedNow === n || performance.now() >= deadline;
  const tick = setInterval(() => timeline.push(connectedNow), 1000);

  const worker = async () => {
    while (!finished()) {
      const next = queue[0];
      if (next === undefined || next.readyAt > performance.now()) {
        await sleep(next === undefined ? 20 : Math.min(50, Math.max(1, next.readyAt - performance.now())));
        continue;
      }
      queue.shift();
      const dev = next.dev;
      attempts++;
      tries.set(dev.id, (tries.get(dev.id) ?? 0) + 1);
      const a = performance.now();
      try {
        const client = await attemptOne(req, dev, (gone) => {
          connectedNow--;
          sims = sims.filter((s) => s.client !== gone);
          if (!over) {
            dropped++;
            queue.push({ dev, readyAt: performance.now() + req.retryMs * (1 + Math.random()) });
          }
        });
        latency.push(performance.now() - a);
        sims.push({ dev, client, seq: 0 });
        connectedNow++;
        if (connectedNow === n && allConnectedMs === null) allConnectedMs = Math.round(performance.now() - t0);
      } catch (e) {
        failedAttempts++;
        const why = e instanceof Error ? e.message : String(e);
        failures[why] = (failures[why] ?? 0) + 1;
        if (errors.length < 5) errors.push(`${dev.id}: ${why}`);
        queue.push({ dev, readyAt: performance.now() + req.retryMs * (1 + Math.random()) });
      }
    }
  };
  // At the deadline the storm ends even with attempts in flight (they may still connect; `disconnect` ends them).
  const workers = Promise.all(Array.from({ length: Math.max(1, Math.min(req.concurrency, n)) }, worker));
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([workers, new Promise<void>((resolve) => (timer = setTimeout(resolve, req.deadlineMs)))]);
  clearTimeout(timer);
  over = true;
  clearInterval(tick);
  timeline.push(connectedNow);
  return {
    t: 'stormed',
    devices: n,
    connected: connectedNow,
    allConnectedMs,
    startedAt,
    endedAt: nowMs(),
    attempts,
    failedAttempts,
    failures,
    retriedDevices: [...tries.values()].filter((x) => x > 1).length,
    dropped,
    connectLatency: percentiles(latency),
    timeline,
    errors,
  };
}

async function run(req: Extract<LoadgenRequest, { t: 'run' }>): Promise<RunResult> {
  const k = sims.length;
  if (k === 0) throw new Error('no device is connected');
  const ackMs: number[] = [];
  let sent = 0;
  let acked = 0;
  let failed = 0;
  let inflight = 0;
  let lastAckAt = 0;
  let rr = 0;
  measuring = true;
  disconnects = 0;

  const publishOne = (s: Sim, then?: () => void) => {
    const seq = ++s.seq;
    const at = nowMs();
    inflight++;
    sent++;
    s.client.publish(s.dev.topic, frame(s.dev.id, seq, at), { qos: 1 }, (err) => {
      inflight--;
      const now = nowMs();
      if (err) failed++;
      else {
        acked++;
        ackMs.push(now - at);
        lastAckAt = now;
      }
      then?.();
    });
  };

  const startedAt = nowMs();
  const t0 = performance.now();
  if (req.rate > 0) {
    await new Promise<void>((resolve) => {
      const tick = () => {
        const elapsed = performance.now() - t0;
        if (elapsed >= req.durationMs) {
          resolve();
          return;
        }
        const due = Math.floor((elapsed * req.rate) / 1000);
        while (sent < due && inflight < req.maxInflight) publishOne(sims[rr++ % k]!);
        setTimeout(tick, 1);
      };
      tick();
    });
  } else {
    let stop = false;
    const loop = (s: Sim) => {
      if (!stop) publishOne(s, () => loop(s));
    };
    // The window spread over the devices: every device gets floor(window / K) (at least 1), the first few one more.
    const per = Math.floor(req.window / k);
    sims.forEach((s, i) => {
      const n = Math.max(1, per + (i < req.window - per * k ? 1 : 0));
      for (let j = 0; j < n; j++) loop(s);
    });
    await sleep(req.durationMs);
    stop = true;
  }
  const durationMs = performance.now() - t0;
  // The PUBACKs still owed; a system that accepted the frames answers them soon.
  const waitUntil = performance.now() + 60_000;
  while (inflight > 0 && performance.now() < waitUntil) await sleep(20);
  measuring = false;
  return {
    t: 'ran',
    sent,
    acked,
    failed: failed + inflight,
    durationMs: Math.round(durationMs),
    startedAt,
    lastAckAt,
    sendRate: round1((sent / durationMs) * 1000),
    ack: percentiles(ackMs),
    disconnects,
  };
}

async function disconnectAll(): Promise<void> {
  const all = sims;
  sims = [];
  await Promise.race([Promise.all(all.map((s) => s.client.endAsync(false).catch(() => undefined))), sleep(15_000)]);
  for (const s of all) s.client.end(true);
}

dieWithParent();
let queue: Promise<void> = Promise.resolve();
process.on('message', (m: LoadgenRequest) => {
  queue = queue.then(async () => {
    try {
      if (m.t === 'connect') reply(await connectAll(m));
      else if (m.t === 'run') reply(await run(m));
      else if (m.t === 'storm') reply(await storm(m));
      else if (m.t === 'disconnect') {
        await disconnectAll();
        reply({ t: 'disconnected' });
      }
    } catch (e) {
      reply({ t: 'error', message: e instanceof Error ? e.message : String(e) });
    }
  });
});
