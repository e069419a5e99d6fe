import { test } from 'node:test';
import { createWithDefaults } from '../helpers/options.js';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  decodeSenmlPayload,
  resolveSenml,
  senmlDecoder,
  type ResolvedRecord,
} from '../../src/decoders/senml/index.js';
import type { DecodeResult } from '../../src/core/driver.js';
import type { Frame, Reading } from '../../src/core/types.js';
import { throwsCode } from '../helpers/assert.js';

// Tests run from dist/test/decoders/, the fixtures stay in test/fixtures/.
const fixture = (name: string): URL => new URL(`../../../test/fixtures/senml/${name}`, import.meta.url);
const readJson = (name: string): unknown => JSON.parse(readFileSync(fixture(name), 'utf8')) as unknown;
const resolvedFile = (name: string): ResolvedRecord[] => readJson(name) as ResolvedRecord[];

/** A fixed "now" for every test: 2024-05-01T12:00:00.250Z. */
const NOW = Date.UTC(2024, 4, 1, 12, 0, 0, 250);
const NOW_S = NOW / 1000;

const decode = createWithDefaults(senmlDecoder, {});
const frame = (payload: string | Uint8Array, extra: Partial<Frame> = {}): Frame => ({ input: 'http', payload, receivedAt: NOW, ...extra });

function readings(r: DecodeResult): readonly Reading[] {
  assert.ok('readings' in r, `expected readings, got ${JSON.stringify(r)}`);
  return r.readings;
}


const resolve = (pack: unknown): ResolvedRecord[] => resolveSenml(pack, NOW);

// ---------------------------------------------------------------- the RFC 8428 examples

// Examples whose records carry no time: the resolved files hold the generation time as "now", the same literal in
// every record. Ours must hold our "now" instead.
const NOW_EXAMPLES = new Set(['ex1', 'ex2', 'ex7', 'ex9']);

function expectedFor(ex: string): ResolvedRecord[] {
  const file = resolvedFile(`${ex}.gen.resolved.json`);
  if (!NOW_EXAMPLES.has(ex)) return file;
  const generated = file[0]?.t;
  assert.ok(typeof generated === 'number' && generated >= 2 ** 28, `${ex}: the file's "now" is an absolute time`);
  return file.map((r) => {
    assert.equal(r.t, generated, `${ex}: every record of the file has the same "now"`);
    return { ...r, t: NOW_S };
  });
}

for (const ex of ['ex1', 'ex2', 'ex4', 'ex5', 'ex6', 'ex8', 'ex9', 'ex10', 'ex11', 'ex12']) {
  void test(`${ex}.gen.json resolves to ${ex}.gen.resolved.json`, () => {
    assert.deepEqual(resolve(readJson(`${ex}.gen.json`)), expectedFor(ex));
  });
}

test('ex8: the unknown label `l` is ignored, not interpreted, and passes through to the resolved record', () => {
  const got = resolve(readJson('ex8.gen.json'));
  assert.equal(got[0]?.l, '[{"href":"humidity","foo":"bar"}]');
  assert.ok(!('l' in (got[1] ?? {})), 'only the record that had it');
});

test('ex7: our resolved records are the file plus the `vd` record the file leaves out', () => {
  // The generator of ex7.gen.resolved.json dropped the Data Value record; RFC 8428 §4.6 gives no reason to, and
  // §5.1.5 shows it as one of four records, so we keep it.
  const expected = [
    ...expectedFor('ex7'),
    { n: 'urn:dev:ow:10e2073a01080063:nfv-reader', t: NOW_S, vd: 'aGkgCg' },
  ];
  const got = resolve(readJson('ex7.gen.json'));
  assert.equal(got.length, 4);
  assert.deepEqual(got, expected);
});

test('ex3 (bver 5): the file plus `bver: 5` in every record, as RFC 8428 §4.6 requires for a version other than 10', () => {
  // §4.6: "The Version field MUST NOT be present in resolved records if the SenML version defined in this document is
  // used; otherwise, it MUST be present in all the resolved SenML Records." The generated file omits it.
  const expected = resolvedFile('ex3.gen.resolved.json').map((r) => ({ ...r, bver: 5 }));
  assert.deepEqual(resolve(readJson('ex3.gen.json')), expected);
  assert.equal(expected[1]?.t, 1.276020071001e9); // bt + t(-5), absolute
});

