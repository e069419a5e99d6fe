// Bounded JSON: the one place that limits the shape of a JSON document from outside (a frame, a device's status, an
// API body) before anything parses it. JSON.parse itself copes with deep nesting, but what comes after does not:
// JSON.stringify, structured clones and every recursive walk overflow the stack on a 100,000-deep value, and one
// such value made the registry's batch write fail for every device in it. Objects with tens of thousands of members
// cost V8 more than linear time to build (and every step after that touches them), so their width is bounded too.
import { BackhaulError } from './errors.js';

/** Deepest nesting of arrays and objects taken from outside; real device payloads and API bodies stay far below. */
export const MAX_JSON_DEPTH = 64;
/** Most members one JSON object may have; no device payload or API body comes near it. */
export const MAX_JSON_MEMBERS = 10_000;

const OPEN_ARRAY = 0x5b; // [
const OPEN_OBJECT = 0x7b; // {
const CLOSE_ARRAY = 0x5d; // ]
const CLOSE_OBJECT = 0x7d; // }
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \
const COLON = 0x3a; // :

export interface JsonBoundsProblem {
  /** `depth`: nested deeper than the limit; `members`: an object with more members than the limit. */
  readonly kind: 'depth' | 'members';
  /** Index of the character where the limit was passed. */
  readonly at: number;
}

/**
 * The first place where `text` nests deeper than `maxDepth` arrays and objects, or gives one object more than
 * `maxMembers` members; undefined when it does neither. One pass, nothing inside strings counted; exact for valid
 * JSON, and anything it miscounts in invalid JSON fails JSON.parse anyway.
 */
export function jsonBoundsProblem(text: string, maxDepth = MAX_JSON_DEPTH, maxMembers = MAX_JSON_MEMBERS): JsonBoundsProblem | undefined {
  let depth = 0;
  let inString = false;
  // Members so far of the object open at each depth (-1 for an array); depth never exceeds maxDepth here.
  const members = new Int32Array(maxDepth + 1);
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > maxDepth) return { kind: 'depth', at: i };
      members[depth] = c === OPEN_OBJECT ? 0 : -1;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      if (depth > 0) depth--;
    } else if (c === COLON && depth > 0 && members[depth]! >= 0) {
      // In valid JSON a colon outside strings separates one object member's key from its value.
      if (++members[depth]! > maxMembers) return { kind: 'members', at: i };
    }
  }
  return undefined;
}

/**
 * Throws BH_DECODE_DEPTH (nested deeper than `maxDepth`) or BH_DECODE_TOO_MANY (an object with more than
 * `maxMembers` members), each naming the limit and where it was passed; call it before JSON.parse on anything that
 * came from outside. `what` names the document in the message.
 */
export function checkJsonBounds(text: string, what = 'the JSON document', maxDepth = MAX_JSON_DEPTH, maxMembers = MAX_JSON_MEMBERS): void {
  const p = jsonBoundsProblem(text, maxDepth, maxMembers);
  if (p?.kind === 'depth') {
    throw new BackhaulError('BH_DECODE_DEPTH', `${what} nests arrays and objects deeper than ${maxDepth} levels (at character ${p.at}); refused unparsed`, {
      path: '$',
    });
  }
  if (p?.kind === 'members') {
    throw new BackhaulError('BH_DECODE_TOO_MANY', `${what} has an object with more than ${maxMembers} members (at character ${p.at}); refused unparsed`, {
      path: '$',
    });
  }
}

/** JSON with every object's keys sorted (undefined members left out): equal values give equal text, whatever the key order. */
export function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .filter((k) => o[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${stableJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}
