// The short form of `npm run fuzz` (fuzz/README.md) for CI: the same generators and properties, a few thousand
// inputs per target. Only the properties are asserted (what a decoder may throw; the broker survives and answers a
// fresh client), never times.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fuzzBroker } from '../../fuzz/broker.js';
import { decodeChecked, decoderTargets, frameOf, fuzzDecoder } from '../../fuzz/decoders.js';

const RUNS = 3000;

test('the fuzz targets cover every decoder in the registry', () => {
  assert.deepEqual(decoderTargets().map((t) => t.type).sort(), ['chirpstack', 'json', 'opentrv', 'senml', 'tts']);
});

for (const target of decoderTargets()) {
  test(`fuzz: decoder ${target.type} throws nothing but coded BackhaulErrors (${RUNS} generated inputs)`, () => {
    const { stats } = fuzzDecoder(target, { runs: RUNS });
    assert.equal(stats.runs, RUNS);
    // The generators reach both sides of the property: inputs that decode, and inputs refused with a code.
    const outcomes = [...stats.outcomes.keys()];
    assert.ok(outcomes.some((o) => o === 'decoded' || o === 'skipped'), `something decoded: ${outcomes.join(', ')}`);
    assert.ok(outcomes.some((o) => o.startsWith('BH_')), `something refused: ${outcomes.join(', ')}`);
  });
}

test('fuzz: the property catches a decoder that throws something else than a coded BackhaulError', () => {
  const frame = frameOf({ family: 'x', payload: '[]', variant: 0 });
  assert.throws(
    () =>
      decodeChecked(() => {
        throw new RangeError('Maximum call stack size exceeded');
      }, frame),
    /something else than a coded BackhaulError: RangeError/,
  );
});

test(`fuzz: the embedded broker survives ${RUNS} generated raw MQTT sessions and still serves a fresh client`, async () => {
  const { stats } = await fuzzBroker({ runs: RUNS, checkEvery: 1000 });
  assert.equal(stats.runs, RUNS);
  assert.equal(stats.outcomes.get('refused') ?? 0, 0, 'no connection was refused');
});
