// The map of event types (src/core/events.ts): it rejects events of the wrong shape at compile time (the
// `@ts-expect-error` lines below stop the build when they would compile), docs/events.md is generated from it, every
// type in it is raised somewhere, and no code outside it builds an event by hand.
import { sourceFiles } from '../helpers/files.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Value } from '@sinclair/typebox/value';
import { customEvent, EVENT_TYPES, isEventType, makeEvent, type HubEvent } from '../../src/core/events.js';
import { renderEvents } from '../../src/cli/events-doc.js';
import { buildConfig } from '../../src/runtime/config.js';
import { ConfigErrors } from '../../src/core/errors.js';
import { builtinRegistry } from '../../src/runtime/registry.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));

const OWN = [join('src', 'core', 'events.ts'), join('src', 'cli', 'events-doc.ts')];
const others = () =>
  sourceFiles(join(root, 'src'))
    .map((f) => ({ file: relative(root, f), text: readFileSync(f, 'utf8') }))
    .filter((f) => !OWN.includes(f.file));

test('makeEvent builds the event with the map\'s severity, and the data given', () => {
  const e = makeEvent('device.offline', { lastSeen: 1, silentMs: 5, threshold: 4 }, { ts: 6, device: 'a', message: 'a silent' });
  assert.deepEqual(e, { kind: 'event', type: 'device.offline', ts: 6, severity: 'warning', device: 'a', message: 'a silent', data: { lastSeen: 1, silentMs: 5, threshold: 4 } });
  assert.equal(e.data.silentMs, 5); // typed: a number, no cast
  const u = makeEvent('device.unknown', { policy: 'drop', input: 'radio' }, { ts: 1, severity: 'warning', device: 'b', message: 'b unknown' });
  assert.equal(u.severity, 'warning');
  const c = makeEvent('config.applied', { source: 'x', hash: 'h', inputs: 0, routes: 0, sinks: 0 }, { ts: 1, message: 'applied' });
  assert.equal('device' in c, false);
});

test('the map rejects what does not fit it: at compile time (these lines), and a missing severity at run time too', () => {
  const fields = { ts: 0, device: 'a', message: 'm' };
  // @ts-expect-error silentMs is a number
  makeEvent('device.offline', { lastSeen: 1, silentMs: '5', threshold: 4 }, fields);
  // @ts-expect-error threshold is missing
  makeEvent('device.offline', { lastSeen: 1, silentMs: 5 }, fields);
  // @ts-expect-error a field the type does not have
  makeEvent('device.offline', { lastSeen: 1, silentMs: 5, threshold: 4, extra: 1 }, fields);
  // @ts-expect-error a device event names its device
  makeEvent('device.offline', { lastSeen: 1, silentMs: 5, threshold: 4 }, { ts: 0, message: 'm' });
  // @ts-expect-error an event about no device carries none
  makeEvent('sink.backlog_ok', { sink: 's', items: 0, threshold: 2, peak: 3, durationMs: 1 }, fields);
  // @ts-expect-error a fixed severity is not chosen at the raise site
  makeEvent('device.offline', { lastSeen: 1, silentMs: 5, threshold: 4 }, { ...fields, severity: 'critical' });
  // @ts-expect-error no such event type
  assert.throws(() => makeEvent('device.gone', {}, { ts: 0, message: 'm' }), /no event type device\.gone/);
  // @ts-expect-error a severity that varies must be chosen
  assert.throws(() => makeEvent('device.unknown', { policy: 'drop', input: 'radio' }, fields), /device\.unknown needs a severity \(one of info, warning\)/);
  // @ts-expect-error not a severity this type can have
  makeEvent('device.unknown', { policy: 'drop', input: 'radio' }, { ...fields, severity: 'critical' });
  // @ts-expect-error the policy is one of three
  makeEvent('device.unknown', { policy: 'ignore', input: 'radio' }, { ...fields, severity: 'info' });
  // Built by hand, an event still has to fit its type:
  // @ts-expect-error config.applied's hash is a string
  const wrong: HubEvent = { kind: 'event', type: 'config.applied', ts: 0, severity: 'info', message: 'm', data: { source: 's', hash: 1, inputs: 0, routes: 0, sinks: 0 } };
  // @ts-expect-error device.offline is a warning
  const wrongSeverity: HubEvent = { kind: 'event', type: 'device.offline', ts: 0, severity: 'info', device: 'a', message: 'm', data: { lastSeen: 1, silentMs: 5, threshold: 4 } };
  // @ts-expect-error a type the map does not have is no plain string: only customEvent makes one
  const unknown: HubEvent = { kind: 'event', type: 'my.event', ts: 0, severity: 'info', message: 'm' };
  assert.equal([wrong, wrongSeverity, unknown].length, 3);
});

