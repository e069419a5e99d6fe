// `backhaul devices …`: the device registry from the command line. Works on `<data>/registry.sqlite` of the config's
// data folder (`-c FILE`) or of `--data DIR`; safe to use while Backhaul runs (SQLite WAL). Readable tables by
// default, `--json` for scripts. Errors print as `CODE path: message` on stderr; exit 1 for errors, 2 for usage.
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { BackhaulError, isBackhaulError } from '../core/errors.js';
import { durationMs, formatDuration, humanDuration } from '../core/duration.js';
import {
  addDevice,
  checkClaimCode,
  claimWindowMs,
  closeClaimWindows,
  openClaimWindows,
  resetDeviceCredentials,
  setClaimCode,
} from '../devices/provision.js';
import { DeviceTypes, effectiveThresholds } from '../devices/device-types.js';
import { importManifest } from '../devices/manifest.js';
import { registryPath, SqliteDeviceStore, type DeviceStore } from '../devices/store/index.js';
import { findDevice } from '../devices/store/rules.js';
import type { DeviceFilter, DevicePatch } from '../devices/store/devices.js';
import { TopicScheme } from '../devices/topics.js';
import { DEVICE_STATES, type Device, type DeviceState } from '../devices/types.js';
import { configBasics } from './status.js';
import { sendCommandTo } from '../runtime/control.js';
import type { CommandRecord } from '../devices/store/orders.js';
import type { JsonObject, JsonValue } from '../devices/types.js';
import { iso, json, stdio, table, UsageError, type Out } from './io.js';

export const DEVICES_HELP = `backhaul devices — the device registry (<data>/registry.sqlite)

Usage: backhaul devices COMMAND [options] (-c FILE | --data DIR) [--json]
  list                       every device, as a table
      --site S --building B --room R --type T --state INIT|ACTIVE|BLOCKED --tag T --search TEXT
      --enabled | --disabled
  show ID                    one device: attributes, topics, thresholds, login, config, last status, audit
  add ID --type T            register a device and print its password (shown once)
      --kind mac|deveui|uuid|opentrv|other   (guessed when the id's form tells)
      --site S --building B --room R --description D --tags "a;b"
      --max-silent 30m --battery-floor 2.4 --device-config JSON --disabled
      --bootstrap            print no password: the device's first bootstrap call (in its claim window) receives one
      --claim-code CODE      the code on the device's label, which its bootstrap call must give (stored hashed)
  set ID [options]           change attributes (same options as add; an empty value clears: --room '')
  enable ID | disable ID
  import FILE                bulk provisioning from a CSV or JSON-lines manifest, one line per row
      --dry-run              report what would change; change nothing
      --format csv|jsonl     (default: from the file name or its first line)
      --claim-window 30m     open the claim window of the file's devices still waiting for their first password
  reset-credentials ID       a new password, printed once; the old one stops working
      --bootstrap            print none: the device's next bootstrap call (in its claim window) receives the new one
  claim open ID | --all-unclaimed [--for 30m]
                             let the device(s) fetch their first password by MAC over bootstrap until the window
                             closes (default 30m, at most 30d); without one every bootstrap call is refused
  claim close ID | --all     close the window(s) early
  claim code ID CODE         the claim code printed on its label ('' removes it); only its hash is kept
  command ID ORDER           have the running Backhaul publish an order (reboot, reinstall, ...) on the device's
                             command topic; recorded in the audit log (reinstall also resets its credentials)
      --param k=v            a parameter (repeatable; v is JSON when it parses, else text)
      --wait 30s             wait for the device's acknowledgement and exit 1 if none comes
  commands [ID]              recent orders and what became of them (sent, acknowledged, failed, expired)
  types                      the device types and their defaults

IDs may be written in any common form (AA-BB-CC-DD-EE-FF, 0D49, ...). Docs: src/devices/README.md.`;

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  data: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  kind: { type: 'string' },
  type: { type: 'string' },
  site: { type: 'string' },
  building: { type: 'string' },
  room: { type: 'string' },
  description: { type: 'string' },
  tags: { type: 'string' },
  tag: { type: 'string' },
  state: { type: 'string' },
  search: { type: 'string' },
  enabled: { type: 'boolean' },
  disabled: { type: 'boolean' },
  'max-silent': { type: 'string' },
  'battery-floor': { type: 'string' },
  'device-config': { type: 'string' },
  bootstrap: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  format: { type: 'string' },
  param: { type: 'string', multiple: true },
  wait: { type: 'string' },
  limit: { type: 'string' },
  for: { type: 'string' },
  'all-unclaimed': { type: 'boolean' },
  all: { type: 'boolean' },
  'claim-code': { type: 'string' },
  'claim-window': { type: 'string' },
} as const;