test('ex13 (no resolved file): base time and a time 0.1 s later, both absolute', () => {
  assert.deepEqual(resolve(readJson('ex13.gen.json')), [
    { n: '2001:db8::3', u: '/', t: 1320078429, v: 0.5 },
    { n: '2001:db8::4', u: '/', t: 1320078429, v: 0.5 },
    { n: '2001:db8::3', u: '/', t: 1320078429.1, v: 0 },
    { n: '2001:db8::4', u: '/', t: 1320078429.1, v: 0 },
  ]);
});

test('ex3 and ex5 in CBOR resolve to the same records as their JSON', () => {
  for (const ex of ['ex3', 'ex5']) {
    const bytes = new Uint8Array(readFileSync(fixture(`${ex}.gen.cbor`)));
    const fromCbor = resolve(decodeSenmlPayload(bytes));
    assert.deepEqual(fromCbor, resolve(readJson(`${ex}.gen.json`)), ex);
    assert.equal(fromCbor.length, ex === 'ex3' ? 7 : 13);
    // and the decoder gives the same readings from either
    assert.deepEqual(decode(frame(bytes)), decode(frame(readFileSync(fixture(`${ex}.gen.json`), 'utf8'))), ex);
  }
});

test('ex3.gen.cbor.hex is the same CBOR as ex3.gen.cbor', () => {
  const hex = readFileSync(fixture('ex3.gen.cbor.hex'), 'utf8')
    .split('\n')
    .map((l) => l.slice(5, 53).replace(/\s+/g, ''))
    .join('');
  assert.deepEqual(Buffer.from(hex, 'hex'), readFileSync(fixture('ex3.gen.cbor')));
});

// ---------------------------------------------------------------- rules, with our own packs

test('bv and bs are added to v and s; bs gives every later record a sum; bv leaves vs alone', () => {
  const pack = [
    { bn: 'dev1/', bt: 1.6e9, bv: 100, bs: 1000, n: 'a', u: 'W', v: 1 },
    { n: 'b', v: -2.5 },
    { n: 'c', s: 5 },
    { n: 'd', vs: 'x' },
    { bv: 0.5, bs: 0, n: 'e', v: 1, s: 2 },
  ];
  assert.deepEqual(resolve(pack), [
    { n: 'dev1/a', u: 'W', t: 1.6e9, v: 101, s: 1000 },
    { n: 'dev1/b', t: 1.6e9, v: 97.5, s: 1000 },
    { n: 'dev1/c', t: 1.6e9, s: 1005 },
    { n: 'dev1/d', t: 1.6e9, vs: 'x', s: 1000 },
    { n: 'dev1/e', t: 1.6e9, v: 1.5, s: 2 },
  ]);
  const [r] = readings(decode(frame(JSON.stringify(pack))));
  assert.equal(r?.device, 'dev1');
  assert.deepEqual(r?.values, { a: 101, a_sum: 1000, b: 97.5, b_sum: 1000, c_sum: 1005, d: 'x', d_sum: 1000, e: 1.5, e_sum: 2 });
  assert.deepEqual(r?.units, { a: 'W' });
});

test('times below 2^28 are relative to now; bt and t add up first', () => {
  const pack = [
    { n: 'x', v: 1, t: -60 },
    { n: 'x', v: 2 },
    { n: 'x', v: 3, t: 30.5 },
    { bt: -10, n: 'y', v: 4, t: 5 },
    { bt: 2 ** 28 - 1, n: 'z', v: 5 },
    { bt: 2 ** 28, n: 'z', v: 6 },
    { bt: 2 ** 28 - 10, n: 'z', v: 7, t: 10 },
  ];
  assert.deepEqual(
    resolve(pack).map((r) => r.t),
    [NOW_S - 60, NOW_S, NOW_S + 30.5, NOW_S - 5, NOW_S + 2 ** 28 - 1, 2 ** 28, 2 ** 28],
  );
});

