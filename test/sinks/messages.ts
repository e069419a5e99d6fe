// Readings, events and a driver context shared by the sink tests.
import type { DriverContext } from '../../src/core/driver.js';
import { makeEvent } from '../../src/core/events.js';
import type { HubEvent, Reading } from '../../src/core/types.js';
import { driverContext, tempDir, type TestContextOptions } from '../helpers/context.js';

const scratch = tempDir('backhaul-sinks-');
process.on('exit', () => scratch.cleanup());

/** A driver context whose data folder is removed when the test process exits. */
export function sinkContext(opts: TestContextOptions = {}): DriverContext {
  return driverContext({ dataDir: scratch.path, ...opts });
}

export const T0 = Date.UTC(2026, 0, 1, 0, 0, 0);

export function reading(device: string, ts: number, values: Reading['values'], extra: Partial<Reading> = {}): Reading {
  return { kind: 'reading', device, ts, values, authenticated: false, source: { input: 'radio', decoder: 'opentrv' }, ...extra };
}

/** The worked OpenTRV example, as the decoder makes it. */
export const valve: Reading = reading(
  '819c',
  T0,
  { temperature: 16.625, battery: 2.55, occupancy: 2, boiler: true, status: 'ok' },
  { seq: 12, units: { temperature: 'Cel', battery: 'V' }, authenticated: true },
);

export const offline: HubEvent = makeEvent(
  'device.offline',
  { lastSeen: T0 - 7_140_000, silentMs: 7_200_000, threshold: 3_600_000 },
  { ts: T0 + 60_000, device: '819c', message: 'silent for 2h' },
);