type Values = ReturnType<typeof parseArgs<{ args: string[]; options: typeof OPTIONS; allowPositionals: true }>>['values'];

/** True when the first word of the command line is `devices` (options may come before it). */
export function isDevicesCommand(argv: readonly string[]): boolean {
  try {
    const { positionals } = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: false });
    return positionals[0] === 'devices';
  } catch {
    return false;
  }
}

function actor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

function locationText(d: Device): string {
  const { site, building, room } = d.location;
  const place = [building, room].filter((x) => x !== undefined).join('/');
  if (site === undefined) return place || '-';
  return place ? `${site}:${place}` : `${site}:`;
}

function seenText(d: Device, now: number): string {
  return d.lastSeen === undefined ? 'never' : `${humanDuration(Math.max(0, now - d.lastSeen))} ago`;
}

function passwordText(d: Device): string {
  const c = d.credentials;
  if (!c) return 'none (the first bootstrap call in its claim window creates one)';
  if (c.hash === undefined) return 'waiting: the next bootstrap call in its claim window delivers a new one';
  return c.passwordIssued ? `set ${iso(c.updatedAt)}, delivered` : `set ${iso(c.updatedAt)}, not yet delivered`;
}

function claimText(d: Device, now: number): string {
  const c = d.claim ?? {};
  const parts: string[] = [];
  if (c.until !== undefined) parts.push(c.until > now ? `window open until ${iso(c.until)}` : `window closed ${iso(c.until)}`);
  else parts.push('window closed');
  parts.push(c.codeHash !== undefined ? 'claim code set' : 'no claim code');
  if (c.claimedAt !== undefined) parts.push(`password taken ${iso(c.claimedAt)} from ${c.claimedBy ?? '?'}`);
  return parts.join(', ');
}

/** The device as printed by --json: the password hash never leaves the registry. */
function publicDevice(d: Device, scheme: TopicScheme, types: DeviceTypes): Record<string, unknown> {
  const { credentials, claim, ...rest } = d;
  return {
    ...rest,
    claim: {
      until: claim?.until ?? null,
      code: claim?.codeHash !== undefined,
      claimedAt: claim?.claimedAt ?? null,
      claimedBy: claim?.claimedBy ?? null,
    },
    topics: scheme.topics(d) ?? null,
    effectiveThresholds: effectiveThresholds(d, types),
    credentials: credentials
      ? { username: credentials.username, hasPassword: credentials.hash !== undefined, passwordIssued: credentials.passwordIssued, updatedAt: credentials.updatedAt }
      : null,
  };
}

const lookup = findDevice;

function patchFrom(v: Values): DevicePatch {
  const patch: {
    type?: string;
    location?: { site?: string; building?: string; room?: string };
    description?: string;
    tags?: string[];
    thresholds?: { maxSilentMs?: number | null; batteryFloor?: number | null };
    config?: unknown;
  } = {};
  if (v.type !== undefined) patch.type = v.type;
  const location: { site?: string; building?: string; room?: string } = {};
  for (const k of ['site', 'building', 'room'] as const) if (v[k] !== undefined) location[k] = v[k];
  if (Object.keys(location).length > 0) patch.location = location;
  if (v.description !== undefined) patch.description = v.description;
  if (v.tags !== undefined) patch.tags = v.tags === '' ? [] : v.tags.split(';');
  const thresholds: { maxSilentMs?: number | null; batteryFloor?: number | null } = {};
  const silent = v['max-silent'];
  if (silent !== undefined) {
    if (silent === '') thresholds.maxSilentMs = null;
    else {
      try {
        thresholds.maxSilentMs = durationMs(silent);
      } catch {
        throw new BackhaulError('BH_DEVICE_FIELD', `${JSON.stringify(silent)} is not a duration: write e.g. "30m", "90s", "2h"`, { path: 'max-silent' });
      }
    }
  }
  const floor = v['battery-floor'];
  if (floor !== undefined) {
    if (floor === '') thresholds.batteryFloor = null;
    else if (/^[0-9]+(\.[0-9]+)?$/.test(floor)) thresholds.batteryFloor = Number(floor);
    else throw new BackhaulError('BH_DEVICE_FIELD', `${JSON.stringify(floor)} is not a number of volts (e.g. 2.4)`, { path: 'battery-floor' });
  }
  if (Object.keys(thresholds).length > 0) patch.thresholds = thresholds;
  const cfg = v['device-config'];
  if (cfg !== undefined) {
    try {
      patch.config = cfg === '' ? {} : (JSON.parse(cfg) as unknown);
    } catch {
      throw new BackhaulError('BH_DEVICE_CONFIG', 'is not valid JSON', { path: 'device-config' });
    }
  }
  return patch;
}

