// One conformance suite every DeviceStore must pass (SQLite now, PostgreSQL later): validation with the same codes
// and paths, idempotent upserts and dry runs, filters, runtime fields, credentials, read-only config devices, the
// audit log and the orders, and — for durable stores — that everything survives a reopen. The audit log and the order
// log stand alone (no device needs to exist), so each has a suite of its own for a store's part, which the composed
// store passes too; device records and credentials share the devices, so they are tested together.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock, type Clock } from '../../src/core/clock.js';
import { BackhaulError, type ErrorCode } from '../../src/core/errors.js';
import { DeviceTypes } from '../../src/devices/device-types.js';
import type { DeviceStore } from '../../src/devices/store/index.js';
import type { AuditLog } from '../../src/devices/store/audit.js';
import type { OrderLog } from '../../src/devices/store/orders.js';
import type { JsonValue } from '../../src/devices/types.js';

export interface DeviceStoreMaker {
  /** A fresh, empty store. */
  make(opts: { types: DeviceTypes; clock: Clock }): Promise<DeviceStore>;
  /** Durable stores: close this one and open the same data again. */
  reopen?(old: DeviceStore, opts: { types: DeviceTypes; clock: Clock }): Promise<DeviceStore>;
  /** A reason to skip every test of the suite (a service the store needs is not there), as node:test takes it. */
  readonly skip?: string | false;
}

/** What every suite takes besides its store: a reason to skip all its tests, or none. */
export interface SuiteOptions {
  readonly skip?: string | false;
}

const T0 = 1_700_000_000_000;

