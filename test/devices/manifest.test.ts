// Bulk provisioning: CSV (RFC 4180 quoting) and JSON lines; idempotent imports; a result per row with its line
// number; a bad row reported without stopping the good ones; dry runs change nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { importManifest, parseCsv, type ImportReport } from '../../src/devices/manifest.js';
import { registryPath, SqliteDeviceStore } from '../../src/devices/store/index.js';
import { tempDir } from '../helpers/context.js';
import { rejectsCode } from './store-conformance.js';

function openStore(): SqliteDeviceStore {
  return SqliteDeviceStore.open(registryPath(tempDir('backhaul-manifest-').path), { types: new DeviceTypes() });
}

const statuses = (r: ImportReport) => r.rows.map((x) => [x.line, x.status]);

const CSV = `id,kind,type,site,building,room,description,tags,enabled,maxSilent,batteryFloor
AA-BB-CC-DD-EE-01,mac,shutter,,u4,301,"South window, left",south;floor3,yes,,
D49,opentrv,opentrv-valve,,u4,302,"The ""big"" radiator",,true,20m,2.5
70B3D57ED0001234,deveui,lorawan-sensor,rangueil,outside,parking,soil moisture,lora,no,3h,
123E4567-E89B-12D3-A456-426614174000,,room-sensor,,u4,303,,,1,,
`;

test('CSV reader: quoted fields with delimiters, doubled quotes and newlines; CRLF; BOM; comments; line numbers', () => {
  const text = '\uFEFFid,description\r\n# a comment\r\n\r\n0d01,"a, b"\r\n0d02,"say ""hi"""\r\n0d03,"two\r\nlines"\r\n0d04, plain \r\n';
  const recs = parseCsv(text);
  assert.deepEqual(
    recs.map((r) => [r.line, r.cells]),
    [
      [1, ['id', 'description']],
      [4, ['0d01', 'a, b']],
      [5, ['0d02', 'say "hi"']],
      [6, ['0d03', 'two\nlines']],
      [8, ['0d04', 'plain']],
    ],
  );
  assert.deepEqual(parseCsv('id;tags\n0d01;"a;b"\n').map((r) => r.cells), [['id', 'tags'], ['0d01', 'a;b']]); // French spreadsheets
  assert.deepEqual(parseCsv('id\ttags\n0d01\tx\n').map((r) => r.cells), [['id', 'tags'], ['0d01', 'x']]);
  assert.deepEqual(parseCsv('a,b\n1,\n').map((r) => r.cells), [['a', 'b'], ['1', '']]);
  const stray = parseCsv('id,description\n0d01,"a"b\n0d02,ok\n');
  assert.match(stray[1]!.error ?? '', /after a closing quote/);
  assert.deepEqual(stray[2]!.cells, ['0d02', 'ok']);
  const open = parseCsv('id,description\n0d01,ok\n0d02,"never closed\n0d03,x\n');
  assert.equal(open[1]!.error, undefined);
  assert.match(open[2]!.error ?? '', /opened on line 3 is never closed/);
});

test('importing the same CSV twice: all created, then all unchanged; nothing audited the second time', async () => {
  const store = openStore();
  try {
    const first = await importManifest(store, CSV, { actor: 'cli:test', source: 'devices.csv' });
    assert.equal(first.format, 'csv');
    assert.deepEqual(statuses(first), [[2, 'created'], [3, 'created'], [4, 'created'], [5, 'created']]);
    assert.deepEqual(first.rows.map((r) => r.id), ['aa:bb:cc:dd:ee:01', '0d49', '70b3d57ed0001234', '123e4567-e89b-12d3-a456-426614174000']);
    const shutter = await store.get('aa:bb:cc:dd:ee:01');
    assert.equal(shutter?.description, 'South window, left');
    assert.deepEqual(shutter?.tags, ['floor3', 'south']);
    const valve = await store.get('0d49');
    assert.equal(valve?.description, 'The "big" radiator');
    assert.deepEqual(valve?.thresholds, { maxSilentMs: 20 * 60_000, batteryFloor: 2.5 });
    const lora = await store.get('70b3d57ed0001234');
    assert.deepEqual(lora?.location, { site: 'rangueil', building: 'outside', room: 'parking' });
    assert.equal(lora?.enabled, false);
    assert.equal((await store.get('123e4567-e89b-12d3-a456-426614174000'))?.kind, 'uuid'); // kind guessed
    const audits = await store.listAudit();
    assert.equal(audits.length, 4);
    assert.equal(audits[0]!.actor, 'cli:test');
    assert.equal(audits[0]!.action, 'device.import');

    const second = await importManifest(store, CSV, { actor: 'cli:test' });
    assert.deepEqual(statuses(second), [[2, 'unchanged'], [3, 'unchanged'], [4, 'unchanged'], [5, 'unchanged']]);
    assert.deepEqual(second.counts, { created: 0, updated: 0, unchanged: 4, error: 0 });
    assert.equal((await store.listAudit()).length, 4);
  } finally {
    await store.close();
  }
});

