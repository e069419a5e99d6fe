// The topic scheme: a device's MQTT topics follow from where it is and what it is, never from what it says.
//
//   indoor, own site      <building>/<room>/<kind>                 u4/301/shutter
//   outdoor, own site     outside/<area>/<kind>                     outside/parking-north/weather
//   remote site           abroad/<site>/<building>/<room>/<kind>    abroad/rangueil/u4/301/shutter
//                         abroad/<site>/outside/<area>/<kind>
//
//   <kind>   the device type's topic name (device-types.ts), e.g. `valve`, `shutter`, `sensors`
//   <area>   the room field of an outdoor device; its site when it has no room
//   site     empty for the concentrator's own site (or equal to the scheme's `homeSite`); any other site is remote
//
// Status goes to `<base>/device`, orders come on `<base>/command` (with a `dest`: a device id or `all`, since devices
// of one kind in one room share a base topic). Each level is lower-cased, with runs of white space turned into `-`;
// `/`, `+`, `#`, control characters and a leading `$` are refused when a location is stored (checkLocation) and
// replaced by `_` here, so no stored value can ever widen a topic. A device whose location is incomplete (no
// building, or no room indoors) has no topics: it may publish nothing until an operator places it.
//
// With an optional `prefix` (`campus`), every topic starts with it. Every local base has the same depth (3 levels
// after the prefix) and every remote base 5, starting with `abroad`, which no local building may be called: so no
// base topic is ever a proper prefix of another, and "publish under your base" cannot reach another place.
import type { DeviceTypes } from './device-types.js';
import { ABROAD, OUTSIDE, type Device, type DeviceState, type Location } from './types.js';

export const STATUS_LEVEL = 'device';
export const COMMAND_LEVEL = 'command';

export interface TopicSchemeOptions {
  /** The concentrator's own site: devices with this site (or none) are local. */
  readonly homeSite?: string;
  /** Levels put before every device topic, e.g. `campus` or `org/campus`. */
  readonly prefix?: string;
}

export interface DeviceTopics {
  readonly base: string;
  /** `<base>/device`: where the device reports its status. */
  readonly status: string;
  /** `<base>/command`: where it receives orders. */
  readonly command: string;
}

/**
 * A topic level named after a location value or type name: lower case, spaces → `-`, anything unsafe → `_`. (Sinks
 * escape untrusted values into a level by another rule: escapeTopicLevel in src/sinks/format.ts.)
 */
export function locationLevel(value: string): string | undefined {
  const v = value
    .trim()
    .toLowerCase()
    .replace(/\s+/g, '-')
    // eslint-disable-next-line no-control-regex
    .replace(/[/+#\x00-\x1f\x7f]/g, '_')
    .replace(/^\$/, '_');
  return v === '' ? undefined : v;
}

function sameSite(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  return locationLevel(a) === locationLevel(b);
}

/** The base topic for a location and a kind, or undefined when the location is not complete enough. */
export function baseTopic(location: Location, kind: string, opts: TopicSchemeOptions = {}): string | undefined {
  const kindLevel = locationLevel(kind);
  if (kindLevel === undefined) return undefined;
  const site = location.site === undefined ? undefined : locationLevel(location.site);
  const building = location.building === undefined ? undefined : locationLevel(location.building);
  const room = location.room === undefined ? undefined : locationLevel(location.room);
  const remote = site !== undefined && !sameSite(location.site, opts.homeSite);
  let local: string[] | undefined;
  if (building === OUTSIDE) {
    const area = room ?? site;
    if (area !== undefined) local = [OUTSIDE, area, kindLevel];
  } else if (building !== undefined && building !== ABROAD && room !== undefined) {
    local = [building, room, kindLevel];
  }
  if (local === undefined) return undefined;
  const levels = remote ? [ABROAD, site, ...local] : local;
  const prefix = opts.prefix === undefined || opts.prefix.trim() === '' ? [] : opts.prefix.split('/').map((l) => locationLevel(l) ?? '_');
  return [...prefix, ...levels].join('/');
}

export function topicsOf(base: string | undefined): DeviceTopics | undefined {
  if (base === undefined) return undefined;
  return { base, status: `${base}/${STATUS_LEVEL}`, command: `${base}/${COMMAND_LEVEL}` };
}

/** What the broker's ACL needs to know about a connected device. */
export interface AclSubject {
  readonly enabled: boolean;
  readonly state: DeviceState;
  /** Undefined: the device has no topics (incomplete location) and may neither publish nor subscribe. */
  readonly baseTopic: string | undefined;
}

function allowed(d: AclSubject): d is AclSubject & { baseTopic: string } {
  return d.enabled && d.state !== 'BLOCKED' && d.baseTopic !== undefined;
}

function hasWildcardOrNul(s: string): boolean {
  return /[+#\0]/.test(s);
}

/**
 * May this device publish on `topic`? Only on its base topic or below it, never on its command topic or below it
 * (devices of a room share a base: one must not give orders to the others), never while disabled or BLOCKED.
 */
export function mayPublish(d: AclSubject, topic: string): boolean {
  if (!allowed(d) || hasWildcardOrNul(topic)) return false;
  const base = d.baseTopic;
  if (topic !== base && !topic.startsWith(`${base}/`)) return false;
  const command = `${base}/${COMMAND_LEVEL}`;
  return topic !== command && !topic.startsWith(`${command}/`);
}

/** May this device subscribe to `filter`? Only to its own command topic, exactly (no wildcards, no shares). */
export function maySubscribe(d: AclSubject, filter: string): boolean {
  if (!allowed(d)) return false;
  return filter === `${d.baseTopic}/${COMMAND_LEVEL}`;
}

/** The scheme with its options and the device types, for code that has a whole Device. */
export class TopicScheme {
  constructor(
    private readonly types: DeviceTypes,
    readonly options: TopicSchemeOptions = {},
  ) {}

  /** The `<kind>` level: the type's topic name, or the type name itself for a type no longer known. */
  kindOf(typeName: string): string {
    return this.types.get(typeName)?.topicName ?? typeName;
  }

  baseTopic(device: Pick<Device, 'type' | 'location'>): string | undefined {
    return baseTopic(device.location, this.kindOf(device.type), this.options);
  }

  topics(device: Pick<Device, 'type' | 'location'>): DeviceTopics | undefined {
    return topicsOf(this.baseTopic(device));
  }

  subject(device: Pick<Device, 'type' | 'location' | 'enabled' | 'state'>): AclSubject {
    return { enabled: device.enabled, state: device.state, baseTopic: this.baseTopic(device) };
  }

  mayPublish(device: Pick<Device, 'type' | 'location' | 'enabled' | 'state'>, topic: string): boolean {
    return mayPublish(this.subject(device), topic);
  }

  maySubscribe(device: Pick<Device, 'type' | 'location' | 'enabled' | 'state'>, filter: string): boolean {
    return maySubscribe(this.subject(device), filter);
  }
}
