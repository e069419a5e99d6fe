// Device ids are made canonical per kind (good spellings agree, bad ones are refused with BH_DEVICE_ID), and the
// other attributes are checked before they are stored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalNodeId } from '../../src/core/ids.js';
import {
  checkLocation,
  checkTags,
  guessIdKind,
  normaliseDevEui,
  normaliseId,
  normaliseMac,
  normaliseOpenTrv,
  normaliseOther,
  normaliseUuid,
  resolveIdKind,
} from '../../src/devices/types.js';
import { throwsCode } from '../helpers/assert.js';

test('MAC addresses: every common spelling becomes aa:bb:cc:dd:ee:ff', () => {
  for (const s of ['aa:bb:cc:dd:ee:ff', 'AA:BB:CC:DD:EE:FF', 'AA-BB-CC-DD-EE-FF', 'aabb.ccdd.eeff', 'AABBCCDDEEFF', ' aa:bb:cc:dd:ee:ff ', '0xaabbccddeeff']) {
    assert.equal(normaliseMac(s), 'aa:bb:cc:dd:ee:ff', s);
  }
  for (const s of ['', 'aa:bb:cc:dd:ee', 'aa:bb:cc:dd:ee:ff:00', 'aa:bb-cc:dd:ee:ff', 'gg:bb:cc:dd:ee:ff', 'a:b:c:d:e:f', 'aab:bcc:dde:eff', 'aabbccddeef', 'aa::bb:cc:dd:ee:ff']) {
    assert.equal(normaliseMac(s), undefined, s);
  }
  throwsCode(() => normaliseId('mac', '12:34'), 'BH_DEVICE_ID', 'id');
});

test('DevEUIs: 16 lower-case hex digits', () => {
  for (const s of ['70B3D57ED0001234', '70b3d57ed0001234', '70-B3-D5-7E-D0-00-12-34', '70:b3:d5:7e:d0:00:12:34', '0x70B3D57ED0001234']) {
    assert.equal(normaliseDevEui(s), '70b3d57ed0001234', s);
  }
  for (const s of ['70B3D57ED000123', '70B3D57ED00012345', '70B3D57ED000123Z', '70-B3-D5-7E-D0-00-1234']) assert.equal(normaliseDevEui(s), undefined, s);
  throwsCode(() => normaliseId('deveui', 'nope', 'row.id'), 'BH_DEVICE_ID', 'row.id');
});

test('UUIDs: lower-case 8-4-4-4-12, from braces, urn:uuid: or no hyphens', () => {
  const c = '123e4567-e89b-12d3-a456-426614174000';
  for (const s of [c, c.toUpperCase(), `{${c}}`, `urn:uuid:${c}`, c.replace(/-/g, '')]) assert.equal(normaliseUuid(s), c, s);
  for (const s of ['123e4567-e89b-12d3-a456-42661417400', '123e4567-e89b12d3-a456-426614174000', 'x23e4567-e89b-12d3-a456-426614174000', '']) {
    assert.equal(normaliseUuid(s), undefined, s);
  }
});

test('OpenTRV node ids follow the decoder\'s own rule (same function), 2 to 8 bytes', () => {
  for (const [raw, id] of [['D49', '0d49'], ['d49', '0d49'], ['0D49', '0d49'], ['1', '0001'], ['819C', '819c'], ['0x819c', '819c'], ['ABCDEF0123456789', 'abcdef0123456789']]) {
    assert.equal(normaliseOpenTrv(raw!), id, raw);
  }
  for (const raw of ['819c', 'D49', '1', '0123456789abcdef']) assert.equal(normaliseOpenTrv(raw), canonicalNodeId(raw));
  for (const raw of ['', 'xyz', 'ABCDEF01234567890', '81 9c']) assert.equal(normaliseOpenTrv(raw), undefined, raw);
});

test('other ids: printable, no spaces, case kept', () => {
  assert.equal(normaliseOther(' Kitchen-1 '), 'Kitchen-1');
  assert.equal(normaliseOther('urn:dev:ow:10e2073a01080063'), 'urn:dev:ow:10e2073a01080063');
  for (const s of ['', 'two words', 'tab\there', 'é', 'x'.repeat(129)]) assert.equal(normaliseOther(s), undefined, s);
});

test('the kind is guessed only from forms no other kind uses; otherwise it must be given', () => {
  assert.equal(guessIdKind('123e4567-e89b-12d3-a456-426614174000'), 'uuid');
  assert.equal(guessIdKind('AA-BB-CC-DD-EE-FF'), 'mac');
  assert.equal(guessIdKind('70-b3-d5-7e-d0-00-12-34'), 'deveui');
  assert.equal(guessIdKind('aabbccddeeff'), undefined); // a MAC, or a 6-byte OpenTRV id
  assert.equal(guessIdKind('0d49'), undefined);
  assert.equal(resolveIdKind('0d49', 'opentrv'), 'opentrv');
  throwsCode(() => resolveIdKind('0d49', undefined), 'BH_DEVICE_ID', 'kind');
  throwsCode(() => resolveIdKind('0d49', 'serial'), 'BH_DEVICE_ID', 'kind');
});

test('locations: levels that would widen a topic are refused, empty ones dropped, "abroad" reserved', () => {
  assert.deepEqual(checkLocation({ site: '', building: ' U4 ', room: '301' }), { building: 'U4', room: '301' });
  assert.deepEqual(checkLocation({ building: 'outside', room: 'parking north' }), { building: 'outside', room: 'parking north' });
  for (const room of ['+', '#', 'a/b', '$SYS', 'x\u0000', 'r'.repeat(65)]) {
    throwsCode(() => checkLocation({ building: 'u4', room }), 'BH_DEVICE_LOCATION', 'location.room');
  }
  throwsCode(() => checkLocation({ building: 'Abroad', room: '1' }), 'BH_DEVICE_LOCATION', 'location.building');
  throwsCode(() => checkLocation({ site: 'a+b' }, ''), 'BH_DEVICE_LOCATION', 'site');
});

test('tags: trimmed, de-duplicated, sorted; separators refused', () => {
  assert.deepEqual(checkTags([' b', 'a', 'b', '']), ['a', 'b']);
  throwsCode(() => checkTags(['a;b']), 'BH_DEVICE_FIELD', 'tags');
  throwsCode(() => checkTags(['a,b']), 'BH_DEVICE_FIELD', 'tags');
});