export async function rejectsCode(p: Promise<unknown>, code: ErrorCode, path?: string): Promise<BackhaulError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof BackhaulError, `expected ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (path !== undefined) assert.equal(caught.path, path, caught.message);
  return caught;
}

export function deviceStoreConformance(name: string, maker: DeviceStoreMaker): void {
  const skip = maker.skip ?? false;
  // The parts that stand alone have suites of their own; the composed store passes them too.
  const part = (clock: Clock) => maker.make({ types: new DeviceTypes(), clock });
  auditLogConformance(name, part, { skip });
  orderLogConformance(name, part, { skip });

  const setup = async () => {
    const clock = new ManualClock(T0);
    const types = new DeviceTypes();
    const store = await maker.make({ types, clock });
    return { clock, types, store };
  };

  test(`${name}: create makes a canonical, INIT, enabled registry device; a second create of any spelling is refused`, { skip }, async () => {
    const { store } = await setup();
    try {
      const d = await store.create({ id: 'AA-BB-CC-DD-EE-01', type: 'shutter', location: { building: 'u4', room: '301' }, tags: ['b', 'a', 'a'] });
      assert.equal(d.id, 'aa:bb:cc:dd:ee:01');
      assert.equal(d.kind, 'mac');
      assert.equal(d.state, 'INIT');
      assert.equal(d.enabled, true);
      assert.equal(d.source, 'registry');
      assert.deepEqual(d.tags, ['a', 'b']);
      assert.deepEqual(d.config, {});
      assert.equal(d.createdAt, T0);
      assert.equal(d.credentials, undefined);
      assert.deepEqual(await store.get('aa:bb:cc:dd:ee:01'), d);
      await rejectsCode(store.create({ id: 'aabb.ccdd.ee01', type: 'generic' }), 'BH_DEVICE_EXISTS', 'id');
      assert.equal(await store.count(), 1);
    } finally {
      await store.close();
    }
  });

  test(`${name}: bad input is refused with its code and path, and nothing is written`, { skip }, async () => {
    const { store } = await setup();
    try {
      await rejectsCode(store.create({ id: '12:34', kind: 'mac', type: 'shutter' }), 'BH_DEVICE_ID', 'id');
      await rejectsCode(store.create({ id: 'abcdef123456', type: 'shutter' }), 'BH_DEVICE_ID', 'kind'); // bare hex: kind needed
      await rejectsCode(store.create({ id: '0d49', kind: 'opentrv', type: 'valve' }), 'BH_DEVICE_TYPE', 'type');
      await rejectsCode(store.create({ id: '0d49', kind: 'opentrv' }), 'BH_DEVICE_TYPE', 'type');
      await rejectsCode(store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve', location: { building: 'u4', room: 'a/b' } }), 'BH_DEVICE_LOCATION', 'location.room');
      await rejectsCode(store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve', location: { building: 'u4', room: '+' } }), 'BH_DEVICE_LOCATION', 'location.room');
      await rejectsCode(store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve', location: { site: '#' } }), 'BH_DEVICE_LOCATION', 'location.site');
      await rejectsCode(store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve', location: { building: 'abroad', room: '1' } }), 'BH_DEVICE_LOCATION', 'location.building');
      await rejectsCode(store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve', config: { targetC: 99 } }), 'BH_DEVICE_CONFIG', 'config.targetC');
      await rejectsCode(store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve', config: { colour: 'red' } }), 'BH_DEVICE_CONFIG', 'config.colour');
      await rejectsCode(store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve', tags: ['a;b'] }), 'BH_DEVICE_FIELD', 'tags');
      await rejectsCode(store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve', thresholds: { maxSilentMs: 5 } }), 'BH_DEVICE_FIELD', 'thresholds.maxSilentMs');
      await rejectsCode(store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve', thresholds: { batteryFloor: -1 } }), 'BH_DEVICE_FIELD', 'thresholds.batteryFloor');
      assert.equal(await store.count(), 0);
    } finally {
      await store.close();
    }
  });

  test(`${name}: upsert creates, then reports unchanged, then updated with the fields that changed; absent fields are kept, empty ones cleared`, { skip }, async () => {
    const { store, clock } = await setup();
    try {
      const input = { id: '0D49', kind: 'opentrv', type: 'opentrv-valve', location: { building: 'u4', room: '302' }, description: 'by the window', thresholds: { maxSilentMs: 600_000 } };
      const a = await store.upsert(input);
      assert.equal(a.change, 'created');
      assert.equal(a.device.id, '0d49');
      clock.advance(1000);
      const b = await store.upsert(input);
      assert.equal(b.change, 'unchanged');
      assert.equal(b.device.updatedAt, T0);
      const c = await store.upsert({ id: '0d49', kind: 'opentrv', location: { room: '303' }, tags: ['north'] });
      assert.equal(c.change, 'updated');
      assert.deepEqual([...c.changed].sort(), ['location', 'tags']);
      assert.deepEqual(c.device.location, { building: 'u4', room: '303' });
      assert.equal(c.device.description, 'by the window');
      assert.equal(c.device.type, 'opentrv-valve');
      assert.equal(c.device.updatedAt, T0 + 1000);
      assert.equal(c.device.createdAt, T0);
      const d = await store.upsert({ id: '0d49', kind: 'opentrv', description: '', location: { room: '' }, thresholds: { maxSilentMs: null } });
      assert.deepEqual([...d.changed].sort(), ['description', 'location', 'thresholds']);
      assert.deepEqual(d.device.location, { building: 'u4' });
      assert.deepEqual(d.device.thresholds, {});
      assert.deepEqual(await store.get('0d49'), d.device);
    } finally {
      await store.close();
    }
  });

  test(`${name}: dry runs report what would happen and change nothing`, { skip }, async () => {
    const { store } = await setup();
    try {
      const created = await store.upsert({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve' }, { dryRun: true });
      assert.equal(created.change, 'created');
      assert.equal(await store.get('0d49'), undefined);
      await store.upsert({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve' });
      const updated = await store.upsert({ id: '0d49', kind: 'opentrv', tags: ['x'] }, { dryRun: true });
      assert.equal(updated.change, 'updated');
      assert.deepEqual((await store.get('0d49'))?.tags, []);
      const many = await store.upsertMany([{ id: '0d4a', kind: 'opentrv', type: 'opentrv-valve' }], { dryRun: true });
      assert.equal('ok' in many[0]! && many[0].ok.change, 'created');
      assert.equal(await store.count(), 1);
    } finally {
      await store.close();
    }
  });

  test(`${name}: upsertMany applies the good items and reports the bad one alone`, { skip }, async () => {
    const { store } = await setup();
    try {
      const out = await store.upsertMany([
        { id: '0d01', kind: 'opentrv', type: 'opentrv-valve' },
        { id: '0d02', kind: 'opentrv', type: 'nope' },
        { id: '0d03', kind: 'opentrv', type: 'opentrv-valve' },
      ]);
      assert.equal(out.length, 3);
      assert.ok('ok' in out[0]! && out[0].ok.change === 'created');
      assert.ok('error' in out[1]! && out[1].error.code === 'BH_DEVICE_TYPE');
      assert.ok('ok' in out[2]! && out[2].ok.change === 'created');
      assert.deepEqual((await store.list()).map((d) => d.id), ['0d01', '0d03']);
    } finally {
      await store.close();
    }
  });

  test(`${name}: update changes an existing device only, and checks the config against a new type`, { skip }, async () => {
    const { store } = await setup();
    try {
      await rejectsCode(store.update('0d49', { description: 'x' }), 'BH_DEVICE_NOT_FOUND');
      await store.create({ id: '0d49', kind: 'opentrv', type: 'generic', config: { colour: 'red' } });
      await rejectsCode(store.update('0d49', { type: 'opentrv-valve' }), 'BH_DEVICE_CONFIG', 'config.colour');
      const r = await store.update('0d49', { type: 'opentrv-valve', config: { targetC: 20 } });
      assert.equal(r.change, 'updated');
      assert.deepEqual(r.device.config, { targetC: 20 });
      assert.equal((await store.update('0d49', { config: { targetC: 20 } })).change, 'unchanged');
      await rejectsCode(store.update('0d49', { location: { room: 'x#' } }), 'BH_DEVICE_LOCATION', 'location.room');
    } finally {
      await store.close();
    }
  });

  test(`${name}: list filters by location (any case), type, state, enabled, tag and search, sorted and paged`, { skip }, async () => {
    const { store } = await setup();
    try {
      await store.upsertMany([
        { id: '0d01', kind: 'opentrv', type: 'opentrv-valve', location: { building: 'U4', room: '301' }, tags: ['south'] },
        { id: '0d02', kind: 'opentrv', type: 'opentrv-valve', location: { building: 'u4', room: '302' }, description: '50% open' },
        { id: 'aa:bb:cc:dd:ee:01', type: 'shutter', location: { site: 'rangueil', building: 'u4', room: '301' }, tags: ['south', 'lab'] },
        { id: 'weather-1', kind: 'other', type: 'generic', location: { building: 'outside', room: 'parking' }, enabled: false },
      ]);
      await store.setState('0d02', 'ACTIVE');
      const ids = async (f: Parameters<DeviceStore['list']>[0]) => (await store.list(f)).map((d) => d.id);
      assert.deepEqual(await ids({}), ['0d01', '0d02', 'aa:bb:cc:dd:ee:01', 'weather-1']);
      assert.deepEqual(await ids({ building: 'u4' }), ['0d01', '0d02', 'aa:bb:cc:dd:ee:01']);
      assert.deepEqual(await ids({ building: 'u4', room: '301' }), ['0d01', 'aa:bb:cc:dd:ee:01']);
      assert.deepEqual(await ids({ site: 'Rangueil' }), ['aa:bb:cc:dd:ee:01']);
      assert.deepEqual(await ids({ type: 'opentrv-valve' }), ['0d01', '0d02']);
      assert.deepEqual(await ids({ state: 'ACTIVE' }), ['0d02']);
      assert.deepEqual(await ids({ enabled: false }), ['weather-1']);
      assert.deepEqual(await ids({ tag: 'south' }), ['0d01', 'aa:bb:cc:dd:ee:01']);
      assert.deepEqual(await ids({ tag: 'sou' }), []);
      assert.deepEqual(await ids({ search: 'PARK' }), ['weather-1']);
      assert.deepEqual(await ids({ search: '50%' }), ['0d02']);
      assert.deepEqual(await ids({ search: '%' }), ['0d02']); // a literal %, not a wildcard
      assert.deepEqual(await ids({ search: 'lab' }), ['aa:bb:cc:dd:ee:01']);
      assert.deepEqual(await ids({ limit: 2, offset: 1 }), ['0d02', 'aa:bb:cc:dd:ee:01']);
      assert.equal(await store.count({ building: 'u4' }), 3);
    } finally {
      await store.close();
    }
  });

  test(`${name}: enabled and state; BLOCKED keeps its reason, other states clear it`, { skip }, async () => {
    const { store } = await setup();
    try {
      await store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve' });
      assert.equal((await store.setEnabled('0d49', false)).enabled, false);
      assert.equal((await store.get('0d49'))?.enabled, false);
      const blocked = await store.setState('0d49', 'BLOCKED', 'firmware too old');
      assert.equal(blocked.state, 'BLOCKED');
      assert.equal(blocked.blockedReason, 'firmware too old');
      const active = await store.setState('0d49', 'ACTIVE');
      assert.equal(active.state, 'ACTIVE');
      assert.equal(active.blockedReason, undefined);
      await rejectsCode(store.setState('0d4a', 'ACTIVE'), 'BH_DEVICE_NOT_FOUND');
      await rejectsCode(store.setEnabled('0d4a', true), 'BH_DEVICE_NOT_FOUND');
    } finally {
      await store.close();
    }
  });

  test(`${name}: touch keeps the newest last-seen time and the status as sent`, { skip }, async () => {
    const { store } = await setup();
    try {
      await store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve' });
      const status = { fw: '1.2.3', uptime: 42, sensors: [{ t: 'temp', ok: true }], note: null, 'odd key': 'é' };
      assert.equal(await store.touch('0d49', T0 + 100, status), true);
      let d = await store.get('0d49');
      assert.equal(d?.lastSeen, T0 + 100);
      assert.deepEqual(d?.lastStatus, status);
      assert.deepEqual(Object.keys(d?.lastStatus as object), Object.keys(status)); // key order kept
      // an older message (a replay) moves nothing back
      assert.equal(await store.touch('0d49', T0 + 50, { fw: 'old' }), true);
      d = await store.get('0d49');
      assert.equal(d?.lastSeen, T0 + 100);
      assert.deepEqual(d?.lastStatus, status);
      // a newer message without status keeps the status
      await store.touch('0d49', T0 + 200);
      d = await store.get('0d49');
      assert.equal(d?.lastSeen, T0 + 200);
      assert.deepEqual(d?.lastStatus, status);
      assert.equal(await store.touch('ffff', T0), false);
      assert.deepEqual(await store.touchMany([{ id: '0d49', at: T0 + 300, status: 'plain' }, { id: 'ffff', at: T0 }]), { known: 1, rejected: [] });
      d = await store.get('0d49');
      assert.equal(d?.lastStatus, 'plain');
      assert.equal(d?.updatedAt, T0); // runtime fields are not attribute changes
    } finally {
      await store.close();
    }
  });

  test(`${name}: touchMany rejects a bad item alone and writes the rest`, { skip }, async () => {
    const { store } = await setup();
    try {
      await store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve' });
      await store.create({ id: '0d4a', kind: 'opentrv', type: 'opentrv-valve' });
      await store.touch('0d4a', T0 + 10);
      // A status nested deeper than the stack allows (what a 100,000-deep JSON status parses to), and a NaN time.
      let deep: JsonValue = [];
      for (let i = 0; i < 100_000; i++) deep = [deep];
      const r = await store.touchMany([
        { id: '0d49', at: T0 + 100, status: deep },
        { id: '0d4a', at: Number.NaN },
        { id: '0d49', at: T0 + 100 },
        { id: '0d4a', at: T0 + 200, status: { ok: true } },
      ]);
      assert.equal(r.known, 2);
      assert.deepEqual(
        r.rejected.map((x) => [x.index, x.error.code, x.error.path]),
        [
          [0, 'BH_DEVICE_FIELD', 'lastStatus'],
          [1, 'BH_DEVICE_FIELD', 'lastSeen'],
        ],
      );
      const a = await store.get('0d49');
      assert.equal(a?.lastSeen, T0 + 100);
      assert.equal(a?.lastStatus, undefined);
      const b = await store.get('0d4a');
      assert.equal(b?.lastSeen, T0 + 200); // the NaN did not wipe it
      assert.deepEqual(b?.lastStatus, { ok: true });
    } finally {
      await store.close();
    }
  });

  test(`${name}: credentials: login by username, a pending password is delivered once, a reset invalidates`, { skip }, async () => {
    const { store } = await setup();
    try {
      await store.create({ id: 'aa:bb:cc:dd:ee:01', type: 'shutter' });
      await store.create({ id: 'aa:bb:cc:dd:ee:02', type: 'shutter' });
      assert.equal(await store.getByUsername('aa:bb:cc:dd:ee:01'), undefined);
      // bootstrap: nothing issued yet → the first claim wins, the second is refused
      assert.equal(await store.setCredentials('aa:bb:cc:dd:ee:01', { username: 'aa:bb:cc:dd:ee:01', hash: '$scrypt$h1', passwordIssued: true }, { onlyIfPending: true }), true);
      assert.equal(await store.setCredentials('aa:bb:cc:dd:ee:01', { username: 'aa:bb:cc:dd:ee:01', hash: '$scrypt$h2', passwordIssued: true }, { onlyIfPending: true }), false);
      const d = await store.getByUsername('aa:bb:cc:dd:ee:01');
      assert.equal(d?.id, 'aa:bb:cc:dd:ee:01');
      assert.equal(d?.credentials?.hash, '$scrypt$h1');
      assert.equal(d?.credentials?.passwordIssued, true);
      // reset: the hash is gone (the old password stops working), the next bootstrap call may deliver again
      const r = await store.resetCredentials('aa:bb:cc:dd:ee:01');
      assert.equal(r.credentials?.hash, undefined);
      assert.equal(r.credentials?.passwordIssued, false);
      assert.equal(r.credentials?.username, 'aa:bb:cc:dd:ee:01');
      assert.equal(await store.setCredentials('aa:bb:cc:dd:ee:01', { username: 'aa:bb:cc:dd:ee:01', hash: '$scrypt$h3', passwordIssued: true }, { onlyIfPending: true }), true);
      assert.equal((await store.get('aa:bb:cc:dd:ee:01'))?.credentials?.hash, '$scrypt$h3');
      // usernames are unique
      await rejectsCode(store.setCredentials('aa:bb:cc:dd:ee:02', { username: 'aa:bb:cc:dd:ee:01', hash: '$scrypt$x', passwordIssued: true }), 'BH_DEVICE_EXISTS', 'username');
      await rejectsCode(store.resetCredentials('ffff'), 'BH_DEVICE_NOT_FOUND');
    } finally {
      await store.close();
    }
  });

  test(`${name}: claim windows: opened for pending devices only, claimed once while open, closed by the claim; codes stored as given`, { skip }, async () => {
    const { store, clock } = await setup();
    try {
      await store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve' });
      await store.create({ id: '0d4a', kind: 'opentrv', type: 'opentrv-valve' });
      await store.create({ id: '0d4b', kind: 'opentrv', type: 'opentrv-valve' });
      await store.setCredentials('0d4b', { username: '0d4b', hash: '$scrypt$printed', passwordIssued: true });
      await store.replaceConfigDevices([{ id: '0d4c', kind: 'opentrv', type: 'opentrv-valve' }]);
      const creds = { username: '0d49', hash: '$scrypt$x' };
      assert.equal(await store.claimCredentials('0d49', creds, '10.0.0.9'), false, 'no window, no claim');
      await rejectsCode(store.openClaimWindows(['0d4b'], T0 + 1000), 'BH_DEVICE_CLAIMED', 'id');
      await rejectsCode(store.openClaimWindows(['0d4c'], T0 + 1000), 'BH_DEVICE_READ_ONLY', 'id');
      await rejectsCode(store.openClaimWindows(['0d4d'], T0 + 1000), 'BH_DEVICE_NOT_FOUND', 'id');
      assert.equal((await store.get('0d49'))?.claim, undefined, 'a refused batch opens nothing');
      assert.deepEqual(await store.openClaimWindows('unclaimed', T0 + 1000), ['0d49', '0d4a'], 'pending registry devices only');
      assert.deepEqual((await store.get('0d49'))?.claim, { until: T0 + 1000 });
      clock.advance(1000);
      assert.equal(await store.claimCredentials('0d49', creds, '10.0.0.9'), false, 'a window is open until its end, exclusive');
      assert.deepEqual(await store.openClaimWindows(['0d49'], T0 + 5000), ['0d49']);
      assert.equal(await store.claimCredentials('0d49', creds, '10.0.0.9'), true);
      assert.equal(await store.claimCredentials('0d49', creds, '10.0.0.8'), false, 'claimed once');
      const d = await store.get('0d49');
      assert.deepEqual(d?.claim, { claimedAt: T0 + 1000, claimedBy: '10.0.0.9' }, 'the claim closes the window');
      assert.deepEqual(d?.credentials, { username: '0d49', hash: '$scrypt$x', passwordIssued: true, updatedAt: T0 + 1000 });
      await store.setClaimCode('0d4a', '$scrypt$code');
      assert.deepEqual((await store.get('0d4a'))?.claim, { until: T0 + 1000, codeHash: '$scrypt$code' });
      assert.deepEqual(await store.closeClaimWindows('all'), ['0d4a']);
      assert.deepEqual((await store.get('0d4a'))?.claim, { codeHash: '$scrypt$code' });
      await store.setClaimCode('0d4a', undefined);
      assert.equal((await store.get('0d4a'))?.claim, undefined);
      await rejectsCode(store.setClaimCode('0d4c', '$scrypt$code'), 'BH_DEVICE_READ_ONLY', 'id');
      await store.resetCredentials('0d49');
      assert.equal((await store.get('0d49'))?.claim, undefined, 'a reset forgets the last claim');
    } finally {
      await store.close();
    }
  });

  test(`${name}: changeToken moves with every change of what a device is, not with last-seen times, statuses or the audit log`, { skip }, async () => {
    const { store, clock } = await setup();
    try {
      let last = await store.changeToken();
      const moved = async (what: string, change: () => Promise<unknown>, expected = true) => {
        await change();
        const now = await store.changeToken();
        assert.equal(now !== last, expected, `${what}: the token ${expected ? 'moves' : 'stays'}`);
        last = now;
      };
      await moved('create', () => store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve' }));
      await moved('touch', () => store.touch('0d49', T0 + 1, { ok: true }), false);
      await moved('touchMany', () => store.touchMany([{ id: '0d49', at: T0 + 2 }, { id: '0d49', at: T0 + 3, status: 'x' }]), false);
      await moved('appendAudit', () => store.appendAudit({ actor: 'cli:alice', action: 'device.add', device: '0d49' }), false);
      await moved('an unchanged upsert', () => store.upsert({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve' }), false);
      await moved('upsert (moved)', () => store.upsert({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve', location: { building: 'u4', room: '302' } }));
      await moved('upsertMany', () => store.upsertMany([{ id: '0d4a', kind: 'opentrv', type: 'opentrv-valve' }]));
      await moved('update', () => store.update('0d49', { thresholds: { maxSilentMs: 60_000 } }));
      await moved('setEnabled', () => store.setEnabled('0d49', false));
      await moved('setState', () => store.setState('0d49', 'BLOCKED', 'test'));
      await moved('setCredentials', () => store.setCredentials('0d49', { username: '0d49', hash: '$scrypt$h', passwordIssued: true }));
      await moved('rehashCredentials', () => store.rehashCredentials([{ id: '0d49', from: '$scrypt$h', to: '$scrypt$h2' }]));
      await moved('resetCredentials', () => store.resetCredentials('0d49'));
      await moved('openClaimWindows', () => store.openClaimWindows(['0d4a'], T0 + 1000));
      clock.advance(10);
      await moved('claimCredentials', () => store.claimCredentials('0d4a', { username: '0d4a', hash: '$scrypt$x' }, '10.0.0.9'));
      await moved('replaceConfigDevices', () => store.replaceConfigDevices([{ id: '0d4c', kind: 'opentrv', type: 'opentrv-valve' }]));
      await moved('remove', () => store.remove('0d49'));
      await moved('remove of no device', () => store.remove('0d49'), false);
    } finally {
      await store.close();
    }
  });

  test(`${name}: remove`, { skip }, async () => {
    const { store } = await setup();
    try {
      await store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve' });
      assert.equal(await store.remove('0d49'), true);
      assert.equal(await store.remove('0d49'), false);
      assert.equal(await store.get('0d49'), undefined);
    } finally {
      await store.close();
    }
  });

  test(`${name}: config devices are read-only to operators, keep what the hub records, and follow the config`, { skip }, async () => {
    const { store, clock } = await setup();
    try {
      await store.create({ id: 'aa:bb:cc:dd:ee:09', type: 'shutter' }); // will be adopted by the config
      const first = await store.replaceConfigDevices([
        { id: '0d49', kind: 'opentrv', type: 'opentrv-valve', location: { building: 'home', room: 'kitchen' }, credentials: { username: 'kitchen-valve', hash: '$scrypt$c1' } },
        { id: 'aa:bb:cc:dd:ee:09', type: 'shutter' },
      ]);
      assert.deepEqual(first.created, ['0d49']);
      assert.deepEqual(first.adopted, ['aa:bb:cc:dd:ee:09']);
      const d = await store.get('0d49');
      assert.equal(d?.source, 'config');
      assert.equal(d?.credentials?.username, 'kitchen-valve');
      assert.equal((await store.getByUsername('kitchen-valve'))?.id, '0d49');
      assert.equal((await store.get('aa:bb:cc:dd:ee:09'))?.source, 'config');
      // operators cannot change them
      await rejectsCode(store.update('0d49', { description: 'x' }), 'BH_DEVICE_READ_ONLY');
      await rejectsCode(store.upsert({ id: '0d49', kind: 'opentrv', description: 'x' }), 'BH_DEVICE_READ_ONLY');
      await rejectsCode(store.setEnabled('0d49', false), 'BH_DEVICE_READ_ONLY');
      await rejectsCode(store.remove('0d49'), 'BH_DEVICE_READ_ONLY');
      await rejectsCode(store.setCredentials('0d49', { username: 'x', hash: '$scrypt$x', passwordIssued: true }), 'BH_DEVICE_READ_ONLY');
      await rejectsCode(store.resetCredentials('0d49'), 'BH_DEVICE_READ_ONLY');
      const many = await store.upsertMany([{ id: '0d49', kind: 'opentrv', description: 'x' }]);
      assert.ok('error' in many[0]! && many[0].error.code === 'BH_DEVICE_READ_ONLY');
      // the hub records runtime facts about them
      await store.touch('0d49', T0 + 5, { fw: '2' });
      await store.setState('0d49', 'ACTIVE');
      clock.advance(1000);
      // the same config again changes nothing and keeps those facts
      const again = await store.replaceConfigDevices([
        { id: '0d49', kind: 'opentrv', type: 'opentrv-valve', location: { building: 'home', room: 'kitchen' }, credentials: { username: 'kitchen-valve', hash: '$scrypt$c1' } },
        { id: 'aa:bb:cc:dd:ee:09', type: 'shutter' },
      ]);
      assert.deepEqual(again.unchanged, ['0d49', 'aa:bb:cc:dd:ee:09']);
      assert.deepEqual([...again.created, ...again.updated, ...again.removed, ...again.adopted], []);
      const kept = await store.get('0d49');
      assert.equal(kept?.lastSeen, T0 + 5);
      assert.equal(kept?.state, 'ACTIVE');
      assert.equal(kept?.updatedAt, T0);
      // a bad config changes nothing at all
      await rejectsCode(
        store.replaceConfigDevices([{ id: '0d49', kind: 'opentrv', type: 'opentrv-valve' }, { id: '0D49', kind: 'opentrv', type: 'opentrv-valve' }]),
        'BH_DEVICE_EXISTS',
        'devices[1].id',
      );
      await rejectsCode(store.replaceConfigDevices([{ id: '0d49', kind: 'opentrv', type: 'opentrv-valve', location: { room: 'a/b' } }]), 'BH_DEVICE_LOCATION', 'devices[0].location.room');
      assert.equal(await store.count({ source: 'config' }), 2);
      // a device taken out of the config goes
      const last = await store.replaceConfigDevices([{ id: '0d49', kind: 'opentrv', type: 'opentrv-valve', location: { building: 'home', room: 'hall' } }]);
      assert.deepEqual(last.updated, ['0d49']);
      assert.deepEqual(last.removed, ['aa:bb:cc:dd:ee:09']);
      assert.equal((await store.get('0d49'))?.credentials, undefined); // no credentials in the config: none
      assert.equal(await store.getByUsername('kitchen-valve'), undefined);
    } finally {
      await store.close();
    }
  });

  test(`${name}: a device's client certificate: set by fingerprint, found by it, one device each, removed; refused for config devices`, { skip }, async () => {
    const { store, clock } = await setup();
    const fp = (c: string) => c.repeat(64);
    try {
      await store.create({ id: 'aa:bb:cc:dd:ee:01', type: 'shutter' });
      await store.create({ id: 'aa:bb:cc:dd:ee:02', type: 'shutter' });
      await store.replaceConfigDevices([{ id: '0d49', kind: 'opentrv', type: 'opentrv-valve' }]);
      assert.equal((await store.get('aa:bb:cc:dd:ee:01'))?.certificate, undefined);
      clock.advance(5);
      const d = await store.setCertificate('aa:bb:cc:dd:ee:01', fp('a'));
      assert.deepEqual(d.certificate, { fingerprint: fp('a'), updatedAt: T0 + 5 });
      assert.equal((await store.getByCertificate(fp('a')))?.id, 'aa:bb:cc:dd:ee:01');
      assert.equal(await store.getByCertificate(fp('b')), undefined);
      await rejectsCode(store.setCertificate('aa:bb:cc:dd:ee:02', fp('a')), 'BH_DEVICE_EXISTS', 'fingerprint');
      await rejectsCode(store.setCertificate('aa:bb:cc:dd:ee:02', 'AB:CD'), 'BH_DEVICE_CERTIFICATE', 'fingerprint');
      await rejectsCode(store.setCertificate('0d49', fp('c')), 'BH_DEVICE_READ_ONLY', 'id');
      await rejectsCode(store.setCertificate('ffff', fp('c')), 'BH_DEVICE_NOT_FOUND', 'id');
      let last = await store.changeToken();
      clock.advance(5);
      assert.deepEqual((await store.setCertificate('aa:bb:cc:dd:ee:01', fp('b'))).certificate, { fingerprint: fp('b'), updatedAt: T0 + 10 }, 'a renewed certificate replaces the old');
      assert.notEqual(await store.changeToken(), last, 'a new certificate moves the change token (the broker takes it at its next refresh)');
      last = await store.changeToken();
      assert.equal((await store.setCertificate('aa:bb:cc:dd:ee:01', undefined)).certificate, undefined);
      assert.equal(await store.getByCertificate(fp('b')), undefined);
      assert.notEqual(await store.changeToken(), last);
    } finally {
      await store.close();
    }
  });

  test(`${name}: rehashCredentials replaces a registry device's hash only while it is still the old one, keeping when the login was set`, { skip }, async () => {
    const { store, clock } = await setup();
    try {
      await store.create({ id: 'aa:bb:cc:dd:ee:01', type: 'shutter' });
      await store.create({ id: 'aa:bb:cc:dd:ee:02', type: 'shutter' });
      await store.setCredentials('aa:bb:cc:dd:ee:01', { username: 'aa:bb:cc:dd:ee:01', hash: '$scrypt$old1', passwordIssued: true });
      await store.setCredentials('aa:bb:cc:dd:ee:02', { username: 'aa:bb:cc:dd:ee:02', hash: '$scrypt$old2', passwordIssued: true });
      await store.replaceConfigDevices([{ id: '0d49', kind: 'opentrv', type: 'opentrv-valve', credentials: { username: 'valve', hash: '$scrypt$person' } }]);
      const setAt = (await store.get('aa:bb:cc:dd:ee:01'))?.credentials?.updatedAt;
      clock.advance(60_000);
      // The second device's password was reset and set anew since its old hash was read: that one is left alone.
      await store.setCredentials('aa:bb:cc:dd:ee:02', { username: 'aa:bb:cc:dd:ee:02', hash: '$scrypt$new2', passwordIssued: true });
      const n = await store.rehashCredentials([
        { id: 'aa:bb:cc:dd:ee:01', from: '$scrypt$old1', to: '$hmac-sha256$fast1' },
        { id: 'aa:bb:cc:dd:ee:02', from: '$scrypt$old2', to: '$hmac-sha256$fast2' },
        { id: '0d49', from: '$scrypt$person', to: '$hmac-sha256$fast3' },
        { id: 'ffff', from: '$scrypt$x', to: '$hmac-sha256$x' },
      ]);
      assert.equal(n, 1);
      const one = await store.get('aa:bb:cc:dd:ee:01');
      assert.equal(one?.credentials?.hash, '$hmac-sha256$fast1');
      assert.equal(one?.credentials?.updatedAt, setAt, 'the login keeps its time: connections made with it keep their rights');
      assert.equal(one?.credentials?.passwordIssued, true);
      assert.equal((await store.get('aa:bb:cc:dd:ee:02'))?.credentials?.hash, '$scrypt$new2');
      assert.equal((await store.get('0d49'))?.credentials?.hash, '$scrypt$person', 'a config device\'s password is a person\'s');
      assert.equal(await store.rehashCredentials([]), 0);
    } finally {
      await store.close();
    }
  });

  if (maker.reopen) {
    const reopen = maker.reopen.bind(maker);
    test(`${name}: everything survives a reopen`, { skip }, async () => {
      const { store, clock, types } = await setup();
      await store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve', location: { building: 'u4', room: '302' }, tags: ['a'], config: { targetC: 19.5 } });
      await store.touch('0d49', T0 + 1, { ok: true });
      await store.setCredentials('0d49', { username: '0d49', hash: '$scrypt$h', passwordIssued: true });
      await store.appendAudit({ actor: 'cli:alice', action: 'device.add', device: '0d49' });
      const before = await store.get('0d49');
      const again = await reopen(store, { types, clock });
      try {
        assert.deepEqual(await again.get('0d49'), before);
        assert.equal((await again.listAudit()).length, 1);
      } finally {
        await again.close();
      }
    });
  }
}