test('a bad row is reported with its line number and column; the good rows are imported', async () => {
  const store = openStore();
  try {
    const text = [
      'id,kind,type,building,room,maxSilent,batteryFloor',
      '0d01,opentrv,opentrv-valve,u4,301,,',
      '0d02,opentrv,opentrv-valve,u4,a/b,,', // line 3: room
      '0d03,opentrv,opentrv-vale,u4,303,,', // line 4: type
      '0d04,opentrv,opentrv-valve,u4,304,soon,', // line 5: maxSilent
      '0d05,opentrv,opentrv-valve,u4,305,,lots', // line 6: batteryFloor
      'zz,opentrv,opentrv-valve,u4,306,,', // line 7: id
      '0d07,opentrv,opentrv-valve,u4,307', // line 8: too few cells
      '0D01,opentrv,opentrv-valve,u4,301,,', // line 9: duplicate of line 2
      '0d09,opentrv,opentrv-valve,u4,309,,',
    ].join('\n');
    const r = await importManifest(store, text);
    assert.deepEqual(statuses(r), [
      [2, 'created'],
      [3, 'error'],
      [4, 'error'],
      [5, 'error'],
      [6, 'error'],
      [7, 'error'],
      [8, 'error'],
      [9, 'error'],
      [10, 'created'],
    ]);
    const err = (line: number) => r.rows.find((x) => x.line === line)!.error!;
    assert.equal(err(3).code, 'BH_DEVICE_LOCATION');
    assert.equal(err(3).path, 'room');
    assert.match(err(3).toString(), /^BH_DEVICE_LOCATION room: "a\/b" must not contain/);
    assert.equal(err(4).code, 'BH_DEVICE_TYPE');
    assert.match(err(4).message, /did you mean "opentrv-valve"/);
    assert.deepEqual([err(5).code, err(5).path], ['BH_DEVICE_FIELD', 'maxSilent']);
    assert.deepEqual([err(6).code, err(6).path], ['BH_DEVICE_FIELD', 'batteryFloor']);
    assert.deepEqual([err(7).code, err(7).path], ['BH_DEVICE_ID', 'id']);
    assert.equal(err(8).code, 'BH_MANIFEST_FORMAT');
    assert.deepEqual([err(9).code, err(9).path], ['BH_MANIFEST_DUPLICATE', 'id']);
    assert.match(err(9).message, /already on line 2/);
    assert.deepEqual((await store.list()).map((d) => d.id), ['0d01', '0d09']);
    assert.deepEqual(r.counts, { created: 2, updated: 0, unchanged: 0, error: 7 });
  } finally {
    await store.close();
  }
});

test('a dry run changes nothing and says what would happen', async () => {
  const store = openStore();
  try {
    const dry = await importManifest(store, CSV, { dryRun: true });
    assert.equal(dry.dryRun, true);
    assert.deepEqual(dry.counts, { created: 4, updated: 0, unchanged: 0, error: 0 });
    assert.equal(await store.count(), 0);
    assert.equal((await store.listAudit()).length, 0);
    await importManifest(store, CSV);
    const changed = CSV.replace('u4,302,', 'u4,312,');
    const dry2 = await importManifest(store, changed, { dryRun: true });
    assert.deepEqual(dry2.counts, { created: 0, updated: 1, unchanged: 3, error: 0 });
    assert.deepEqual(dry2.rows[1]!.changed, ['location']);
    assert.equal((await store.get('0d49'))?.location.room, '302');
    const real = await importManifest(store, changed);
    assert.deepEqual(real.rows[1]!.changed, ['location']);
    assert.equal((await store.get('0d49'))?.location.room, '312');
  } finally {
    await store.close();
  }
});

test('columns a manifest leaves out are kept; an empty cell clears', async () => {
  const store = openStore();
  try {
    await store.create({ id: '0d49', kind: 'opentrv', type: 'opentrv-valve', description: 'set by hand', tags: ['x'], location: { building: 'u4', room: '302' } });
    const r = await importManifest(store, 'id,kind,room\n0d49,opentrv,303\n');
    assert.deepEqual(r.rows[0]!.changed, ['location']);
    const d = await store.get('0d49');
    assert.equal(d?.description, 'set by hand');
    assert.deepEqual(d?.tags, ['x']);
    assert.deepEqual(d?.location, { building: 'u4', room: '303' });
    await importManifest(store, 'id,kind,tags,description\n0d49,opentrv,,\n');
    const e = await store.get('0d49');
    assert.deepEqual(e?.tags, []);
    assert.equal(e?.description, '');
    // without a kind column, a bare-hex id names the registered device; an unknown one needs its kind
    const moved = await importManifest(store, 'id,room\nD49,304\n0d4f,1\n');
    assert.equal(moved.rows[0]!.status, 'updated');
    assert.equal((await store.get('0d49'))?.location.room, '304');
    assert.deepEqual([moved.rows[1]!.error?.code, moved.rows[1]!.error?.path], ['BH_DEVICE_ID', 'kind']);
    // a new device needs a type
    const noType = await importManifest(store, 'id,kind\n0d4a,opentrv\n');
    assert.deepEqual([noType.rows[0]!.error?.code, noType.rows[0]!.error?.path], ['BH_DEVICE_TYPE', 'type']);
  } finally {
    await store.close();
  }
});

