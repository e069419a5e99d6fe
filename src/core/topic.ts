// MQTT topic filter matching (MQTT 3.1.1 §4.7 / MQTT 5 §4.7): `+` matches exactly one level, `#` (last level only)
// matches the parent level and everything below it, and topics starting with `$` (`$SYS/...`) are not matched by a
// filter whose first level is a wildcard. Shared by the broker input and the router.

/** True when the topic filter `filter` matches the topic name `topic`. */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith('$') && (filter.startsWith('+') || filter.startsWith('#'))) return false;
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === '#') return i === f.length - 1; // `#` elsewhere than last is an invalid filter: matches nothing
    if (i >= t.length) return false;
    if (level !== '+' && level !== t[i]) return false;
  }
  return f.length === t.length;
}

/** True when any of the filters matches the topic. */
export function anyTopicMatches(filters: readonly string[], topic: string): boolean {
  for (const f of filters) if (topicMatches(f, topic)) return true;
  return false;
}

/** Why a topic filter is invalid, or null when it is valid. */
export function topicFilterError(filter: string): string | null {
  if (filter.length === 0) return 'a topic filter cannot be empty';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i] ?? '';
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) return '`#` must be a whole level, and the last one';
    if (level.includes('+') && level !== '+') return '`+` must be a whole level';
  }
  return null;
}

/** Config-time check of a list of topic filters: one problem per bad filter, at `<key>[i]`. */
export function topicProblems(filters: readonly string[], key: string): Array<{ path: string; message: string }> {
  const out: Array<{ path: string; message: string }> = [];
  filters.forEach((f, i) => {
    const why = topicFilterError(f);
    if (why) out.push({ path: `${key}[${i}]`, message: `${why}: ${JSON.stringify(f)}` });
  });
  return out;
}
