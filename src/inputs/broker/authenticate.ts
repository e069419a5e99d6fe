// Logins at the broker. Anonymous clients are refused unless `anonymous` is on. A login is either one of `users`
// (Backhaul's own clients and other services, each with topic filters for what it may publish and subscribe to) or a
// device from the registry (ctx.authenticate); only then does the username travel with its frames. Logins are rate
// limited per client address (core/ratelimit.ts), and a client id belongs to the login that first used it
// (sessions.ts: ClientIds), so no login resumes or takes over another's session.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Socket } from 'node:net';
import type { AedesOptions, Client } from 'aedes';
import type { Principal } from '../../core/driver.js';
import { BackhaulError } from '../../core/errors.js';
import { servicePrincipal } from './authorize.js';
import { presentedCertificate, type CertificateIdField, type PresentedCertificate } from './certificate.js';
import { ownerKey } from './sessions.js';
import { addressOf, type BrokerState } from './state.js';

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

interface ServiceUser {
  readonly username: string;
  readonly password: Buffer;
  /** What it may do: one object for all its connections. */
  readonly principal: Principal;
}

/** A service account as the options give it. */
export interface ServiceUserOptions {
  readonly username: string;
  readonly password: string;
  readonly publish?: readonly string[];
  readonly subscribe?: readonly string[];
}

