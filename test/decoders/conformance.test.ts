// Conformance: what every decoder in the registry must do (src/core/driver.ts, `Decode`), checked on a seeded corpus
// made from the real fixtures (test/fixtures: an OpenTRV hub capture, a valve log, the RFC 8428 examples as JSON and
// CBOR) and a few plain JSON bodies, each also mutated (bits flipped, bytes set, inserted, deleted, cut off,
// duplicated), plus random JSON documents and random bytes. Every decoder gets every input, whatever it was made
// for: a SenML pack reaching the OpenTRV decoder is a frame from outside too.
// * pure: the same frame twice gives deep-equal results (or the same error), and the frame is not changed;
// * a result is readings (each with a device, a finite time, and the decoder and input named in its source) or a skip;
// * anything else is a BackhaulError whose code is in the catalog: a TypeError or RangeError fails the test with the
//   input printed.
// The seed is fixed, so a failure repeats. `npm run fuzz` (fuzz/README.md) goes much further with generated inputs.
import { mulberry32 } from '../../src/inputs/simulator/index.js'; // the seeded PRNG the simulator uses
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { SchemaValidator } from '../../src/core/config/validate.js';
import type { Decode, DecodeResult } from '../../src/core/driver.js';
import { BackhaulError, ERROR_CATALOG } from '../../src/core/errors.js';
import type { Frame } from '../../src/core/types.js';
import { builtinRegistry } from '../../src/runtime/registry.js';
import { fixture } from '../helpers/fixtures.js';

const SEED = 0x13c0de;
/** Mutated copies per seed input, random JSON documents and random byte strings: a few thousand inputs a decoder. */
const MUTANTS_PER_SEED = 12;
const RANDOM_JSON = 1000;
const RANDOM_BYTES = 500;

/** Options that change what a decoder reads; a decoder not listed (added later) runs with its defaults. */
const VARIANTS: Readonly<Record<string, ReadonlyArray<Record<string, unknown>>>> = {
  senml: [{}, { format: 'cbor' }],
  json: [{}, { device: 'topic:-1', array: true }],
  opentrv: [{}, { unknownKeys: 'drop' }],
  chirpstack: [{}, { radio: true }],
  tts: [{}, { radio: true }],
};


interface Sample {
  readonly what: string;
  readonly payload: string | Uint8Array;
  readonly contentType?: string;
  readonly topic?: string;
}

const utf8 = new TextEncoder();
const text = new TextDecoder('utf-8');

/** The valid inputs the corpus grows from. */
function seeds(): Sample[] {
  const out: Sample[] = [];
  const hub = readFileSync(fixture('opentrv/hub-output-20150412.txt'), 'utf8').split('\n');
  hub.forEach((line, i) => out.push({ what: `hub-output line ${i + 1}`, payload: line }));
  const valve = gunzipSync(readFileSync(fixture('opentrv/valve-2d1a-2016H1.json.gz'))).toString('utf8').split('\n');
  for (let i = 0; i < valve.length && i < 4000; i += 100) out.push({ what: `valve log line ${i + 1}`, payload: valve[i]! });
  for (const name of readdirSync(fixture('senml')).sort()) {
    if (name.endsWith('.json')) out.push({ what: `senml/${name}`, payload: readFileSync(fixture(`senml/${name}`), 'utf8'), contentType: 'application/senml+json' });
    if (name.endsWith('.cbor')) out.push({ what: `senml/${name}`, payload: new Uint8Array(readFileSync(fixture(`senml/${name}`))), contentType: 'application/senml+cbor' });
  }
  // LoRaWAN network servers' integration messages, on their MQTT topics.
  for (const name of readdirSync(fixture('lorawan')).sort()) {
    const raw = readFileSync(fixture(`lorawan/${name}`), 'utf8');
    if (name.startsWith('tts-')) {
      const m = JSON.parse(raw) as { topic: string; payload: unknown };
      out.push({ what: `lorawan/${name}`, payload: JSON.stringify(m.payload), topic: m.topic });
    } else {
      const kind = /chirpstack-v4-(\w+)\.json/.exec(name)?.[1] ?? 'up';
      out.push({ what: `lorawan/${name}`, payload: raw, topic: `application/17c82e96-be03-4f38-aef3-f83d48582d97/device/0101010101010101/event/${kind}` });
    }
  }
  const bodies = [
    { device: 'room-12', temperature: 21.5, humidity: 40, open: false, state: 'ok' },
    { device: 'a', ts: 1_700_000_000, seq: 3, t: 20 },
    [{ device: 'b', v: 1 }, { device: 'c', v: 2 }],
    { sensor: { id: 'x1' }, data: { t: 215, rh: 40 } },
  ];
  bodies.forEach((b, i) => out.push({ what: `json body ${i}`, payload: JSON.stringify(b), topic: 'home/kitchen/env' }));
  return out;
}

