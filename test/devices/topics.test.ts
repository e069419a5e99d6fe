// The topic scheme from location, and the ACL predicates the embedded broker will use: a device publishes only
// under its base topic (never on its command topic) and subscribes only to its command topic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeviceTypes } from '../../src/devices/device-types.js';
import { baseTopic, mayPublish, maySubscribe, locationLevel, TopicScheme, type AclSubject } from '../../src/devices/topics.js';
import type { Device } from '../../src/devices/types.js';

const types = new DeviceTypes();
const scheme = new TopicScheme(types);

type Placed = Pick<Device, 'type' | 'location' | 'enabled' | 'state'>;
const dev = (location: Device['location'], type = 'shutter', more: Partial<Placed> = {}): Placed => ({ type, location, enabled: true, state: 'ACTIVE', ...more });

test('indoor devices of the own site: <building>/<room>/<kind>', () => {
  assert.deepEqual(scheme.topics(dev({ building: 'u4', room: '301' })), {
    base: 'u4/301/shutter',
    status: 'u4/301/shutter/device',
    command: 'u4/301/shutter/command',
  });
  assert.equal(scheme.baseTopic(dev({ building: 'U4', room: 'Salle  Bleue' }, 'opentrv-valve')), 'u4/salle-bleue/valve');
  assert.equal(scheme.baseTopic(dev({ building: 'u4', room: '301' }, 'room-sensor')), 'u4/301/sensors');
});

test('remote sites under abroad/<site>/, outdoor devices under outside/<area>/', () => {
  assert.equal(scheme.baseTopic(dev({ site: 'Rangueil', building: 'u4', room: '301' })), 'abroad/rangueil/u4/301/shutter');
  assert.equal(scheme.baseTopic(dev({ building: 'outside', room: 'parking-north' }, 'generic')), 'outside/parking-north/generic');
  assert.equal(scheme.baseTopic(dev({ site: 'rangueil', building: 'Outside' }, 'generic')), 'abroad/rangueil/outside/rangueil/generic');
  // with a home site, that site is local
  const home = new TopicScheme(types, { homeSite: 'UPS' });
  assert.equal(home.baseTopic(dev({ site: 'ups', building: 'u4', room: '301' })), 'u4/301/shutter');
  assert.equal(home.baseTopic(dev({ site: 'ups', building: 'outside' }, 'generic')), 'outside/ups/generic');
  assert.equal(home.baseTopic(dev({ site: 'rangueil', building: 'u4', room: '301' })), 'abroad/rangueil/u4/301/shutter');
  // a prefix goes first
  assert.equal(new TopicScheme(types, { prefix: 'campus/ut3' }).baseTopic(dev({ building: 'u4', room: '301' })), 'campus/ut3/u4/301/shutter');
});

test('an incomplete location gives no topics (nothing may be published until the device is placed)', () => {
  assert.equal(scheme.topics(dev({})), undefined);
  assert.equal(scheme.topics(dev({ building: 'u4' })), undefined);
  assert.equal(scheme.topics(dev({ room: '301' })), undefined);
  assert.equal(scheme.topics(dev({ building: 'outside' })), undefined);
  assert.equal(scheme.mayPublish(dev({ building: 'u4' }), 'u4'), false);
  assert.equal(scheme.maySubscribe(dev({ building: 'u4' }), 'u4/command'), false);
});

test('levels are sanitised even when a stored value slipped past validation: no wildcard or separator survives', () => {
  assert.equal(locationLevel('+'), '_');
  assert.equal(locationLevel('#'), '_');
  assert.equal(locationLevel('a/b'), 'a_b');
  assert.equal(locationLevel('$SYS'), '_sys');
  assert.equal(locationLevel('x\u0000y'), 'x_y');
  assert.equal(locationLevel('   '), undefined);
  assert.equal(baseTopic({ building: 'u4', room: '+' }, 'shutter'), 'u4/_/shutter');
  assert.equal(baseTopic({ building: 'u4', room: '../..' }, 'shutter'), 'u4/.._../shutter');
  assert.equal(baseTopic({ building: 'u4', room: '#' }, 'shutter'), 'u4/_/shutter');
  assert.equal(baseTopic({ building: 'u4', room: 'a/b' }, 'shutter'), 'u4/a_b/shutter');
  assert.equal(baseTopic({ building: 'abroad', room: 'x' }, 'shutter'), undefined); // would reach remote sites' topics
  assert.equal(baseTopic({ building: 'u4', room: '301' }, '+'), 'u4/301/_');
});

