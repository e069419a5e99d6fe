// `brokerSync`: an external Mosquitto 2 kept in step with the device registry through its dynamic-security plugin
// (src/runtime/dynsec.ts). Its own file so the top-level schema only names it.
import { Type, type Static } from '@sinclair/typebox';

export const BrokerSyncOptions = Type.Object(
  {
    type: Type.Literal('mosquitto-dynsec', { description: 'The only kind for now: Mosquitto 2 with `mosquitto_dynamic_security.so`.' }),
    url: Type.String({
      minLength: 1,
      urlCredentials: true,
      description: 'The broker, e.g. `mqtt://127.0.0.1:1883` or `mqtts://broker.example:8883`. Put the login in `username`/`password`, not here.',
    }),
    username: Type.String({ minLength: 1, description: 'A dynamic-security client whose role may publish to `$CONTROL/dynamic-security/#` (the `admin` that `mosquitto_ctrl dynsec init` makes).' }),
    // The top level is validated before secrets are resolved, so the reference form is allowed here.
    password: Type.Union([Type.String({ minLength: 1 }), Type.Object({ secret: Type.String({ minLength: 1 }) }, { additionalProperties: false })], {
      description: 'Its password: use `{"secret": NAME}`.',
      secret: true,
    }),
    rolePrefix: Type.String({
      minLength: 1,
      maxLength: 64,
      pattern: '^[A-Za-z0-9_.-]+$',
      default: 'backhaul-device-',
      description: 'Each device gets a role named this plus its username; clients and roles Backhaul manages are also marked in their `textdescription`.',
    }),
    resyncMs: Type.Integer({
      minimum: 0,
      default: 3_600_000,
      description: 'A full resync this often (ms) besides the one at start and those after registry changes; 0: none on a timer.',
    }),
    batchSize: Type.Integer({ minimum: 1, maximum: 1000, default: 200, description: 'Dynamic-security commands sent per MQTT message.' }),
    timeoutMs: Type.Integer({ minimum: 100, default: 10_000, description: 'How long to wait for the plugin to answer one message of commands.' }),
  },
  { additionalProperties: false, description: 'Keep an external Mosquitto 2 (dynamic-security plugin) in step with the device registry (docs/tls.md). Absent: none.' },
);
export type BrokerSyncOptions = Static<typeof BrokerSyncOptions>;
/** After the loader: the password resolved. */
export type BrokerSyncConfig = Omit<BrokerSyncOptions, 'password'> & { readonly password: string };
