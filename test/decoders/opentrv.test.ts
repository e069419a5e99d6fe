import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { canonicalNodeId } from '../../src/core/ids.js';
import { opentrvDecoder } from '../../src/decoders/opentrv/index.js';
import type { DecodeResult } from '../../src/core/driver.js';
import type { Frame, Reading } from '../../src/core/types.js';
import { throwsCode } from '../helpers/assert.js';

// Tests run from dist/test/decoders/, the fixtures stay in test/fixtures/.
const fixture = (name: string): URL => new URL(`../../../test/fixtures/opentrv/${name}`, import.meta.url);

const NOW = Date.UTC(2015, 3, 12, 10, 0, 0);
const decode = opentrvDecoder.create({ unknownKeys: 'keep' });
const frame = (payload: string | Uint8Array, extra: Partial<Frame> = {}): Frame => ({ input: 'radio', payload, receivedAt: NOW, ...extra });

function only(r: DecodeResult): Reading {
  assert.ok('readings' in r, `expected readings, got ${JSON.stringify(r)}`);
  assert.equal(r.readings.length, 1);
  const first = r.readings[0];
  assert.ok(first);
  return first;
}


type Expected = string | { device: string; seq?: number; values: Record<string, number | boolean> };

// Every line of the 2015-04-12 hub capture, worked out by hand from the format notes.
const HUB_LINES: readonly Expected[] = [
  'error_line', // !RXerr F2
  { device: '414a', seq: 3, values: { vacancy: 6, valve: 0, target: 7, valve_travel: 0 } },
  { device: '2d1a', values: { temperature: 19 + 3 / 16, light: 41, occupancy: 1 } }, // @2D1A;T19C3;L41;O1
  { device: '0d49', values: { temperature: 17.375, light: 61, occupancy: 1 } }, // @D49;T17C6;L61;O1
  { device: 'b39a', values: { battery: 3.23, temperature: 420 / 16 } },
  { device: '819c', values: { temperature: 16.625, light: 242, occupancy: 1 } }, // @819C;T16CA;L242;O1
  { device: '819c', values: { temperature: 16.625, light: 242, battery: 2.55 } },
  'error_line',
  { device: '414a', values: { temperature: 16.5, light: 52, occupancy: 1 } }, // @414A;T16C8
  { device: '414a', seq: 4, values: { temperature: 265 / 16, occupancy: 1, vacancy: 6, valve: 0 } },
  'error_line',
  'status_line', // =F0%@22C0;...
  'blank',
  'prompt', // >E
  'status_line',
  'error_line', // !RXerr F5
  { device: 'f1c6', seq: 0, values: { temperature: 259 / 16, occupancy: 1, vacancy: 0, light: 30 } },
  { device: '0a45', seq: 3, values: { vacancy: 6, valve: 0, target: 7, valve_travel: 0 } },
  'error_line',
  { device: '3015', seq: 3, values: { temperature: 17.5, humidity: 51, occupancy: 1 } },
  'error_line',
  { device: '2d1a', values: { temperature: 19.1875, light: 41, occupancy: 1 } },
  { device: '0d49', seq: 7, values: { valve: 0, target: 7, valve_travel: 862 } },
  { device: '0d49', values: { temperature: 17.375, light: 61, occupancy: 1 } },
  { device: '819c', values: { temperature: 16.625, light: 242, occupancy: 1 } },
  'error_line',
  { device: '3015', values: { temperature: 17.5, light: 63, occupancy: 1 } }, // @3015;T17C8
  'error_line',
  'error_line',
  { device: '819c', values: { temperature: 16.625, light: 242, occupancy: 1 } },
  { device: '0a45', values: { temperature: 18.1875, light: 53, occupancy: 1 } }, // @A45;T18C3 → same node as "0a45"
  { device: 'b39a', values: { temperature: 418 / 16, battery: 3.247 } },
  { device: '2d1a', values: { temperature: 19.1875, light: 42, occupancy: 1 } },
  'error_line',
  { device: '414a', seq: 5, values: { target: 7, valve_travel: 0, temperature: 266 / 16, occupancy: 1 } },
  { device: '0d49', values: { temperature: 17 + 7 / 16, light: 61, occupancy: 1 } }, // @D49;T17C7
];