test('bu applies only where a record has no u; base values carry over until redefined', () => {
  const got = resolve([
    { bn: 'a:', bu: 'V', bt: 1.7e9, n: 'x', v: 1 },
    { n: 'y', u: 'A', v: 2 },
    { bn: 'b:', n: 'z', v: 3 },
    { bu: 'W', n: 'w', v: 4 },
  ]);
  assert.deepEqual(got, [
    { n: 'a:x', u: 'V', t: 1.7e9, v: 1 },
    { n: 'a:y', u: 'A', t: 1.7e9, v: 2 },
    { n: 'b:z', u: 'V', t: 1.7e9, v: 3 },
    { n: 'b:w', u: 'W', t: 1.7e9, v: 4 },
  ]);
});

test('versions: one per pack, 10 by default, none above 10', () => {
  assert.deepEqual(resolve([{ bver: 10, n: 'a', v: 1 }, { n: 'b', v: 2 }]), [
    { n: 'a', t: NOW_S, v: 1 },
    { n: 'b', t: NOW_S, v: 2 },
  ]);
  assert.equal(resolve([{ n: 'a', v: 1 }, { bver: 10, n: 'b', v: 2 }]).length, 2);
  assert.deepEqual(
    resolve([{ bver: 5, n: 'a', v: 1 }, { bver: 5, n: 'b', v: 2 }]).map((r) => r.bver),
    [5, 5],
  );
  throwsCode(() => resolve([{ bver: 10, n: 'a', v: 1 }, { bver: 5, n: 'b', v: 2 }]), 'BH_SENML_VERSION', '[1].bver');
  throwsCode(() => resolve([{ n: 'a', v: 1 }, { bver: 5, n: 'b', v: 2 }]), 'BH_SENML_VERSION', '[1].bver');
  throwsCode(() => resolve([{ bver: 11, n: 'a', v: 1 }]), 'BH_SENML_VERSION', '[0].bver');
  throwsCode(() => resolve([{ bver: '10', n: 'a', v: 1 }]), 'BH_DECODE_SHAPE', '[0].bver');
  throwsCode(() => resolve([{ bver: 2.5, n: 'a', v: 1 }]), 'BH_DECODE_SHAPE', '[0].bver');
});

test('values: exactly one of v, vs, vb, vd unless there is a sum', () => {
  throwsCode(() => resolve([{ n: 'a', v: 1, vs: 'x' }]), 'BH_SENML_VALUE', '[0]');
  throwsCode(() => resolve([{ n: 'a', v: 1 }, { n: 'b', vb: true, vd: 'AA' }]), 'BH_SENML_VALUE', '[1]');
  throwsCode(() => resolve([{ n: 'a', u: 'V' }]), 'BH_SENML_VALUE', '[0]');
  throwsCode(() => resolve([{ bn: 'x:' }, {}]), 'BH_SENML_VALUE', '[1]');
  assert.deepEqual(resolve([{ n: 'a', s: 3, t: 1.7e9 }]), [{ n: 'a', t: 1.7e9, s: 3 }]);
  assert.deepEqual(resolve([{ n: 'a', vb: false, s: 3, t: 1.7e9 }]), [{ n: 'a', t: 1.7e9, vb: false, s: 3 }]);
});

test('labels ending in `_` must be understood, so they are errors; other unknown labels pass through', () => {
  throwsCode(() => resolve([{ n: 'a', v: 1, foo_: 1 }]), 'BH_SENML_MUST_UNDERSTAND', '[0].foo_');
  throwsCode(() => resolve([{ bn: 'x:', bct_: 'gzip' }, { n: 'a', v: 1 }]), 'BH_SENML_MUST_UNDERSTAND', '[0].bct_');
  // unknown base labels (`b...`) are dropped: a resolved record holds no base fields
  assert.deepEqual(resolve([{ n: 'a', v: 1, t: 1.7e9, ct: '60', bct: '0' }]), [{ n: 'a', t: 1.7e9, v: 1, ct: '60' }]);
});