const bytesOf = (p: string | Uint8Array): Uint8Array => (typeof p === 'string' ? utf8.encode(p) : p);

function mutate(rnd: () => number, input: Uint8Array): { bytes: Uint8Array; how: string } {
  const b = Array.from(input);
  const at = () => Math.floor(rnd() * Math.max(1, b.length));
  const byte = () => Math.floor(rnd() * 256);
  const ops: string[] = [];
  const n = 1 + Math.floor(rnd() * 3);
  for (let k = 0; k < n; k++) {
    const op = Math.floor(rnd() * 6);
    const i = at();
    if (op === 0 && b.length > 0) b[i] = b[i]! ^ (1 << Math.floor(rnd() * 8));
    else if (op === 1 && b.length > 0) b[i] = byte();
    else if (op === 2) b.splice(i, 0, byte());
    else if (op === 3) b.splice(i, 1 + Math.floor(rnd() * 4));
    else if (op === 4) b.length = i;
    else b.splice(i, 0, ...b.slice(i, i + 1 + Math.floor(rnd() * 16)));
    ops.push(['flip', 'set', 'insert', 'delete', 'truncate', 'dup'][op]! + `@${i}`);
  }
  return { bytes: Uint8Array.from(b), how: ops.join(',') };
}

const KEYS = ['device', 'id', '@', '+', 'T|C16', 'B|cV', 'H|%', 'L', 'O', 'bn', 'bt', 'bver', 'n', 'u', 'v', 'vs', 'vb', 's', 't', 'ts', 'seq', 'x_', 'data', 'temperature'];

function randomJson(rnd: () => number, depth = 0): unknown {
  const k = Math.floor(rnd() * (depth > 3 ? 5 : 8));
  switch (k) {
    case 0:
      return null;
    case 1:
      return rnd() < 0.5;
    case 2:
      return [0, -1, 1e308, -1e-308, 2 ** 53, 1.5, 1_700_000_000, 255][Math.floor(rnd() * 8)];
    case 3:
      return ['', '819c', 'urn:dev:mac:0024befffe804ff1:', 'Cel', 'a b', '\u0000', '2016-01-01T00:00:09Z', 'zz'][Math.floor(rnd() * 8)];
    case 4:
      return Math.floor(rnd() * 2 ** 31) - 2 ** 30;
    case 5:
    case 6:
      return Array.from({ length: Math.floor(rnd() * 5) }, () => randomJson(rnd, depth + 1));
    default: {
      const o: Record<string, unknown> = {};
      const n = Math.floor(rnd() * 6);
      for (let i = 0; i < n; i++) o[KEYS[Math.floor(rnd() * KEYS.length)]!] = randomJson(rnd, depth + 1);
      return o;
    }
  }
}

/** The seeds, their mutants (as text or bytes, as the seed was), random JSON and random bytes. */
function corpus(): Sample[] {
  const rnd = mulberry32(SEED);
  const base = seeds();
  const out: Sample[] = [...base];
  for (const s of base) {
    for (let i = 0; i < MUTANTS_PER_SEED; i++) {
      const { bytes, how } = mutate(rnd, bytesOf(s.payload));
      const asText = typeof s.payload === 'string' && rnd() < 0.7;
      out.push({ ...s, what: `${s.what} mutated ${how}`, payload: asText ? text.decode(bytes) : bytes });
    }
  }
  for (let i = 0; i < RANDOM_JSON; i++) {
    const doc = JSON.stringify(randomJson(rnd));
    out.push({ what: `random JSON #${i}`, payload: rnd() < 0.5 ? doc : utf8.encode(doc), ...(rnd() < 0.3 ? { topic: 'a/b/c' } : {}) });
  }
  for (let i = 0; i < RANDOM_BYTES; i++) {
    const b = Uint8Array.from({ length: Math.floor(rnd() * 64) }, () => Math.floor(rnd() * 256));
    out.push({ what: `random bytes #${i}`, payload: b, ...(rnd() < 0.5 ? { contentType: 'application/senml+cbor' } : {}) });
  }
  return out;
}

const samples = corpus();
const RECEIVED_AT = Date.UTC(2026, 0, 1);
const show = (s: Sample) =>
  `${s.what}: ${typeof s.payload === 'string' ? JSON.stringify(s.payload.slice(0, 300)) : `bytes ${Buffer.from(s.payload.subarray(0, 150)).toString('hex')}`}`;