test('customEvent: a type of the config\'s choosing, never a built-in one', () => {
  const e = customEvent('notification', { people: 3 }, { ts: 1, severity: 'info', device: 's1', message: '3 people' });
  assert.deepEqual(e, { kind: 'event', type: 'notification', ts: 1, severity: 'info', device: 's1', message: '3 people', data: { people: 3 } });
  assert.throws(() => customEvent('device.offline', {}, { ts: 1, severity: 'info', message: 'm' }), /device\.offline is a built-in event type/);
  assert.equal(isEventType('device.offline'), true);
  assert.equal(isEventType('notification'), false);
  assert.equal(isEventType('toString'), false); // own keys only
});

test('a template stage may not make events of a built-in type (backhaul check says so)', () => {
  const raw = (event: string) => ({
    inputs: {},
    sinks: { out: { type: 'console' } },
    routes: [{ stages: [{ type: 'template', phrases: ['{device}'], event }], to: ['out'] }],
  });
  const opts = { registry: builtinRegistry(), env: {} };
  assert.doesNotThrow(() => buildConfig(raw('people.counted'), { source: 'test', dir: root }, opts));
  try {
    buildConfig(raw('sink.backlog'), { source: 'test', dir: root }, opts);
    assert.fail('a built-in type was taken');
  } catch (e) {
    assert.ok(e instanceof ConfigErrors, String(e));
    assert.match(e.message, /routes\[0\]\.stages\[0\]\.event: sink\.backlog is a built-in event type/);
  }
});

test('docs/events.md is current (run `npm run docs` when this fails)', () => {
  const doc = readFileSync(join(root, 'docs/events.md'), 'utf8');
  assert.equal(doc, renderEvents());
  const documented = [...doc.matchAll(/^## `([a-z_.]+)`$/gm)].map((m) => m[1]!);
  assert.deepEqual(documented, Object.keys(EVENT_TYPES));
});

test('every event type in the map is raised somewhere in src', () => {
  const code = others()
    .map((f) => f.text)
    .join('\n');
  const unraised = Object.keys(EVENT_TYPES).filter((t) => !code.includes(`'${t}'`));
  assert.deepEqual(unraised, []);
});

test('no event is built by hand in src: every one goes through makeEvent or customEvent', () => {
  const found: string[] = [];
  for (const f of others()) {
    f.text.split('\n').forEach((line, i) => {
      // A route's `match: { kind: 'event' }` selects events; it builds none.
      const code = line.replace(/\bmatch:\s*\{\s*kind:\s*['"]event['"]/g, '');
      if (/\bkind:\s*['"]event['"]\s*[,}]/.test(code) || /\bas\s+(HubEvent|CustomEvent|KnownEvent|CustomEventType)\b/.test(code)) {
        found.push(`${f.file}:${i + 1}: ${line.trim()}`);
      }
    });
  }
  assert.deepEqual(found, []);
});

test('every schema in the map describes each field (the docs show it), and a made event validates against it', () => {
  const e = makeEvent('severity.changed', { measurement: 't', value: 40, level: 'DANGER', previous: 'NORMAL', unit: 'Cel' }, { ts: 1, severity: 'critical', device: 'a', message: 'm' });
  assert.equal(Value.Check(EVENT_TYPES['severity.changed'].data, e.data), true);
  assert.equal(Value.Check(EVENT_TYPES['severity.changed'].data, { ...e.data, level: 'HOT' }), false);
  const undescribed: string[] = [];
  for (const [type, spec] of Object.entries(EVENT_TYPES)) {
    const props = (spec.data as { properties?: Record<string, { description?: string }> }).properties ?? {};
    for (const [name, p] of Object.entries(props)) if (!p.description) undescribed.push(`${type}.${name}`);
  }
  assert.deepEqual(undescribed, []);
});
