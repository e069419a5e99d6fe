// `store`: where the device registry (with its orders, audit log and alarms) and the API tokens are kept: the SQLite file in the data
// folder (the default), or a PostgreSQL database every instance of a cluster shares. Its own file so the top-level
// schema only names it.
import { Type, type Static } from '@sinclair/typebox';

export const StoreOptions = Type.Object(
  {
    type: Type.Union([Type.Literal('sqlite'), Type.Literal('postgres')], {
      default: 'sqlite',
      description: '`sqlite`: `<data>/registry.sqlite` and `<data>/tokens.sqlite`, this instance\'s own. `postgres`: a PostgreSQL database (15 or newer) shared by every instance that names it.',
    }),
    url: Type.Optional(
      Type.String({
        pattern: '^postgres(ql)?://',
        urlCredentials: true,
        description: 'For `postgres`: the database, `postgres://user@host:5432/db`. Put the password in `password`, not here.',
      }),
    ),
    // The top level is validated before secrets are resolved, so the reference form is allowed here.
    password: Type.Optional(
      Type.Union([Type.String({ minLength: 1 }), Type.Object({ secret: Type.String({ minLength: 1 }) }, { additionalProperties: false })], {
        description: 'For `postgres`: the user\'s password; use `{"secret": NAME}`.',
        secret: true,
      }),
    ),
    schema: Type.String({ pattern: '^[a-z_][a-z0-9_]{0,62}$', default: 'backhaul', description: 'For `postgres`: the schema holding the registry\'s tables and the API tokens (made if missing).' }),
  },
  { additionalProperties: false, default: { type: 'sqlite' }, description: 'Where the device registry and the API tokens are kept (docs/deployment.md). Absent: SQLite in the data folder.' },
);
export type StoreOptions = Static<typeof StoreOptions>;
/** After the loader: the password resolved. */
export type StoreConfig = Omit<StoreOptions, 'password'> & { readonly password?: string };
