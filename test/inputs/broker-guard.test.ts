// The broker's fixed-header check on its own, property-based: however a stream of packets is cut into reads, the
// guard finds the same packet boundaries, lets every packet within the limit through, and refuses the first one over it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PacketGuard } from '../../src/inputs/broker/guard.js';
import { remainingLength } from '../helpers/mqtt-raw.js';

function packetOf(type: number, bodyLength: number): Buffer {
  return Buffer.concat([Buffer.from([type << 4, ...remainingLength(bodyLength)]), Buffer.alloc(bodyLength, 0xa5)]);
}

/** `bytes` cut at `cuts` (positions, any order, duplicates allowed). */
function chunks(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, bytes.length]) {
    out.push(bytes.subarray(prev, c));
    prev = c;
  }
  return out;
}

const LIMIT = 300;
const sizes = fc.array(fc.integer({ min: 0, max: LIMIT - 3 }), { minLength: 1, maxLength: 12 });
const cuts = fc.array(fc.nat(), { maxLength: 20 });

test('PacketGuard: packets within the limit pass, however the stream is cut', () => {
  fc.assert(
    fc.property(sizes, cuts, (lengths, cutAt) => {
      const stream = Buffer.concat(lengths.map((n, i) => packetOf(1 + (i % 14), n)));
      const g = new PacketGuard(LIMIT, LIMIT);
      for (const c of chunks(stream, cutAt)) assert.equal(g.scan(c), null);
    }),
    { numRuns: 2000 },
  );
});

test('PacketGuard: the first packet over the limit is refused with the size it claims, wherever the cuts fall', () => {
  fc.assert(
    fc.property(sizes, fc.integer({ min: LIMIT, max: 268_435_455 }), cuts, (lengths, huge, cutAt) => {
      // Only the header of the huge packet and a little of its body: the guard must not need the rest.
      const head = Buffer.concat(lengths.map((n) => packetOf(3, n)));
      const bad = Buffer.from([0x30, ...remainingLength(huge), 1, 2, 3]);
      const g = new PacketGuard(LIMIT, LIMIT);
      let refusal = null;
      for (const c of chunks(Buffer.concat([head, bad]), cutAt)) {
        refusal = g.scan(c);
        if (refusal) break;
      }
      assert.deepEqual(refusal, { reason: 'too_large', claimed: 1 + remainingLength(huge).length + huge, limit: LIMIT, loggedIn: false });
    }),
    { numRuns: 2000 },
  );
});

test('PacketGuard: the limit before login is the small one; after accepted() the larger one applies', () => {
  const g = new PacketGuard(64, 4096);
  assert.equal(g.scan(packetOf(1, 50)), null);
  assert.deepEqual(g.scan(packetOf(3, 100).subarray(0, 3)), { reason: 'too_large', claimed: 102, limit: 64, loggedIn: false });
  const h = new PacketGuard(64, 4096);
  assert.equal(h.scan(packetOf(1, 50)), null);
  h.accepted();
  assert.equal(h.scan(packetOf(3, 100)), null);
  assert.equal(h.scan(packetOf(3, 4093)), null); // 1 + 2 + 4093 = 4096 bytes
  assert.deepEqual(h.scan(packetOf(3, 4094)), { reason: 'too_large', claimed: 4097, limit: 4096, loggedIn: true });
  // Five length bytes are no MQTT packet.
  assert.deepEqual(new PacketGuard(64, 64).scan(Buffer.from([0x10, 0x80, 0x80, 0x80, 0x80, 0x00])), { reason: 'malformed', loggedIn: false });
});
