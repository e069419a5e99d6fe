// URLs in logs, errors and status: only what says where, never what may prove who (user info, paths and queries
// may hold tokens). Pure.

/** A URL as it may appear in logs and errors: scheme, host and port only (paths and queries may hold tokens). */
export function safeUrl(url: string | URL): string {
  try {
    const u = typeof url === 'string' ? new URL(url) : url;
    return `${u.protocol}//${u.host}`;
  } catch {
    return '(invalid URL)';
  }
}