function filterFrom(v: Values): DeviceFilter {
  if (v.enabled && v.disabled) throw new UsageError('--enabled and --disabled together match nothing');
  let state: DeviceState | undefined;
  if (v.state !== undefined) {
    const s = v.state.toUpperCase();
    if (!(DEVICE_STATES as readonly string[]).includes(s)) throw new UsageError(`--state must be one of ${DEVICE_STATES.join(', ')}`);
    state = s as DeviceState;
  }
  return {
    ...(v.site !== undefined ? { site: v.site } : {}),
    ...(v.building !== undefined ? { building: v.building } : {}),
    ...(v.room !== undefined ? { room: v.room } : {}),
    ...(v.type !== undefined ? { type: v.type } : {}),
    ...(state !== undefined ? { state } : {}),
    ...(v.tag !== undefined ? { tag: v.tag } : {}),
    ...(v.search !== undefined ? { search: v.search } : {}),
    ...(v.enabled ? { enabled: true } : v.disabled ? { enabled: false } : {}),
  };
}

interface Ctx {
  readonly store: DeviceStore;
  readonly types: DeviceTypes;
  readonly scheme: TopicScheme;
  readonly v: Values;
  readonly args: readonly string[];
  readonly io: Out;
  readonly dataDir: string;
}

function needId(args: readonly string[], cmd: string): string {
  const id = args[0];
  if (id === undefined || args.length > 1) throw new UsageError(`${cmd} takes one device id`);
  return id;
}

async function list(c: Ctx): Promise<number> {
  if (c.args.length > 0) throw new UsageError('list takes no arguments (filters are options: --room 301)');
  const devices = await c.store.list(filterFrom(c.v));
  if (c.v.json) {
    c.io.out(json(devices.map((d) => publicDevice(d, c.scheme, c.types))));
    return 0;
  }
  if (devices.length === 0) {
    c.io.out('no devices');
    return 0;
  }
  const now = Date.now();
  c.io.out(
    table([
      ['ID', 'TYPE', 'LOCATION', 'STATE', 'ENABLED', 'LAST SEEN', 'TOPIC', 'TAGS'],
      ...devices.map((d) => [
        d.id,
        d.type,
        locationText(d),
        d.state,
        d.enabled ? 'yes' : 'no',
        seenText(d, now),
        c.scheme.baseTopic(d) ?? '-',
        d.tags.join(';'),
      ]),
    ]),
  );
  c.io.out(`${devices.length} device${devices.length === 1 ? '' : 's'}`);
  return 0;
}

