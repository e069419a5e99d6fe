// `backhaul demo`: the embedded default with nothing to configure. An embedded broker, simulated OpenTRV valves (one
// falling silent and one with a low battery now and then, so alarms show), and three sinks: the SQLite historian
// (readings and events), a JSON-lines file, and the broker itself (so `mosquitto_sub` shows the flow).
import { createServer } from 'node:net';
import { SqliteTokenStore, tokensPath } from '../api/tokens.js';
import { makePrivateDir } from '../core/private-files.js';
import { builtinRegistry } from '../runtime/registry.js';

/** The port when free, else any free port. */
export function pickPort(preferred: number, host = '0.0.0.0'): Promise<number> {
  const tryListen = (port: number) =>
    new Promise<number | undefined>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(undefined));
      s.listen(port, host, () => {
        const addr = s.address();
        const p = typeof addr === 'object' && addr ? addr.port : undefined;
        s.close(() => resolve(p));
      });
    });
  return tryListen(preferred).then(async (p) => p ?? (await tryListen(0)) ?? Promise.reject(new Error('no free port')));
}

export interface DemoOptions {
  readonly port: number;
  /** HTTP API and dashboard, on this machine only. */
  readonly apiPort: number;
  readonly dataDir: string;
  readonly devices: number;
  readonly intervalMs: number;
  /** Password of the demo's own logins on its broker (a person's `demo`, the live sink's `backhaul`): random per run. */
  readonly password: string;
}

/** The valve that falls silent and the one whose battery runs low (indexes into the simulated ids). */
export const DEMO_SILENT = 1;
export const DEMO_LOW_BATTERY = 3;
/** The demo's scripted trouble repeats with this period, so a newcomer sees it within two minutes, then again. */
export const DEMO_CYCLE_MS = 4 * 60_000;
/** The silent valve's threshold: short, so its offline alarm is raised within seconds of its silence. */
export const DEMO_SILENT_THRESHOLD_MS = 10_000;

/**
 * Scripted trouble (the simulator's `scenes`): valve DEMO_SILENT falls silent 30 s in for a minute (its offline alarm is
 * raised and then cleared), valve DEMO_LOW_BATTERY reports 2.2 V, under the valve type's 2.4 V floor, from 45 s for a
 * minute (battery_low raised, then cleared); both every four minutes. Only with at least that many devices.
 */
export function demoScenes(devices: number): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  if (devices > DEMO_SILENT) out.push({ device: DEMO_SILENT, afterMs: 30_000, forMs: 60_000, everyMs: DEMO_CYCLE_MS, silent: true });
  if (devices > DEMO_LOW_BATTERY) out.push({ device: DEMO_LOW_BATTERY, afterMs: 45_000, forMs: 60_000, everyMs: DEMO_CYCLE_MS, battery: 2.2 });
  return out;
}

export function demoConfig(o: DemoOptions): Record<string, unknown> {
  const valves = { type: 'simulator', devices: o.devices, seed: 1, intervalMs: o.intervalMs, decoder: 'opentrv', scenes: demoScenes(o.devices) };
  const simulator = builtinRegistry().inputs.get(valves.type);
  const ids = simulator?.knownDevices?.({ ...valves }) ?? [];
  return {
    data: o.dataDir,
    api: { host: '127.0.0.1', port: o.apiPort },
    // The simulated valves are declared, placed in rooms of a demo house, so the dashboard shows them with their
    // topics and turns them amber, then red, if they fall silent.
    devices: {
      declared: ids.map((id, i) => ({
        id,
        kind: 'opentrv',
        type: 'opentrv-valve',
        building: 'demo-house',
        room: `room-${i + 1}`,
        description: `simulated valve ${i + 1}${i === DEMO_SILENT ? ' (falls silent for a minute every 4 min)' : i === DEMO_LOW_BATTERY ? ' (battery runs low for a minute every 4 min)' : ''}`,
        maxSilent: `${i === DEMO_SILENT ? Math.max(DEMO_SILENT_THRESHOLD_MS, o.intervalMs * 3) : Math.max(10_000, o.intervalMs * 5)}ms`,
      })),
    },
    inputs: {
      // Anonymous access stays off, as in any config: the demo makes a login for the person trying it and one for
      // its own MQTT sink.
      devices: {
        type: 'broker',
        host: '0.0.0.0',
        port: o.port,
        decoder: 'json',
        users: [
          { username: 'demo', password: o.password, publish: ['devices/#'], subscribe: ['#'] },
          { username: 'backhaul', password: `${o.password}-sink`, publish: ['backhaul/#'], subscribe: [] },
        ],
      },
      valves,
    },
    sinks: {
      history: { type: 'sqlite' },
      jsonl: { type: 'file' },
      live: {
        type: 'mqtt',
        url: `mqtt://127.0.0.1:${o.port}`,
        topic: 'backhaul/{device}/{measurement}',
        qos: 0,
        username: 'backhaul',
        password: `${o.password}-sink`,
      },
    },
    routes: [
      { name: 'keep-everything', to: ['history', 'jsonl'] },
      // Events (offline, battery low, alarms raised and cleared) are kept in the historian too: the dashboard's Events
      // page reads them from there.
      { name: 'keep-events', match: { kind: 'event' }, to: ['history'] },
      { name: 'live', stages: [{ type: 'range', limits: { temperature: { min: -40, max: 85 } } }], to: ['live'] },
    ],
  };
}

/** A fresh admin token named `demo` for this run (the previous run's is revoked), to log in to the dashboard. */
export function demoToken(dataDir: string): string {
  makePrivateDir(dataDir);
  const store = SqliteTokenStore.open(tokensPath(dataDir));
  try {
    for (const t of store.list()) if (t.name === 'demo' && t.revokedAt === undefined) store.revoke(t.id);
    return store.create('demo', 'admin').token;
  } finally {
    store.close();
  }
}
