// Device-id and event-type globs: `*` any run of characters, `?` one character. Ten lines are better than a
// dependency here.
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}

export function globMatcher(globs: readonly string[] | undefined): ((s: string) => boolean) | undefined {
  if (!globs) return undefined;
  const exact = new Set(globs.filter((g) => !/[*?]/.test(g)));
  const res = globs.filter((g) => /[*?]/.test(g)).map(globToRegExp);
  return (s) => exact.has(s) || res.some((r) => r.test(s));
}