/** aedes's `preConnect` and `authenticate` hooks for one input. */
export function loginHooks(
  s: BrokerState,
  serviceUsers: readonly ServiceUserOptions[],
  certificateId: CertificateIdField = 'cn',
): { preConnect: NonNullable<AedesOptions['preConnect']>; authenticate: NonNullable<AedesOptions['authenticate']> } {
  const ctx = s.ctx;
  const users = new Map<string, ServiceUser>(
    serviceUsers.map((u) => [
      u.username,
      { username: u.username, password: digest(u.password), principal: servicePrincipal(u.username, u.publish ?? ['#'], u.subscribe ?? ['#']) },
    ]),
  );
  const emptyPersistentId = new WeakSet<Client>(); // CONNECTs with an empty client id and clean session 0
  return {
    preConnect: (client, packet, callback) => {
      // MQTT-3.1.3-8: an empty client id with clean session 0 gets CONNACK 2. aedes would invent an id, so the
      // fact is kept here for `authenticate`, which can answer with a CONNACK.
      if (packet.clientId === '' && packet.clean === false) emptyPersistentId.add(client);
      callback(null, true);
    },
    // A client that gives a username must prove it: a service account's password, or a device's checked
    // against the registry; only then does the username travel with its frames.
    authenticate: (client, username, password, done) => {
      const address = addressOf(client) ?? '';
      const fail = (returnCode: 2 | 3 | 4 | 5, message: string) =>
        done(Object.assign(new Error(message), { returnCode }), false);
      const bad = (why: string) => {
        ctx.metrics.brokerRefused.inc({ input: ctx.id, reason: s.anonymous || username ? 'bad_login' : 'not_authorized' });
        s.countError('auth', 'MQTT login refused (anonymous, unknown user, wrong password, or device disabled)', new Error(why));
        fail(s.anonymous || username ? 4 : 5, 'bad username or password');
      };
      if (emptyPersistentId.has(client)) {
        s.refuse('client_id_empty', new BackhaulError('BH_MQTT_CLIENT_ID', 'empty client id with clean session 0 refused (MQTT-3.1.3-8)'), {
          remoteAddress: address,
        });
        fail(2, 'identifier rejected');
        return;
      }
      const admit = (p: Principal | undefined) => {
        // A client id belongs to the login that holds it (a connection, or a session aedes keeps for it).
        const owner = ownerKey(p);
        const ids = s.clientIds;
        if (!ids.claim(client.id, owner, client.conn, !client.clean)) {
          s.refuse(
            'client_id_taken',
            new BackhaulError('BH_MQTT_CLIENT_ID', `client id ${JSON.stringify(client.id)} belongs to another login; CONNACK 2`),
            { clientId: client.id, login: owner, holder: ids.ownerOf(client.id), remoteAddress: address },
          );
          fail(2, 'identifier rejected');
          return;
        }
        // Released when the connection closes (onSocketClose), also when it closed while the login was being
        // checked.
        const conn = client.conn as Socket;
        const c = s.conns.get(conn);
        if (c) {
          c.client = client;
          c.ids = ids;
        } else {
          ids.release(client.id, conn);
        }
        if (p) s.principals.set(client, p);
        done(null, true);
      };
      /** Refuses (CONNACK 3) a login over the per-address rate or in its backoff; true when it did. */
      const rateLimited = (): boolean => {
        const decision = s.logins!.attempt(address);
        if (decision.ok) return false;
        s.refuse(
          decision.reason === 'rate' ? 'login_rate' : 'login_backoff',
          new BackhaulError('BH_MQTT_LOGIN_RATE', `too many MQTT logins from ${address}; CONNACK 3, retry in ${decision.retryAfterMs} ms`),
          { remoteAddress: address, retryAfterMs: decision.retryAfterMs },
        );
        fail(3, 'server unavailable');
        return true;
      };
      // Rate limited like password logins: a certificate costs the registry a lookup too.
      const certificateLogin = (cert: PresentedCertificate, given: string | undefined): void => {
        if (rateLimited()) return;
        const limiter = s.logins!;
        const refuse = (why: string) => {
          // Where anyone may connect, a certificate that proves no device is no worse than none: the client is
          // anonymous, as it would be without one (its readings are not `authenticated`).
          if (s.anonymous && (given === undefined || given === '')) {
            limiter.success(address);
            admit(undefined);
            return;
          }
          limiter.failure(address);
          ctx.metrics.brokerRefused.inc({ input: ctx.id, reason: 'bad_certificate' });
          s.countError('auth-cert', 'MQTT certificate login refused (unverified certificate, not the registry\'s for that device, or device disabled)', new Error(why));
          fail(5, 'not authorized');
        };
        if (!cert.verified) return refuse(`client certificate not verified: ${cert.reason}`);
        if (cert.id === undefined || cert.id === '') return refuse(`the client certificate has no ${certificateId} to take the device id from`);
        const named = cert.id;
        if (given !== undefined && given !== '' && given !== named && given !== `x509:${named}`) return refuse(`username ${given} is not the id the certificate names (${named})`);
        ctx.authenticateCertificate(named, cert.fingerprint).then(
          (r) => {
            if ('refused' in r) return refuse(r.refused);
            limiter.success(address);
            admit(r.principal);
          },
          (err: unknown) => done(Object.assign(err instanceof Error ? err : new Error(String(err)), { returnCode: 3 }), false),
        );
      };
      // A certificate login: a client certificate the TLS listener verified, and no password. With a password the
      // password decides, as on any listener; a username, when given, must be the id the certificate names.
      const cert = password === undefined || password.length === 0 ? presentedCertificate(client, certificateId) : undefined;
      if (cert !== undefined) {
        certificateLogin(cert, username);
        return;
      }
      if (username === undefined || username === '') {
        if (s.anonymous) admit(undefined);
        else bad('anonymous client, and anonymous access is off');
        return;
      }
      if (rateLimited()) return;
      const limiter = s.logins!;
      const given = password ? Buffer.from(password).toString('utf8') : '';
      const verdict = (p: Principal | undefined, why: string) => {
        if (p) {
          limiter.success(address);
          admit(p);
        } else {
          limiter.failure(address);
          bad(why);
        }
      };
      const service = users.get(username);
      if (service) {
        verdict(timingSafeEqual(digest(given), service.password) ? service.principal : undefined, `service user ${username}: wrong password`);
        return;
      }
      ctx.authenticate(username, given).then(
        (p) => verdict(p, `user ${username}`),
        (err: unknown) => done(Object.assign(err instanceof Error ? err : new Error(String(err)), { returnCode: 3 }), false),
      );
    },
  };
}