/** A part's suite is given a fresh, empty part (on its own, or a whole store) for each test. */
type Closable<T> = T & { close(): Promise<void> };

/** Every AuditLog: entries kept as appended, listed newest first, filtered. */
export function auditLogConformance(name: string, make: (clock: Clock) => Promise<Closable<AuditLog>>, opts: SuiteOptions = {}): void {
  const skip = opts.skip ?? false;
  test(`${name}: the audit log keeps who did what, newest first`, { skip }, async () => {
    const clock = new ManualClock(T0);
    const store = await make(clock);
    try {
      const a = await store.appendAudit({ actor: 'cli:alice', action: 'device.add', device: '0d49', detail: { type: 'opentrv-valve' }, result: 'ok' });
      assert.equal(a.at, T0);
      clock.advance(10);
      assert.equal(
        await store.appendAuditMany([
          { actor: 'cli:bob', action: 'device.set', device: '0d49', detail: { changed: ['tags'] } },
          { actor: 'cli:bob', action: 'device.add', device: '0d4a' },
        ]),
        2,
      );
      const all = await store.listAudit();
      assert.deepEqual(all.map((e) => e.action), ['device.add', 'device.set', 'device.add']);
      assert.ok(all[0]!.seq > all[1]!.seq);
      const mine = await store.listAudit({ device: '0d49' });
      assert.deepEqual(mine.map((e) => [e.actor, e.action, e.at]), [['cli:bob', 'device.set', T0 + 10], ['cli:alice', 'device.add', T0]]);
      assert.deepEqual(mine[1]!.detail, { type: 'opentrv-valve' });
      assert.equal(mine[1]!.result, 'ok');
      assert.equal((await store.listAudit({ limit: 1 })).length, 1);
      assert.equal((await store.listAudit({ since: T0 + 5 })).length, 2);
      assert.equal((await store.listAudit({ action: 'device.add' })).length, 2);
    } finally {
      await store.close();
    }
  });
}