test('every line of the 2015-04-12 hub capture decodes to the expected reading or skip', () => {
  const text = readFileSync(fixture('hub-output-20150412.txt'), 'utf8');
  const lines = text.endsWith('\n') ? text.slice(0, -1).split('\n') : text.split('\n');
  assert.equal(lines.length, HUB_LINES.length);
  const skips: Record<string, number> = {};
  let readings = 0;
  for (const [i, line] of lines.entries()) {
    const want = HUB_LINES[i];
    const got = decode(frame(line));
    if (typeof want === 'string') {
      assert.deepEqual(got, { skipped: want }, `line ${i + 1}: ${line}`);
      skips[want] = (skips[want] ?? 0) + 1;
    } else {
      const r = only(got);
      readings++;
      assert.equal(r.device, want?.device, `line ${i + 1}`);
      assert.equal(r.seq, want?.seq, `line ${i + 1}`);
      assert.deepEqual(r.values, want?.values, `line ${i + 1}: ${line}`);
      assert.equal(r.ts, NOW);
      assert.equal(r.authenticated, false);
      assert.deepEqual(r.source, { input: 'radio', decoder: 'opentrv' });
      if (want && 'seq' in want) assert.ok('seq' in r);
      else assert.ok(!('seq' in r), 'no seq key when the line has no `+`');
    }
  }
  // Counted by hand in the file: 10 `!RXerr` lines, 2 `=` status lines, 1 blank line, 1 `>E` prompt.
  assert.deepEqual(skips, { error_line: 10, status_line: 2, blank: 1, prompt: 1 });
  assert.equal(readings, 22); // 10 JSON stats lines + 12 binary stats lines
});

test('JSON stats: units and conversions of the 819c line', () => {
  const r = only(decode(frame('{"@":"819c","T|C16":266,"L":242,"B|cV":255}')));
  assert.equal(r.device, '819c');
  assert.deepEqual(r.values, { temperature: 16.625, light: 242, battery: 2.55 });
  assert.deepEqual(r.units, { temperature: 'Cel', battery: 'V' });
});

test('JSON stats: the worked example from the original concentrator gives 18.625 Cel', () => {
  const r = only(decode(frame('{"@":"cdfb","T|C16":298,"H|%":87,"L":231,"B|cV":256}')));
  assert.equal(r.device, 'cdfb');
  assert.deepEqual(r.values, { temperature: 18.625, humidity: 87, light: 231, battery: 2.56 });
  assert.deepEqual(r.units, { temperature: 'Cel', humidity: '%RH', battery: 'V' });
});

test('JSON stats: every key of the table', () => {
  const line =
    '{"@":"414a","+":9,"T|C16":320,"H|%":50,"B|mV":3100,"L":10,"O":2,"occ|%":40,"vac|h":3,"v|%":55,"vC|%":900,' +
    '"tT|C":19,"tS|C":14,"b":1,"err":3,"xyz":7,"note":"hi"}';
  const r = only(decode(frame(line)));
  assert.equal(r.seq, 9);
  assert.deepEqual(r.values, {
    temperature: 20,
    humidity: 50,
    battery: 3.1,
    light: 10,
    occupancy: 2,
    occupancy_pct: 40,
    vacancy: 3,
    valve: 0.55,
    valve_travel: 900,
    target: 19,
    setback: 14,
    boiler: 1,
    error: 3,
    xyz: 7,
    note: 'hi',
  });
  assert.deepEqual(r.units, {
    temperature: 'Cel',
    humidity: '%RH',
    battery: 'V',
    occupancy_pct: '%',
    vacancy: 'h',
    valve: '/',
    valve_travel: '%',
    target: 'Cel',
    setback: 'Cel',
  });
});

test('node ids are canonical: D49 and 0d49 are one device', () => {
  assert.equal(only(decode(frame('{"@":"D49","L":1}'))).device, '0d49');
  assert.equal(only(decode(frame('{"@":"0d49","L":1}'))).device, '0d49');
  assert.equal(only(decode(frame('@d49;L1'))).device, '0d49');
  assert.equal(canonicalNodeId('A'), '000a');
  assert.equal(canonicalNodeId('12345'), '012345');
  assert.equal(canonicalNodeId('0123456789ABCDEF'), '0123456789abcdef');
  assert.equal(canonicalNodeId('0123456789abcdef0'), undefined); // 9 bytes
  assert.equal(canonicalNodeId('81g9'), undefined);
  assert.equal(canonicalNodeId(''), undefined);
});