test('names: bn + n, non-empty, starting alphanumeric, in A-Z a-z 0-9 - : . / _', () => {
  assert.equal(resolve([{ bn: '', n: 'a_b-c.d/e:f', v: 1 }])[0]?.n, 'a_b-c.d/e:f');
  assert.equal(resolve([{ bn: 'dev:', n: '-x', v: 1 }])[0]?.n, 'dev:-x'); // only the whole name must start alphanumeric
  throwsCode(() => resolve([{ n: '-a', v: 1 }]), 'BH_SENML_NAME', '[0].n');
  throwsCode(() => resolve([{ n: 'a b', v: 1 }]), 'BH_SENML_NAME', '[0].n');
  throwsCode(() => resolve([{ bn: 'ok:', n: 'tempé', v: 1 }]), 'BH_SENML_NAME', '[0].n');
  throwsCode(() => resolve([{ bn: 'dev 1/', n: 'a', v: 1 }]), 'BH_SENML_NAME', '[0].bn');
  throwsCode(() => resolve([{ v: 1 }]), 'BH_SENML_NAME', '[0].n');
  throwsCode(() => resolve([{ n: 'a', v: 1 }, { v: 2 }]), 'BH_SENML_NAME', '[1].n');
});

test('shape: not an array, a record not an object, labels of the wrong type', () => {
  throwsCode(() => resolve({ n: 'a', v: 1 }), 'BH_DECODE_SHAPE', '$');
  throwsCode(() => resolve('[]'), 'BH_DECODE_SHAPE', '$');
  throwsCode(() => resolve([{ n: 'a', v: 1 }, 7]), 'BH_DECODE_SHAPE', '[1]');
  throwsCode(() => resolve([[]]), 'BH_DECODE_SHAPE', '[0]');
  throwsCode(() => resolve([{ n: 'a', v: 1 }, { n: 'b', v: 2 }, { n: 'c', vs: 3 }]), 'BH_DECODE_SHAPE', '[2].vs');
  throwsCode(() => resolve([{ n: 'a', v: '1' }]), 'BH_DECODE_SHAPE', '[0].v');
  throwsCode(() => resolve([{ n: 'a', vb: 'true' }]), 'BH_DECODE_SHAPE', '[0].vb');
  throwsCode(() => resolve([{ n: 5, v: 1 }]), 'BH_DECODE_SHAPE', '[0].n');
  throwsCode(() => resolve([{ bt: '1', n: 'a', v: 1 }]), 'BH_DECODE_SHAPE', '[0].bt');
  throwsCode(() => resolve([{ n: 'a', vd: 'not base64!' }]), 'BH_DECODE_SHAPE', '[0].vd');
  throwsCode(() => decode(frame('{"n":"a","v":1}')), 'BH_DECODE_SHAPE', '$');
});

test('CBOR: integer labels, vd as a byte string, unknown integer labels ignored', () => {
  // [{0: "a", 8: h'0102ff', 99: 1, "x": 2, 6: 1700000000}]
  const bytes = new Uint8Array([
    0x81, 0xa5, 0x00, 0x61, 0x61, 0x08, 0x43, 0x01, 0x02, 0xff, 0x18, 0x63, 0x01, 0x61, 0x78, 0x02, 0x06, 0x1a, 0x65, 0x53,
    0xf1, 0x00,
  ]);
  assert.deepEqual(decodeSenmlPayload(bytes), [{ n: 'a', vd: 'AQL_', x: 2, t: 1700000000 }]);
  assert.deepEqual(resolve(decodeSenmlPayload(bytes)), [{ n: 'a', t: 1700000000, vd: 'AQL_', x: 2 }]);
  // a text string where CBOR wants one is fine; a byte string as `vs` is the wrong type
  throwsCode(() => resolve(decodeSenmlPayload(new Uint8Array([0x81, 0xa2, 0x00, 0x61, 0x61, 0x03, 0x41, 0x00]))), 'BH_DECODE_SHAPE', '[0].vs');
  throwsCode(() => decodeSenmlPayload(new Uint8Array([0x81, 0xa1])), 'BH_DECODE_SYNTAX');
  throwsCode(() => decodeSenmlPayload(new Uint8Array([0x81, 0xa0, 0x00])), 'BH_DECODE_SYNTAX'); // trailing bytes
  // {0: "a", "n": "b"}: the name twice, once as an integer label and once as text
  throwsCode(() => decodeSenmlPayload(new Uint8Array([0x81, 0xa2, 0x00, 0x61, 0x61, 0x61, 0x6e, 0x61, 0x62])), 'BH_DECODE_SHAPE', '[0].n');
});