async function show(c: Ctx): Promise<number> {
  const d = await lookup(c.store, needId(c.args, 'show'), c.v.kind);
  const audit = await c.store.listAudit({ device: d.id, limit: 10 });
  if (c.v.json) {
    c.io.out(json({ ...publicDevice(d, c.scheme, c.types), audit }));
    return 0;
  }
  const type = c.types.get(d.type);
  const t = effectiveThresholds(d, c.types);
  const own = (k: 'maxSilentMs' | 'batteryFloor') => (d.thresholds[k] !== undefined ? '' : ' (type default)');
  const topics = c.scheme.topics(d);
  const rows: string[][] = [
    ['id', `${d.id} (${d.kind})`],
    ['type', type ? `${d.type}: ${type.description}` : `${d.type} (unknown type)`],
    ['location', `site ${d.location.site ?? '-'}, building ${d.location.building ?? '-'}, room ${d.location.room ?? '-'}`],
    ['description', d.description || '-'],
    ['tags', d.tags.length ? d.tags.join(', ') : '-'],
    ['enabled', d.enabled ? 'yes' : 'no'],
    ['state', d.state === 'BLOCKED' ? `BLOCKED: ${d.blockedReason ?? ''}` : d.state],
    ['topics', topics ? `base ${topics.base}` : 'none: the location needs a building and a room (or building "outside" and an area)'],
    ...(topics ? [['', `status ${topics.status}`], ['', `command ${topics.command}`]] : []),
    [
      'thresholds',
      `max silent ${t.maxSilentMs !== undefined ? formatDuration(t.maxSilentMs) : '-'}${t.maxSilentMs !== undefined ? own('maxSilentMs') : ''}, ` +
        `battery floor ${t.batteryFloor !== undefined ? `${t.batteryFloor} V` : '-'}${t.batteryFloor !== undefined ? own('batteryFloor') : ''}`,
    ],
    ['last seen', d.lastSeen === undefined ? 'never' : `${iso(d.lastSeen)} (${seenText(d, Date.now())})`],
    ['login', d.credentials ? `username ${d.credentials.username}` : 'none yet'],
    ['password', passwordText(d)],
    ['claim', claimText(d, Date.now())],
    ['source', d.source === 'config' ? 'config file (read-only here)' : 'registry'],
    ['created', iso(d.createdAt)],
    ['updated', iso(d.updatedAt)],
    ['config', JSON.stringify(d.config)],
    ['last status', d.lastStatus === undefined ? '-' : JSON.stringify(d.lastStatus)],
  ];
  c.io.out(table(rows));
  const orders = await c.store.listCommands({ device: d.id, limit: 5 });
  if (orders.length > 0) {
    c.io.out('');
    c.io.out('recent orders:');
    c.io.out(table(orders.map((r) => ['  ' + commandRow(r)[0]!, ...commandRow(r).slice(2)])));
  }
  if (audit.length > 0) {
    c.io.out('');
    c.io.out('recent changes:');
    c.io.out(table(audit.map((a) => [`  ${iso(a.at)}`, a.actor, a.action, a.result ?? '', a.detail ? JSON.stringify(a.detail) : ''])));
  }
  return 0;
}

async function add(c: Ctx): Promise<number> {
  const raw = needId(c.args, 'add');
  if (c.v.type === undefined) throw new UsageError('add needs --type (see `backhaul devices types`)');
  if (c.v.enabled) throw new UsageError('devices are added enabled; --disabled adds one disabled');
  const patch = patchFrom(c.v);
  const code = c.v['claim-code'];
  if (code !== undefined) checkClaimCode(code, 'claim-code');
  const { device: added, password } = await addDevice(
    c.store,
    { ...patch, id: raw, ...(c.v.kind !== undefined ? { kind: c.v.kind } : {}), ...(c.v.disabled ? { enabled: false } : {}) },
    { bootstrap: c.v.bootstrap ?? false, actor: actor() },
  );
  const d = code !== undefined ? await setClaimCode(c.store, added, code, { actor: actor() }) : added;
  const topic = c.scheme.baseTopic(d);
  if (c.v.json) {
    c.io.out(json({ device: publicDevice(d, c.scheme, c.types), username: d.credentials?.username ?? d.id, password: password ?? null }));
    return 0;
  }
  c.io.out(`added ${d.id} (${d.kind}, ${d.type}) at ${locationText(d)}, topic ${topic ?? '- (no building and room yet)'}`);
  c.io.out(`username: ${d.credentials?.username ?? d.id}`);
  if (password !== undefined) {
    c.io.out(`password: ${password}`);
    c.io.out('The password is shown this once; only its hash is kept. `backhaul devices reset-credentials` makes a new one.');
  } else {
    c.io.out('password: none yet; the device\'s first bootstrap call receives one once its claim window is open (backhaul devices claim open).');
  }
  return 0;
}

async function set(c: Ctx): Promise<number> {
  const d = await lookup(c.store, needId(c.args, 'set'), c.v.kind);
  const patch = patchFrom(c.v);
  if (Object.keys(patch).length === 0) throw new UsageError('set needs something to change (--room 301, --tags "a;b", ...)');
  const r = await c.store.update(d.id, patch);
  if (r.change === 'updated') {
    await c.store.appendAudit({ actor: actor(), action: 'device.set', device: d.id, detail: { changed: [...r.changed] }, result: 'ok' });
  }
  if (c.v.json) c.io.out(json({ change: r.change, changed: r.changed, device: publicDevice(r.device, c.scheme, c.types) }));
  else c.io.out(r.change === 'updated' ? `updated ${d.id}: ${r.changed.join(', ')}` : `${d.id} unchanged`);
  return 0;
}

