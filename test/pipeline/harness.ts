// Shared by the stage tests: create a stage the way the hub does (schema defaults filled, then the definition's own
// check), with a ManualClock, and build readings and events tersely.
import assert from 'node:assert/strict';
import type { TSchema } from '@sinclair/typebox';
import { ManualClock } from '../../src/core/clock.js';
import { SchemaValidator } from '../../src/core/config/validate.js';
import type { StageDefinition } from '../../src/core/driver.js';
import type { CustomEvent, HubEvent } from '../../src/core/events.js';
import type { Message, Reading, Value } from '../../src/core/types.js';
import { stageContext } from '../helpers/context.js';

const validator = new SchemaValidator();

/** Schema errors and `check` problems, as `path: message` strings. */
export function problems<S extends TSchema>(def: StageDefinition<S>, options: Record<string, unknown>): string[] {
  const o = structuredClone(options);
  const errs = validator.validate(def.options, o, 'stage');
  if (errs.length > 0) return errs.map((e) => e.message);
  return (def.check?.(o as never) ?? []).map((p) => `${p.path}: ${p.message}`);
}

export function make<S extends TSchema>(def: StageDefinition<S>, options: Record<string, unknown>, clock = new ManualClock(0)) {
  const o = structuredClone(options);
  assert.deepEqual(problems(def, o), []);
  validator.validate(def.options, o, 'stage');
  const ctx = stageContext({ clock });
  return { stage: def.create(o, ctx), ctx, clock };
}

export const T0 = Date.parse('2024-01-01T00:00:00Z');
export const MIN = 60_000;

export function reading(device: string, ts: number, values: Record<string, Value>, extra: Partial<Reading> = {}): Reading {
  return { kind: 'reading', device, ts, values, authenticated: false, source: { input: 'in', decoder: 'json' }, ...extra };
}

/**
 * A `device.offline` event, or with `extra` any event a stage may be given (one of an older version, read back from
 * the journal, too): loosely typed on purpose, as stages must pass every event; the hub makes its own with makeEvent.
 */
export function event(extra: Partial<Omit<CustomEvent, 'kind' | 'type'>> & { readonly type?: string } = {}): HubEvent {
  return { kind: 'event', type: 'device.offline', ts: T0, severity: 'warning', device: 'a', message: 'a went silent', ...extra } as HubEvent;
}

export const readings = (out: readonly Message[]): Reading[] => out.filter((m): m is Reading => m.kind === 'reading');
export const events = (out: readonly Message[]): HubEvent[] => out.filter((m): m is HubEvent => m.kind === 'event');