test('JSON or CBOR: text and bytes starting with `[` are JSON, other bytes CBOR; `format` forces one', () => {
  const json = ' \n[{"n":"a","v":1}]';
  assert.deepEqual(decodeSenmlPayload(json), [{ n: 'a', v: 1 }]);
  assert.deepEqual(decodeSenmlPayload(new TextEncoder().encode(json)), [{ n: 'a', v: 1 }]);
  throwsCode(() => decodeSenmlPayload('[{"n":'), 'BH_DECODE_SYNTAX');
  throwsCode(() => decodeSenmlPayload(new Uint8Array([])), 'BH_DECODE_SYNTAX');
  throwsCode(() => decodeSenmlPayload(new Uint8Array([0x5b, 0xff])), 'BH_DECODE_SYNTAX'); // `[` then not UTF-8
  throwsCode(() => createWithDefaults(senmlDecoder, { format: 'cbor' })(frame(json)), 'BH_DECODE_SYNTAX');
  const asJson = createWithDefaults(senmlDecoder, { format: 'json' })(frame(new TextEncoder().encode('\uFEFF[{"n":"a","v":1}]')));
  assert.equal(readings(asJson)[0]?.values.value, 1);
});

// ---------------------------------------------------------------- readings

test('ex2: one reading, device from the base name, measurements from n', () => {
  const rs = readings(decode(frame(readFileSync(fixture('ex2.gen.json'), 'utf8'), { topic: 'senml/in' })));
  assert.deepEqual(rs, [
    {
      kind: 'reading',
      device: 'urn:dev:ow:10e2073a01080063',
      ts: NOW,
      values: { voltage: 120.1, current: 1.2 },
      units: { voltage: 'V', current: 'A' },
      authenticated: false,
      source: { input: 'http', decoder: 'senml', topic: 'senml/in' },
    },
  ]);
});

test('ex4: twelve readings of one device, measurement named from the unit', () => {
  const rs = readings(decode(frame(readFileSync(fixture('ex4.gen.json')))));
  assert.equal(rs.length, 12);
  const offsets = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 91, 92];
  const hum = [21.2, 21.3, 21.4, 21.4, 21.5, 21.5, 21.5, 21.6, 21.7, 21.5, 21.5, 21.5];
  for (const [k, r] of rs.entries()) {
    assert.equal(r.device, 'urn:dev:ow:10e2073a01080063');
    assert.equal(r.ts, 1320067464000 + (offsets[k] ?? NaN) * 1000);
    assert.deepEqual(r.values, { humidity: hum[k] });
    assert.deepEqual(r.units, { humidity: '%RH' });
    assert.ok(!('seq' in r) && !('topic' in r.source));
  }
});

test('ex6: two devices, each with temperature and humidity', () => {
  const rs = readings(decode(frame(readFileSync(fixture('ex6.gen.json')))));
  assert.deepEqual(
    rs.map((r) => [r.device, r.ts, r.values, r.units]),
    [
      ['2001:db8::2', 1320078429000, { temperature: 25.2, humidity: 30 }, { temperature: 'Cel', humidity: '%RH' }],
      ['2001:db8::1', 1320078429000, { temperature: 12.3, humidity: 67 }, { temperature: 'Cel', humidity: '%RH' }],
    ],
  );
});

test('ex5: units name the measurements; records at one time make one reading', () => {
  const rs = readings(decode(frame(readFileSync(fixture('ex5.gen.json')))));
  assert.equal(rs.length, 5);
  assert.deepEqual(rs[0]?.values, { humidity: 20, longitude: 24.30621, latitude: 60.07965 });
  assert.deepEqual(rs[0]?.units, { humidity: '%RH', longitude: 'lon', latitude: 'lat' });
  assert.deepEqual(rs[3]?.values, { battery_pct: 98 });
  assert.equal(rs[3]?.ts, 1320067614000);
});