type Outcome = { result: DecodeResult } | { error: BackhaulError };

/** One decode; a throw that is not a coded BackhaulError fails with the input printed. */
function decodeOnce(decode: Decode, frame: Frame, s: Sample): Outcome {
  try {
    return { result: decode(frame) };
  } catch (e) {
    if (!(e instanceof BackhaulError)) {
      assert.fail(`${show(s)}\nthrew something else than a BackhaulError: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    }
    assert.ok(Object.hasOwn(ERROR_CATALOG, e.code), `${show(s)}\nthrew code ${String(e.code)}, which is not in the catalog`);
    return { error: e };
  }
}

const validator = new SchemaValidator();
const decoders = [...builtinRegistry().decoders.values()];

test('decoder conformance: the corpus is a few thousand inputs, the same on every run', () => {
  assert.ok(samples.length > 1500 && samples.length < 10_000, `${samples.length} inputs`);
  assert.deepEqual(corpus().map(show), samples.map(show), 'deterministic');
});

for (const def of decoders) {
  for (const variant of VARIANTS[def.type] ?? [{}]) {
    test(`decoder conformance: ${def.type} ${JSON.stringify(variant)}: pure, and only catalog codes thrown, on ${samples.length} inputs`, () => {
      const o = structuredClone(variant);
      assert.deepEqual(validator.validate(def.options, o, 'decoder').map(String), [], 'valid options');
      const decode = def.create(o);
      const outcomes = new Map<string, number>();
      for (const s of samples) {
        const frame: Frame = Object.freeze({
          input: 'conf',
          payload: s.payload,
          receivedAt: RECEIVED_AT,
          ...(s.topic !== undefined ? { topic: s.topic } : {}),
          ...(s.contentType !== undefined ? { contentType: s.contentType } : {}),
        });
        const before = typeof s.payload === 'string' ? s.payload : Uint8Array.from(s.payload);
        const first = decodeOnce(decode, frame, s);
        const second = decodeOnce(decode, frame, s);
        assert.deepEqual(frame.payload, before, `${show(s)}\nthe decoder changed the frame's payload`);
        if ('error' in first) {
          assert.ok('error' in second, `${show(s)}\nthrew once, decoded the second time`);
          assert.deepEqual([second.error.code, second.error.path, second.error.message], [first.error.code, first.error.path, first.error.message], `${show(s)}\nnot pure`);
          outcomes.set(first.error.code, (outcomes.get(first.error.code) ?? 0) + 1);
          continue;
        }
        assert.ok('result' in second, `${show(s)}\ndecoded once, threw the second time`);
        assert.deepEqual(second.result, first.result, `${show(s)}\nnot pure: the same frame gave another result`);
        const r = first.result;
        if ('skipped' in r) {
          assert.equal(typeof r.skipped, 'string', show(s));
          outcomes.set('skipped', (outcomes.get('skipped') ?? 0) + 1);
          continue;
        }
        for (const reading of r.readings) {
          assert.equal(reading.kind, 'reading', show(s));
          assert.ok(typeof reading.device === 'string' && reading.device !== '', `${show(s)}\na reading without a device`);
          assert.ok(Number.isFinite(reading.ts), `${show(s)}\na reading at time ${reading.ts}`);
          assert.equal(reading.source.decoder, def.type, show(s));
          assert.equal(reading.source.input, 'conf', show(s));
        }
        outcomes.set('decoded', (outcomes.get('decoded') ?? 0) + 1);
      }
      // The corpus reaches both sides: inputs this decoder reads, and inputs it refuses with a code.
      const seen = [...outcomes.entries()].map(([k, n]) => `${k} ${n}`).join(', ');
      assert.ok((outcomes.get('decoded') ?? 0) > 0, `something decoded: ${seen}`);
      assert.ok([...outcomes.keys()].some((k) => k.startsWith('BH_')), `something refused: ${seen}`);
    });
  }
}

test('decoder conformance: the check catches a decoder that throws something else, naming the input', () => {
  const s: Sample = { what: 'a probe', payload: '{}' };
  const frame: Frame = { input: 'conf', payload: s.payload, receivedAt: RECEIVED_AT };
  assert.throws(
    () =>
      decodeOnce(() => {
        throw new TypeError("Cannot read properties of undefined (reading 'x')");
      }, frame, s),
    /a probe: "\{\}"\nthrew something else than a BackhaulError: TypeError/,
  );
});