async function enable(c: Ctx, on: boolean): Promise<number> {
  const d = await lookup(c.store, needId(c.args, on ? 'enable' : 'disable'), c.v.kind);
  const after = await c.store.setEnabled(d.id, on);
  if (after.enabled !== d.enabled) {
    await c.store.appendAudit({ actor: actor(), action: on ? 'device.enable' : 'device.disable', device: d.id, result: 'ok' });
  }
  const word = on ? 'enabled' : 'disabled';
  if (c.v.json) c.io.out(json({ id: d.id, enabled: after.enabled, changed: after.enabled !== d.enabled }));
  else c.io.out(after.enabled !== d.enabled ? `${d.id} ${word}` : `${d.id} was already ${word}`);
  return 0;
}

async function importCmd(c: Ctx): Promise<number> {
  const file = c.args[0];
  if (file === undefined || c.args.length > 1) throw new UsageError('import takes one manifest file');
  const format = c.v.format;
  if (format !== undefined && format !== 'csv' && format !== 'jsonl') throw new UsageError('--format must be csv or jsonl');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new BackhaulError('BH_MANIFEST_FORMAT', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const dryRun = c.v['dry-run'] ?? false;
  const window = c.v['claim-window'];
  const report = await importManifest(c.store, text, {
    dryRun,
    actor: actor(),
    source: file,
    ...(format !== undefined ? { format } : {}),
    ...(window !== undefined ? { claimWindowMs: claimWindowMs(window, 'claim-window') } : {}),
  });
  const failed = report.counts.error > 0 ? 1 : 0;
  if (c.v.json) {
    c.io.out(
      json({
        format: report.format,
        dryRun,
        counts: report.counts,
        ...(report.claimWindow ? { claimWindow: report.claimWindow } : {}),
        rows: report.rows.map((r) => ({
          line: r.line,
          ...(r.id !== undefined ? { id: r.id } : {}),
          status: r.status,
          ...(r.changed ? { changed: r.changed } : {}),
          ...(r.error ? { error: { code: r.error.code, column: r.error.path ?? null, message: r.error.detail } } : {}),
        })),
      }),
    );
    return failed;
  }
  const would = dryRun ? { created: 'would create', updated: 'would update', unchanged: 'unchanged', error: 'error' } : undefined;
  c.io.out(
    table(
      report.rows.map((r) => [
        `line ${r.line}`,
        would ? would[r.status] : r.status,
        r.error ? r.error.toString() : `${r.id ?? ''}${r.changed?.length ? ` (${r.changed.join(', ')})` : ''}`,
      ]),
    ) || 'the manifest has no rows',
  );
  const n = report.rows.length;
  const k = report.counts;
  c.io.out(
    `${n} row${n === 1 ? '' : 's'}: ${k.created} created, ${k.updated} updated, ${k.unchanged} unchanged, ${k.error} failed` +
      (dryRun ? ' (dry run: nothing was changed)' : ''),
  );
  if (report.claimWindow) {
    const n = report.claimWindow.devices.length;
    c.io.out(`claim window open until ${iso(report.claimWindow.until)} for ${n} device${n === 1 ? '' : 's'} waiting for their first password`);
  }
  return failed;
}

async function resetCredentials(c: Ctx): Promise<number> {
  const d = await lookup(c.store, needId(c.args, 'reset-credentials'), c.v.kind);
  const { username, password } = await resetDeviceCredentials(c.store, d, { bootstrap: c.v.bootstrap ?? false, actor: actor() });
  if (c.v.json) {
    c.io.out(json({ id: d.id, username, password: password ?? null }));
    return 0;
  }
  if (password === undefined) {
    c.io.out(`${d.id}: the old password no longer works; the device's next bootstrap call receives a new one.`);
    return 0;
  }
  c.io.out(`${d.id}: new credentials; the old password no longer works.`);
  c.io.out(`username: ${username}`);
  c.io.out(`password: ${password}`);
  c.io.out('The password is shown this once; only its hash is kept.');
  return 0;
}

async function claim(c: Ctx): Promise<number> {
  const [sub, ...rest] = c.args;
  const now = Date.now();
  if (sub === 'open') {
    if (c.v['all-unclaimed'] ? rest.length > 0 : rest.length !== 1) throw new UsageError('claim open takes one device id, or --all-unclaimed');
    const forMs = claimWindowMs(c.v.for, 'for');
    const target = c.v['all-unclaimed'] ? 'unclaimed' : [await lookup(c.store, rest[0]!, c.v.kind)];
    const w = await openClaimWindows(c.store, target, { forMs, actor: actor(), now });
    if (c.v.json) c.io.out(json(w));
    else if (w.devices.length === 0) c.io.out('no device is waiting for its first password');
    else c.io.out(`claim window open until ${iso(w.until)} (${formatDuration(forMs)}) for ${w.devices.join(', ')}`);
    return 0;
  }
  if (sub === 'close') {
    if (c.v.all ? rest.length > 0 : rest.length !== 1) throw new UsageError('claim close takes one device id, or --all');
    const closed = await closeClaimWindows(c.store, c.v.all ? 'all' : [await lookup(c.store, rest[0]!, c.v.kind)], { actor: actor() });
    if (c.v.json) c.io.out(json({ devices: closed }));
    else c.io.out(closed.length === 0 ? 'no claim window was open' : `claim window closed for ${closed.join(', ')}`);
    return 0;
  }
  if (sub === 'code') {
    const [raw, code, ...more] = rest;
    if (raw === undefined || code === undefined || more.length > 0) throw new UsageError("claim code takes a device id and a CODE ('' removes it)");
    const d = await setClaimCode(c.store, await lookup(c.store, raw, c.v.kind), code, { actor: actor() });
    if (c.v.json) c.io.out(json({ id: d.id, code: d.claim?.codeHash !== undefined }));
    else c.io.out(code.trim() === '' ? `${d.id}: no claim code` : `${d.id}: claim code set (only its hash is kept)`);
    return 0;
  }
  throw new UsageError('claim takes open, close or code');
}

/** `--param k=v` → `{k: v}`; v is JSON when it parses (`3`, `true`, `{"a":1}`), else the text. */
export function paramsFrom(list: readonly string[] | undefined): JsonObject {
  const out: JsonObject = {};
  for (const p of list ?? []) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new BackhaulError('BH_COMMAND_ORDER', `a parameter is written k=v, not ${JSON.stringify(p)}`, { path: '--param' });
    const v = p.slice(eq + 1);
    let value: JsonValue;
    try {
      value = JSON.parse(v) as JsonValue;
    } catch {
      value = v;
    }
    out[p.slice(0, eq)] = value;
  }
  return out;
}

