// A driver made straight from its definition, as the hub makes it after the config loader: options with the schema's
// defaults filled in (defaults live only in the schemas, so a driver reads `o.timeoutMs`, never `o.timeoutMs ?? …`).
// Only defaults are filled, nothing is validated: a test may hand a driver what its own `create` must refuse.
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

export function createWithDefaults<O, C extends unknown[], R>(
  def: { readonly options: TSchema; create(options: O, ...rest: C): R },
  partial: Partial<O>,
  ...rest: C
): R {
  return def.create(Value.Default(def.options, structuredClone(partial)) as O, ...rest);
}