/** Every OrderLog: orders recorded once, settled once, listed newest first, filtered. */
export function orderLogConformance(name: string, make: (clock: Clock) => Promise<Closable<OrderLog>>, opts: SuiteOptions = {}): void {
  const skip = opts.skip ?? false;
  test(`${name}: orders are recorded as sent and settled once; listed newest first, by device and status`, { skip }, async () => {
    const clock = new ManualClock(T0);
    const store = await make(clock);
    try {
      const base = { params: { delay: 5 }, actor: 'cli:alice', topic: 'u4/302/valve/command', dest: '0d49' };
      const c1 = await store.recordCommand({ ...base, id: 'c1', device: '0d49', order: 'reboot' });
      assert.deepEqual(c1, { ...base, id: 'c1', device: '0d49', order: 'reboot', sentAt: T0, status: 'sent' });
      clock.advance(10);
      await store.recordCommand({ ...base, id: 'c2', device: '0d4a', order: 'reinstall', params: {} });
      await rejectsCode(store.recordCommand({ ...base, id: 'c1', device: '0d49', order: 'reboot' }), 'BH_DEVICE_EXISTS', 'id');
      clock.advance(5);
      const acked = await store.settleCommand('c1', 'acknowledged', { ack: 'c1', result: 'ok' });
      assert.equal(acked?.status, 'acknowledged');
      assert.equal(acked?.doneAt, T0 + 15);
      assert.deepEqual(acked?.result, { ack: 'c1', result: 'ok' });
      // Settled once: a late expiry changes nothing.
      const late = await store.settleCommand('c1', 'expired', 'no answer', T0 + 99);
      assert.equal(late?.status, 'acknowledged');
      assert.equal(late?.doneAt, T0 + 15);
      assert.equal(await store.settleCommand('nope', 'failed'), undefined);
      assert.deepEqual((await store.listCommands()).map((c) => c.id), ['c2', 'c1']);
      assert.deepEqual((await store.listCommands({ device: '0d49' })).map((c) => c.id), ['c1']);
      assert.deepEqual((await store.listCommands({ status: 'sent' })).map((c) => c.id), ['c2']);
      assert.equal((await store.listCommands({ limit: 1 })).length, 1);
      assert.deepEqual(await store.getCommand('c2'), { ...base, id: 'c2', device: '0d4a', order: 'reinstall', params: {}, sentAt: T0 + 10, status: 'sent' });
    } finally {
      await store.close();
    }
  });
}