test('binary stats: power low, negative temperature, unknown numeric fields, trailing semicolon', () => {
  const r = only(decode(frame('@2D1A;T-2C8;L0;O3;P;X12;')));
  assert.equal(r.device, '2d1a');
  assert.deepEqual(r.values, { temperature: -1.5, light: 0, occupancy: 3, battery_low: true, X: 12 });
  assert.deepEqual(r.units, { temperature: 'Cel' });
  const dropped = only(opentrvDecoder.create({ unknownKeys: 'drop' })(frame('@2D1A;L5;X12')));
  assert.deepEqual(dropped.values, { light: 5 });
});

test('the logged form takes its time from the record and keeps the topic', () => {
  const r = only(
    decode(frame('[ "2016-01-01T00:00:09Z", "", {"@":"2d1a","+":6,"T|C16":332,"O":1,"vac|h":1,"b":0} ]', { topic: 'log/2d1a' })),
  );
  assert.equal(r.ts, Date.UTC(2016, 0, 1, 0, 0, 9));
  assert.deepEqual(r.source, { input: 'radio', decoder: 'opentrv', topic: 'log/2d1a' });
  const offset = only(decode(frame('["2016-01-01T01:00:09.5+01:00","c",{"@":"2d1a","L":1}]')));
  assert.equal(offset.ts, Date.UTC(2016, 0, 1, 0, 0, 9, 500));
});

test('the whole 2d1a valve log (2016H1) decodes, one reading a line', () => {
  const lines = gunzipSync(readFileSync(fixture('valve-2d1a-2016H1.json.gz')))
    .toString('utf8')
    .split('\n')
    .filter((l) => l !== '');
  assert.equal(lines.length, 64424);
  let count = 0;
  let lastTs = 0;
  let backwards = 0;
  for (const line of lines) {
    const r = decode(frame(line));
    assert.ok('readings' in r, line);
    for (const reading of r.readings) {
      assert.equal(reading.device, '2d1a');
      if (reading.ts < lastTs) backwards++;
      lastTs = reading.ts;
      count++;
    }
  }
  assert.equal(count, lines.length);
  assert.equal(backwards, 0, 'the log is in time order');
  // [ "2016-01-01T00:00:09Z", "", {"@":"2d1a","+":6,"T|C16":332,"O":1,"vac|h":1,"b":0} ]
  const first = only(decode(frame(lines[0] ?? '')));
  assert.equal(first.ts, Date.UTC(2016, 0, 1, 0, 0, 9));
  assert.equal(first.seq, 6);
  assert.deepEqual(first.values, { temperature: 20.75, occupancy: 1, vacancy: 1, boiler: 0 });
  assert.ok(lastTs >= Date.UTC(2016, 5, 1) && lastTs < Date.UTC(2016, 6, 1), 'the log ends in June 2016');
});

test('payload bytes are UTF-8 text; a CR LF ending is fine', () => {
  const r = only(decode(frame(new TextEncoder().encode('{"@":"819c","L":242}\r\n'))));
  assert.deepEqual(r.values, { light: 242 });
  throwsCode(() => decode(frame(new Uint8Array([0x7b, 0xff, 0xfe]))), 'BH_DECODE_SYNTAX');
});

test('other hub lines are skipped with their reason', () => {
  assert.deepEqual(decode(frame('?warn')), { skipped: 'warning_line' });
  assert.deepEqual(decode(frame('+info')), { skipped: 'info_line' });
  assert.deepEqual(decode(frame('>')), { skipped: 'prompt' });
  assert.deepEqual(decode(frame('   \r\n')), { skipped: 'blank' });
});

