// The three endpoints of mosquitto-go-auth's HTTP backend (github.com/iegomez/mosquitto-go-auth, README "HTTP" and
// backends/http.go), answered from the device registry, for sites whose Mosquitto uses that plugin rather than dynamic
// security. The contract, with `auth_opt_http_params_mode json` and `auth_opt_http_response_mode status` (its
// defaults): each check is a POST with `Content-Type: application/json`; a 2xx status allows, any other denies (a 5xx
// counts as an error of the backend, so we never answer one for a refusal).
//
//   user       {"username", "password", "clientid"}            the login: the device gate's own check (DeviceGate.verify)
//   superuser  {"username"}                                    always 403: no device is a superuser
//   acl        {"username", "clientid", "topic", "acc"}        acc 1 read (a message delivered to it), 2 write (publish),
//                                                              3 read and write, 4 subscribe
//
// ACLs answer with the embedded broker's predicates (src/devices/topics.ts): write under its base topic except its
// command topic, subscribe to and receive exactly its command topic, nothing while disabled or BLOCKED. Like the
// broker's principal, the ACL reads the registry on every check, so a disabled device loses its rights at once.
import { Type, type Static } from '@sinclair/typebox';
import type { Principal } from '../core/driver.js';
import type { DeviceStore } from '../devices/store/index.js';
import { mayPublish, maySubscribe, type TopicScheme } from '../devices/topics.js';
import { errorResponses, type ApiPlugin } from './server.js';

export const GO_AUTH_PREFIX = '/auth/mosquitto';

export interface GoAuthOptions {
  readonly store: DeviceStore;
  readonly scheme: TopicScheme;
  /** A device login as the embedded broker checks it (DeviceGate.verify). */
  readonly verify: (username: string, password: string) => Promise<Principal | undefined>;
}

// Bounded like MQTT's own fields: a username or topic longer than this is no device's.
const Text = (max: number) => Type.String({ maxLength: max });
const UserBody = Type.Object({ username: Text(1024), password: Text(1024), clientid: Type.Optional(Text(1024)) }, { additionalProperties: true });
const SuperuserBody = Type.Object({ username: Text(1024) }, { additionalProperties: true });
const AclBody = Type.Object(
  { username: Text(1024), clientid: Type.Optional(Text(1024)), topic: Text(65535), acc: Type.Integer({ minimum: 1, maximum: 7, description: '1 read, 2 write, 3 both, 4 subscribe.' }) },
  { additionalProperties: true },
);

/** acc bits as go-auth (and Mosquitto's MOSQ_ACL_*) define them. */
export const ACC_READ = 1;
export const ACC_WRITE = 2;
export const ACC_SUBSCRIBE = 4;

export function goAuthRoutes(o: GoAuthOptions): ApiPlugin {
  const deny = { ok: false } as const;
  const allow = { ok: true } as const;
  const Answer = Type.Object({ ok: Type.Boolean() });
  return (app) => {
    app.post<{ Body: Static<typeof UserBody> }>(
      `${GO_AUTH_PREFIX}/user`,
      {
        config: { public: true },
        schema: { operationId: 'goAuthUser', summary: 'mosquitto-go-auth: may this device log in?', tags: ['mosquitto'], body: UserBody, response: { 200: Answer, 403: Answer, ...errorResponses } },
      },
      async (req, reply) => {
        const p = await o.verify(req.body.username, req.body.password);
        if (p?.device === undefined) return reply.code(403).send(deny);
        return allow;
      },
    );
    app.post<{ Body: Static<typeof SuperuserBody> }>(
      `${GO_AUTH_PREFIX}/superuser`,
      {
        config: { public: true },
        schema: { operationId: 'goAuthSuperuser', summary: 'mosquitto-go-auth: never a superuser', tags: ['mosquitto'], body: SuperuserBody, response: { 403: Answer, ...errorResponses } },
      },
      async (_req, reply) => reply.code(403).send(deny),
    );
    app.post<{ Body: Static<typeof AclBody> }>(
      `${GO_AUTH_PREFIX}/acl`,
      {
        config: { public: true },
        schema: { operationId: 'goAuthAcl', summary: 'mosquitto-go-auth: may this device read, write or subscribe here?', tags: ['mosquitto'], body: AclBody, response: { 200: Answer, 403: Answer, ...errorResponses } },
      },
      async (req, reply) => {
        const { username, topic, acc } = req.body;
        const d = await o.store.getByUsername(username);
        if (!d?.credentials?.hash) return reply.code(403).send(deny);
        const subject = o.scheme.subject(d);
        // Every bit asked for must be allowed; a message delivered to it (read) is one on the topic it may subscribe to.
        const ok =
          (acc & (ACC_READ | ACC_WRITE | ACC_SUBSCRIBE)) !== 0 &&
          ((acc & ACC_WRITE) === 0 || mayPublish(subject, topic)) &&
          ((acc & ACC_READ) === 0 || maySubscribe(subject, topic)) &&
          ((acc & ACC_SUBSCRIBE) === 0 || maySubscribe(subject, topic));
        if (!ok) {
          req.log.debug({ username, topic, acc }, 'mosquitto-go-auth ACL check refused');
          return reply.code(403).send(deny);
        }
        return allow;
      },
    );
  };
}