function commandRow(r: CommandRecord): string[] {
  return [iso(r.sentAt), r.device, r.order, r.status, r.doneAt !== undefined ? iso(r.doneAt) : '-', r.actor, r.id];
}

async function command(c: Ctx): Promise<number> {
  const [raw, order, ...rest] = c.args;
  if (raw === undefined || order === undefined || rest.length > 0) {
    throw new UsageError('command takes a device id and an ORDER: backhaul devices command ID ORDER [--param k=v]');
  }
  const d = await lookup(c.store, raw, c.v.kind);
  let waitMs: number | undefined;
  try {
    waitMs = c.v.wait !== undefined ? durationMs(c.v.wait) : undefined;
  } catch {
    throw new UsageError(`--wait takes a duration such as 30s or 2m, not ${JSON.stringify(c.v.wait)}`);
  }
  const sent = await sendCommandTo(c.dataDir, { device: d.id, order, params: paramsFrom(c.v.param), actor: actor() });
  let last = sent;
  if (waitMs !== undefined) {
    const until = Date.now() + waitMs;
    while (last.status === 'sent' && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 200));
      last = (await c.store.getCommand(sent.id)) ?? last;
    }
  }
  if (c.v.json) c.io.out(json(last));
  else {
    c.io.out(`${order} sent to ${d.id} on ${sent.topic} (order ${sent.id})`);
    if (waitMs === undefined) c.io.out('Its acknowledgement is recorded when the device reports back: backhaul devices commands ' + d.id);
    else if (last.status === 'sent') c.io.out(`no acknowledgement within ${c.v.wait}`);
    else c.io.out(`${last.status}${last.result !== undefined ? `: ${JSON.stringify(last.result)}` : ''}`);
  }
  if (waitMs !== undefined && last.status !== 'acknowledged') return 1;
  return 0;
}