test('ex3: fractional ms times, voltage and the last current share a reading', () => {
  const rs = readings(decode(frame(readFileSync(fixture('ex3.gen.json')))));
  assert.equal(rs.length, 6);
  assert.equal(rs[0]?.device, 'urn:dev:ow:10e2073a0108006');
  assert.equal(rs[0]?.ts, 1276020076001);
  assert.deepEqual(rs[0]?.values, { voltage: 120.1, current: 1.7 });
  assert.deepEqual(rs[0]?.units, { voltage: 'V', current: 'A' });
  assert.equal(rs[1]?.ts, 1276020071001);
});

test('ex7 and ex12: string, boolean and data values; no base name → the name is the device', () => {
  const [r] = readings(decode(frame(readFileSync(fixture('ex7.gen.json')))));
  assert.deepEqual(r?.values, { temp: 23.1, label: 'Machine Room', open: false, 'nfv-reader': 'aGkgCg' });
  assert.deepEqual(r?.units, { temp: 'Cel' });
  const rs = readings(decode(frame(readFileSync(fixture('ex12.gen.json')))));
  assert.deepEqual(
    rs.map((x) => [x.device, x.values, x.units]),
    [
      ['2001:db8::3', { ratio: 1 }, { ratio: '/' }],
      ['2001:db8::4', { ratio: 1 }, { ratio: '/' }],
    ],
  );
});

test('the same measurement twice in one reading gets _2, _3 suffixes', () => {
  const pack = [
    { bn: 'd/', n: 'x', v: 1 },
    { n: 'x', v: 2 },
    { n: 'x', v: 3 },
    { u: 'Cel', v: 4 },
    { u: 'Cel', v: 5 },
    { u: 'furlong', v: 6 },
  ];
  const [r] = readings(decode(frame(JSON.stringify(pack))));
  assert.equal(r?.device, 'd');
  assert.deepEqual(r?.values, { x: 1, x_2: 2, x_3: 3, temperature: 4, temperature_2: 5, value: 6 });
  assert.deepEqual(r?.units, { temperature: 'Cel', temperature_2: 'Cel', value: 'furlong' });
});

test('a pack with no measurement records holds no values', () => {
  throwsCode(() => decode(frame('[]')), 'BH_DECODE_NO_VALUES');
  throwsCode(() => decode(frame('[{"bn":"a:"}]')), 'BH_DECODE_NO_VALUES');
});

test('the options schema: every property is described and has a default', () => {
  for (const [name, prop] of Object.entries(senmlDecoder.options.properties)) {
    assert.equal(typeof prop.description, 'string', name);
    assert.notEqual(prop.default, undefined, name);
  }
  assert.equal(senmlDecoder.options.additionalProperties, false);
});

// ---------------------------------------------------------------- bounds (issue 11, items 1 and 9)

test('maxRecords: a pack at the cap decodes, one record more is refused whole with BH_DECODE_TOO_MANY', () => {
  const pack = (n: number) => `[{"bn":"urn:dev:x:","n":"t","v":1}${',{"n":"t","v":2}'.repeat(n - 1)}]`;
  const small = createWithDefaults(senmlDecoder, { maxRecords: 3 });
  const [r] = readings(small(frame(pack(3))));
  assert.deepEqual(r?.values, { t: 1, t_2: 2, t_3: 2 });
  const e = throwsCode(() => small(frame(pack(4))), 'BH_DECODE_TOO_MANY', '$');
  assert.match(e.message, /4 records, more than maxRecords \(3\)/);
  // The default is 10,000.
  assert.equal(Object.keys(readings(decode(frame(pack(10_000))))[0]?.values ?? {}).length, 10_000);
  throwsCode(() => decode(frame(pack(10_001))), 'BH_DECODE_TOO_MANY', '$');
});

test('one name repeated gets every suffix in order, values and sums kept apart', () => {
  const pack = [
    { bn: 'urn:dev:x:', n: 't', v: 1 },
    { n: 't', s: 5 },
    { n: 't', v: 2 },
    { n: 't_2', v: 9 },
    { n: 't', v: 3, s: 6 },
    { n: 't', s: 7 },
  ];
  const [r] = readings(decode(frame(JSON.stringify(pack))));
  // t_2 is taken by the second value, so the record that is itself named t_2 becomes t_2_2; then t_3 (value and sum), t_4.
  assert.deepEqual(r?.values, { t: 1, t_sum: 5, t_2: 2, t_2_2: 9, t_3: 3, t_3_sum: 6, t_2_sum: 7 });
});