test('errors: code and path', () => {
  throwsCode(() => decode(frame('{"@":"819c","T|C16":"hot"}')), 'BH_DECODE_SHAPE', 'T|C16');
  throwsCode(() => decode(frame('{"@":"819c","L":null}')), 'BH_DECODE_SHAPE', 'L');
  throwsCode(() => decode(frame('{"@":"819c","+":-1,"L":1}')), 'BH_DECODE_SHAPE', '+');
  throwsCode(() => decode(frame('{"@":"819c","x":{"y":1}}')), 'BH_DECODE_SHAPE', 'x');
  throwsCode(() => decode(frame('{"@":"819c","+":3}')), 'BH_DECODE_NO_VALUES');
  throwsCode(() => opentrvDecoder.create({ unknownKeys: 'drop' })(frame('{"@":"819c","q":3}')), 'BH_DECODE_NO_VALUES');
  throwsCode(() => decode(frame('{"T|C16":266}')), 'BH_DECODE_NO_DEVICE', '@');
  throwsCode(() => decode(frame('{"@":819,"L":1}')), 'BH_DECODE_SHAPE', '@');
  throwsCode(() => decode(frame('{"@":"zz19","L":1}')), 'BH_DECODE_SHAPE', '@');
  throwsCode(() => decode(frame('{"@":"0123456789abcdef01","L":1}')), 'BH_DECODE_SHAPE', '@');
  throwsCode(() => decode(frame('[1,2]')), 'BH_DECODE_SHAPE', '$');
  throwsCode(() => decode(frame('{"@":"819c"')), 'BH_DECODE_SYNTAX');
  throwsCode(() => decode(frame('["2016-13-45T99:00:00Z","",{"@":"2d1a","L":1}]')), 'BH_DECODE_TIME', '[0]');
  throwsCode(() => decode(frame('["yesterday","",{"@":"2d1a","L":1}]')), 'BH_DECODE_TIME', '[0]');
  throwsCode(() => decode(frame('["2016-01-01T00:00:09","",{"@":"2d1a","L":1}]')), 'BH_DECODE_TIME', '[0]'); // no zone
  throwsCode(() => decode(frame('["2016-01-01T00:00:09Z","",{"@":"2d1a","T|C16":"x"}]')), 'BH_DECODE_SHAPE', '[2]["T|C16"]');
  throwsCode(() => decode(frame('["2016-01-01T00:00:09Z","",{"L":1}]')), 'BH_DECODE_NO_DEVICE', '[2]["@"]');
  throwsCode(() => decode(frame('["2016-01-01T00:00:09Z","",[]]')), 'BH_DECODE_SHAPE', '[2]');
  throwsCode(() => decode(frame('@D49;T17;L61')), 'BH_OPENTRV_LINE', 'T');
  throwsCode(() => decode(frame('@D49;T17C6;Lx')), 'BH_OPENTRV_LINE', 'L');
  throwsCode(() => decode(frame('@D49;L1;L2')), 'BH_OPENTRV_LINE', 'L');
  throwsCode(() => decode(frame('@D49;;L1')), 'BH_OPENTRV_LINE', '[1]');
  throwsCode(() => decode(frame('@D49;P1')), 'BH_OPENTRV_LINE', 'P');
  throwsCode(() => decode(frame('@Q49;L1')), 'BH_OPENTRV_LINE', '@');
  throwsCode(() => decode(frame('@;L1')), 'BH_DECODE_NO_DEVICE', '@');
  throwsCode(() => decode(frame('@D49')), 'BH_DECODE_NO_VALUES');
  throwsCode(() => decode(frame('{"@":"819c","L":1}\n{"@":"819c","L":2}')), 'BH_DECODE_SYNTAX');
});

test('a bad line is quoted only in short', () => {
  const e = throwsCode(() => decode(frame(`hello ${'x'.repeat(500)}`)), 'BH_DECODE_SYNTAX');
  assert.ok(e.message.includes('hello'));
  assert.ok(e.message.length < 120, e.message);
});

test('the options schema: every property is described and has a default', () => {
  for (const [name, prop] of Object.entries(opentrvDecoder.options.properties)) {
    assert.equal(typeof prop.description, 'string', name);
    assert.notEqual(prop.default, undefined, name);
  }
  assert.equal(opentrvDecoder.options.additionalProperties, false);
});

test('a JSON line nested deeper than 64 levels is refused unparsed with BH_DECODE_DEPTH (issue 11, item 9)', () => {
  throwsCode(() => decode(frame(`{"@":"819c","x":${'['.repeat(100_000)}${']'.repeat(100_000)}}`)), 'BH_DECODE_DEPTH', '$');
  throwsCode(() => decode(frame(`[${'['.repeat(100)}${']'.repeat(100)}, "c", {}]`)), 'BH_DECODE_DEPTH', '$');
});