async function commandsCmd(c: Ctx): Promise<number> {
  if (c.args.length > 1) throw new UsageError('commands takes at most one device id');
  const raw = c.args[0];
  const device = raw !== undefined ? (await lookup(c.store, raw, c.v.kind)).id : undefined;
  const limit = c.v.limit !== undefined ? Number(c.v.limit) : 20;
  if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit takes a whole number above 0');
  const list = await c.store.listCommands({ ...(device !== undefined ? { device } : {}), limit });
  if (c.v.json) c.io.out(json(list));
  else if (list.length === 0) c.io.out('no orders yet');
  else c.io.out(table([['SENT', 'DEVICE', 'ORDER', 'STATUS', 'SETTLED', 'BY', 'ID'], ...list.map(commandRow)]));
  return 0;
}

function typesCmd(c: Pick<Ctx, 'types' | 'v' | 'io'>): number {
  const list = c.types.list();
  if (c.v.json) {
    c.io.out(json(list.map((t) => ({ name: t.name, topicName: t.topicName, description: t.description, defaults: t.defaults, config: t.config }))));
    return 0;
  }
  c.io.out(
    table([
      ['TYPE', 'TOPIC', 'MAX SILENT', 'BATTERY FLOOR', 'DESCRIPTION'],
      ...list.map((t) => [
        t.name,
        t.topicName,
        t.defaults.maxSilentMs !== undefined ? formatDuration(t.defaults.maxSilentMs) : '-',
        t.defaults.batteryFloor !== undefined ? `${t.defaults.batteryFloor} V` : '-',
        t.description,
      ]),
    ]),
  );
  return 0;
}

export interface DevicesRunOptions {
  readonly io?: Out;
  /** The device types (default: the built-in ones). */
  readonly types?: DeviceTypes;
}

/** Run `backhaul devices …` (argv as given to `backhaul`); resolves with the exit code. */
export async function devicesMain(argv: readonly string[], opts: DevicesRunOptions = {}): Promise<number> {
  const io = opts.io ?? stdio;
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true }));
  } catch (e) {
    io.err(`BH_USAGE ${(e as Error).message}\n\n${DEVICES_HELP}`);
    return 2;
  }
  // positionals[0] is `devices`
  const [, cmd, ...args] = positionals;
  if (values.help || cmd === undefined || cmd === 'help') {
    io.out(DEVICES_HELP);
    return values.help || cmd === 'help' ? 0 : 2;
  }
  const types = opts.types ?? new DeviceTypes();
  const commands: Record<string, (c: Ctx) => Promise<number>> = {
    list,
    show,
    add,
    set,
    enable: (c) => enable(c, true),
    disable: (c) => enable(c, false),
    import: importCmd,
    'reset-credentials': resetCredentials,
    claim,
    command,
    commands: commandsCmd,
  };
  if (cmd === 'types') return typesCmd({ types, v: values, io });
  const run = commands[cmd];
  if (!run) {
    io.err(`BH_USAGE unknown devices command "${cmd}"\n\n${DEVICES_HELP}`);
    return 2;
  }
  let store: DeviceStore | undefined;
  try {
    const basics = values.config !== undefined ? configOf(values.config) : undefined;
    const dataDir = values.data !== undefined ? resolve(values.data) : basics?.dataDir;
    if (dataDir === undefined) throw new UsageError('devices needs -c FILE (the config, for its data folder) or --data DIR');
    const scheme = new TopicScheme(types, basics?.topics ?? {});
    store = SqliteDeviceStore.open(registryPath(dataDir), { types });
    return await run({ store, types, scheme, v: values, args, io, dataDir });
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`BH_USAGE ${e.message}`);
      return 2;
    }
    io.err(isBackhaulError(e) ? e.toString() : e instanceof Error ? e.message : String(e));
    return 1;
  } finally {
    await store?.close();
  }
}

function configOf(file: string): ReturnType<typeof configBasics> {
  try {
    return configBasics(file);
  } catch (e) {
    throw new BackhaulError('BH_CONFIG_READ', `cannot read config file ${resolve(file)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}
