// Access control at the broker: what a login may publish and subscribe to. A device's Principal comes from the
// registry (devices/topics.ts, through ctx.authenticate), a service account's from its topic filters here; anonymous
// clients, when allowed, may do anything but publish to `$SYS`. A publish outside what the login may do closes its
// connection (MQTT 3.1.1 has no way to refuse one publish); a refused subscription gets return code 0x80.
import type { AedesOptions, Client } from 'aedes';
import type { Principal } from '../../core/driver.js';
import { topicMatches } from '../../core/topic.js';
import type { BrokerState } from './state.js';

/**
 * May a subscription `filter` be granted to someone allowed `allowed`? Only when every topic it can match is one the
 * allowed filter matches: equal, or narrower level by level (`+` inside `+` or `#`, `#` only inside `#`).
 */
export function filterWithin(filter: string, allowed: string): boolean {
  const f = filter.split('/');
  const a = allowed.split('/');
  for (let i = 0; i < f.length; i++) {
    const al = a[i];
    if (al === '#') return !f[0]?.startsWith('$') || a[0]?.startsWith('$') === true;
    if (al === undefined) return false;
    const fl = f[i]!;
    if (fl === '#') return false;
    if (al === '+') {
      if (i === 0 && fl.startsWith('$')) return false;
      continue;
    }
    if (fl === '+' || fl !== al) return false;
  }
  // `sport/#` also matches `sport` itself.
  return f.length === a.length || (a.length === f.length + 1 && a[f.length] === '#');
}

export function servicePrincipal(username: string, publish: readonly string[], subscribe: readonly string[]): Principal {
  return {
    username,
    mayPublish: (topic) => publish.some((f) => topicMatches(f, topic)),
    maySubscribe: (filter) => subscribe.some((a) => filterWithin(filter, a)),
  };
}

/** Anonymous clients, when allowed, may do anything but publish to `$SYS`. */
const ANYONE: Omit<Principal, 'username'> = { mayPublish: () => true, maySubscribe: () => true };

/** aedes's `authorizeSubscribe`: a filter outside what the login may subscribe to is refused alone (SUBACK 0x80). */
export function subscribeHook(s: BrokerState): NonNullable<AedesOptions['authorizeSubscribe']> {
  return (client, sub, callback) => {
    const p = client ? (s.principals.get(client) ?? (s.anonymous ? ANYONE : undefined)) : undefined;
    if (p?.maySubscribe(sub.topic)) {
      callback(null, sub);
      return;
    }
    s.countError('acl-sub', 'MQTT subscription refused by the topic ACL', new Error(`${client?.id ?? '?'} → ${sub.topic}`));
    callback(null, null); // SUBACK 0x80 for this filter; the client stays connected
  };
}

/**
 * The ACL half of aedes's `authorizePublish` (publish.ts calls it first): the error to answer a publish with that the
 * login may not make (counted; aedes closes the connection), or undefined when it may.
 */
export function publishRefusal(s: BrokerState, client: Client | null, topic: string): Error | undefined {
  if (topic.startsWith('$SYS/')) {
    return new Error('$SYS topics are reserved');
  }
  const p = client ? (s.principals.get(client) ?? (s.anonymous ? ANYONE : undefined)) : ANYONE;
  if (!p?.mayPublish(topic)) {
    const e = new Error(`not authorized to publish on ${topic}`);
    s.countError('acl-pub', 'MQTT publish refused by the topic ACL; connection closed', new Error(`${client?.id ?? '?'} → ${topic}`));
    s.counted.add(e);
    return e;
  }
  return undefined;
}