test('a base name longer than 256 characters is refused (it would be repeated in every record)', () => {
  throwsCode(() => decode(frame(JSON.stringify([{ bn: `urn:${'a'.repeat(253)}`, n: 't', v: 1 }]))), 'BH_SENML_NAME', '[0].bn');
  assert.equal(readings(decode(frame(JSON.stringify([{ bn: `urn:${'a'.repeat(252)}`, n: 't', v: 1 }]))))[0]?.device, `urn:${'a'.repeat(252)}`);
});

test('JSON and CBOR nested deeper than 64 levels are refused unparsed with BH_DECODE_DEPTH; wide objects with BH_DECODE_TOO_MANY', () => {
  throwsCode(() => decode(frame(`${'['.repeat(100_000)}${']'.repeat(100_000)}`)), 'BH_DECODE_DEPTH', '$');
  throwsCode(() => decode(frame(new Uint8Array([...new Array<number>(100_000).fill(0x81), 0x00]))), 'BH_DECODE_DEPTH', '$');
  // 64 levels are still read (and then refused for their shape).
  throwsCode(() => decode(frame(`${'['.repeat(64)}${']'.repeat(64)}`)), 'BH_DECODE_SHAPE', '[0]');
  const wide = JSON.stringify([Object.fromEntries([['n', 't'], ['v', 1], ...Array.from({ length: 10_000 }, (_, i) => [`k${i}`, i])])]);
  throwsCode(() => decode(frame(wide)), 'BH_DECODE_TOO_MANY', '$');
  // A CBOR map of more than 10,000 entries, definite (0xb9 2710+1) and indefinite (0xbf ... 0xff).
  const entries = (n: number) => Array.from({ length: n }, () => [0x61, 0x61, 0x00]).flat();
  throwsCode(() => decode(frame(new Uint8Array([0x81, 0xb9, 0x27, 0x11, ...entries(10_001)]))), 'BH_DECODE_TOO_MANY', '$');
  throwsCode(() => decode(frame(new Uint8Array([0x81, 0xbf, ...entries(10_001), 0xff]))), 'BH_DECODE_TOO_MANY', '$');
});

test('CBOR tags: shared references (28/29) and every tag SenML does not use are refused with BH_DECODE_CBOR_TAG', () => {
  const selfRef = Buffer.from('d81c81d81d00', 'hex'); // 28([29(0)]): an array that contains itself
  assert.match(throwsCode(() => decode(frame(selfRef)), 'BH_DECODE_CBOR_TAG').message, /tag 28 \(a shared reference\)/);
  for (const hex of ['c11a5e0be100' /* 1: epoch date */, 'd81b8263457272616d' /* 27: Error */, 'd9010280' /* 258: set */, 'd8408100' /* 64: uint8 array */]) {
    throwsCode(() => decode(frame(Buffer.from(hex, 'hex'))), 'BH_DECODE_CBOR_TAG');
  }
  // A bignum longer than 16 bytes (cbor-x converts it in quadratic time).
  throwsCode(() => decode(frame(new Uint8Array([0x81, 0xa2, 0x00, 0x61, 0x74, 0x02, 0xc2, 0x51, ...new Array<number>(17).fill(1)]))), 'BH_DECODE_CBOR_TAG');
  // The tags SenML uses still work: a decimal fraction (tag 4) 2155e-2 and self-described CBOR (55799) around the pack.
  const pack = [0x81, 0xa3, 0x21, 0x63, 0x64, 0x3a, 0x78, 0x00, 0x61, 0x74, 0x02, 0xc4, 0x82, 0x21, 0x19, 0x08, 0x6b];
  assert.deepEqual(readings(decode(frame(new Uint8Array([0xd9, 0xd9, 0xf7, ...pack]))))[0]?.values, { t: 21.55 });
  // Truncated, or with bytes after the pack: syntax errors, as before.
  throwsCode(() => decode(frame(new Uint8Array(pack.slice(0, -1)))), 'BH_DECODE_SYNTAX');
  throwsCode(() => decode(frame(new Uint8Array([...pack, 0x00]))), 'BH_DECODE_SYNTAX');
});
