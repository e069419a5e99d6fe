// A small helper for the SQLite query builders (registry, historian): a WHERE clause from the filters a caller set.
export type SqlParams = Record<string, string | number | null>;

/** One condition: its SQL naming a parameter (`device = @device`), the parameter's name, and its value. */
export type SqlCondition = readonly [sql: string, name: string, value: string | number | null | undefined];

/** ` WHERE a AND b` from the conditions whose value is defined (empty when none is), with their parameters. */
export function whereClause(conditions: readonly SqlCondition[]): { sql: string; params: SqlParams } {
  const clauses: string[] = [];
  const params: SqlParams = {};
  for (const [sql, name, value] of conditions) {
    if (value === undefined) continue;
    clauses.push(sql);
    params[name] = value;
  }
  return { sql: clauses.length > 0 ? ` WHERE ${clauses.join(' AND ')}` : '', params };
}