test('a bad header is an error for the whole file, naming the column', async () => {
  const store = openStore();
  try {
    const e = await rejectsCode(importManifest(store, 'id,type,romm\n0d49,generic,1\n'), 'BH_MANIFEST_FORMAT', 'line 1');
    assert.match(e.message, /unknown column "romm" \(did you mean "room"\?\)/);
    await rejectsCode(importManifest(store, 'type,room\ngeneric,1\n'), 'BH_MANIFEST_FORMAT');
    await rejectsCode(importManifest(store, 'id,room,Room\n'), 'BH_MANIFEST_FORMAT');
    await rejectsCode(importManifest(store, '\n# nothing\n', { format: 'csv' }), 'BH_MANIFEST_FORMAT');
    // header names are forgiving about case and separators
    const ok = await importManifest(store, 'ID,Kind,Type,Max_Silent,battery-floor\n0d49,opentrv,opentrv-valve,1h,2.2\n');
    assert.equal(ok.rows[0]!.status, 'created');
    assert.deepEqual((await store.get('0d49'))?.thresholds, { maxSilentMs: 3_600_000, batteryFloor: 2.2 });
  } finally {
    await store.close();
  }
});

test('JSON lines: the same fields, with arrays, numbers and a config; bad lines reported alone', async () => {
  const store = openStore();
  try {
    const text = [
      '{"id":"0d49","kind":"opentrv","type":"opentrv-valve","building":"u4","room":"302","tags":["a","b"],"maxSilent":600000,"config":{"targetC":20}}',
      '# comment',
      '{"id":"aa:bb:cc:dd:ee:01","type":"shutter","building":"u4","room":"301","enabled":false,"maxSilent":"2h","tags":"x;y"}',
      'not json',
      '["an","array"]',
      '{"id":"0d4a","kind":"opentrv","type":"opentrv-valve","colour":"red"}',
      '{"id":"0d4b","kind":"opentrv","type":"opentrv-valve","config":{"targetC":99}}',
      '{"id":"0d4c","kind":"opentrv","type":"opentrv-valve","building":"u4","room":"#"}',
    ].join('\n');
    const r = await importManifest(store, text, { source: 'devices.jsonl' });
    assert.equal(r.format, 'jsonl');
    assert.deepEqual(statuses(r), [[1, 'created'], [3, 'created'], [4, 'error'], [5, 'error'], [6, 'error'], [7, 'error'], [8, 'error']]);
    const err = (line: number) => r.rows.find((x) => x.line === line)!.error!;
    assert.equal(err(4).code, 'BH_MANIFEST_FORMAT');
    assert.equal(err(5).code, 'BH_MANIFEST_FORMAT');
    assert.deepEqual([err(6).code, err(6).path], ['BH_MANIFEST_FORMAT', 'colour']);
    assert.deepEqual([err(7).code, err(7).path], ['BH_DEVICE_CONFIG', 'config.targetC']);
    assert.deepEqual([err(8).code, err(8).path], ['BH_DEVICE_LOCATION', 'room']);
    const valve = await store.get('0d49');
    assert.deepEqual(valve?.config, { targetC: 20 });
    assert.deepEqual(valve?.tags, ['a', 'b']);
    assert.equal(valve?.thresholds.maxSilentMs, 600_000);
    const shutter = await store.get('aa:bb:cc:dd:ee:01');
    assert.equal(shutter?.enabled, false);
    assert.deepEqual(shutter?.tags, ['x', 'y']);
    assert.equal(shutter?.thresholds.maxSilentMs, 7_200_000);
    const again = await importManifest(store, text);
    assert.deepEqual(again.counts, { created: 0, updated: 0, unchanged: 2, error: 5 });
  } finally {
    await store.close();
  }
});

test('config devices cannot be changed by a manifest', async () => {
  const store = openStore();
  try {
    await store.replaceConfigDevices([{ id: '0d49', kind: 'opentrv', type: 'opentrv-valve' }]);
    const r = await importManifest(store, 'id,kind,room\n0d49,opentrv,1\n');
    assert.equal(r.rows[0]!.error?.code, 'BH_DEVICE_READ_ONLY');
  } finally {
    await store.close();
  }
});

test('a large manifest is imported in one transaction', async () => {
  const store = openStore();
  try {
    const lines = ['id,kind,type,building,room'];
    for (let i = 0; i < 2000; i++) lines.push(`${(0x1000 + i).toString(16)},opentrv,opentrv-valve,b${i % 7},r${i % 50}`);
    const t0 = Date.now();
    const r = await importManifest(store, lines.join('\n'));
    assert.equal(r.counts.created, 2000);
    assert.equal(await store.count(), 2000);
    const again = await importManifest(store, lines.join('\n'));
    assert.equal(again.counts.unchanged, 2000);
    assert.ok(Date.now() - t0 < 20_000, `took ${Date.now() - t0} ms`);
  } finally {
    await store.close();
  }
});