const s = (base: string | undefined, more: Partial<AclSubject> = {}): AclSubject => ({ enabled: true, state: 'ACTIVE', baseTopic: base, ...more });

test('mayPublish: its base topic and below, except its command topic; nothing else', () => {
  const d = s('u4/301/shutter');
  for (const t of ['u4/301/shutter', 'u4/301/shutter/device', 'u4/301/shutter/position', 'u4/301/shutter/a/b']) assert.equal(mayPublish(d, t), true, t);
  for (const t of [
    'u4/301/shutter/command', // would give orders to the other shutters of the room
    'u4/301/shutter/command/x',
    'u4/301/shutters', // a sibling that merely shares the prefix
    'u4/301',
    'u4/302/shutter/device',
    'u4/301/valve/device',
    'abroad/x/u4/301/shutter',
    'u4/301/shutter/+',
    'u4/301/shutter/#',
    'u4/301/shutter/x\u0000',
    '$SYS/broker',
    '',
  ]) {
    assert.equal(mayPublish(d, t), false, t);
  }
  assert.equal(mayPublish(s(undefined), 'u4/301/shutter'), false);
  assert.equal(mayPublish(s('u4/301/shutter', { enabled: false }), 'u4/301/shutter/device'), false);
  assert.equal(mayPublish(s('u4/301/shutter', { state: 'BLOCKED' }), 'u4/301/shutter/device'), false);
  assert.equal(mayPublish(s('u4/301/shutter', { state: 'INIT' }), 'u4/301/shutter/device'), true);
});

test('maySubscribe: its own command topic exactly', () => {
  const d = s('u4/301/shutter');
  assert.equal(maySubscribe(d, 'u4/301/shutter/command'), true);
  for (const f of ['u4/301/shutter/#', 'u4/301/shutter/+', 'u4/301/+/command', '+/+/+/command', '#', 'u4/301/shutter/device', 'u4/301/shutter/command/#', '$share/g/u4/301/shutter/command', 'u4/302/shutter/command']) {
    assert.equal(maySubscribe(d, f), false, f);
  }
  assert.equal(maySubscribe(s('u4/301/shutter', { enabled: false }), 'u4/301/shutter/command'), false);
  assert.equal(maySubscribe(s('u4/301/shutter', { state: 'BLOCKED' }), 'u4/301/shutter/command'), false);
});

test('a room named to attack the scheme never reaches another place\'s topics', () => {
  // what validation would refuse, through the scheme anyway: the device stays in its own (odd) level
  const attacker = scheme.subject(dev({ building: 'u4', room: '+' }));
  assert.equal(attacker.baseTopic, 'u4/_/shutter');
  assert.equal(mayPublish(attacker, 'u4/301/shutter/device'), false);
  assert.equal(maySubscribe(attacker, 'u4/+/shutter/command'), false);
  const slash = scheme.subject(dev({ building: 'u4', room: '301/shutter/command' }));
  assert.equal(mayPublish(slash, 'u4/301/shutter/command'), false);
  // no base is a proper prefix of another: local bases have 3 levels, remote ones 5 under `abroad`
  const local = scheme.baseTopic(dev({ building: 'rangueil', room: 'u4' }))!; // rangueil/u4/shutter
  const remote = scheme.baseTopic(dev({ site: 'rangueil', building: 'u4', room: '301' }))!;
  assert.ok(!remote.startsWith(`${local}/`));
});
