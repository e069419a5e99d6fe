// Bounded JSON: the one place that limits how deeply a JSON document from outside (a frame, a device's status, an
// API body) may nest, before anything parses it. JSON.parse itself copes with deep nesting, but what comes after
// does not: JSON.stringify, structured clones and every recursive walk overflow the stack on a 100,000-deep value,
// and one such value made the registry's batch write fail for every device in it.
import { BackhaulError } from './errors.js';

/** Deepest nesting of arrays and objects taken from outside; real device payloads and API bodies stay far below. */
export const MAX_JSON_DEPTH = 64;

const OPEN_ARRAY = 0x5b; // [
const OPEN_OBJECT = 0x7b; // {
const CLOSE_ARRAY = 0x5d; // ]
const CLOSE_OBJECT = 0x7d; // }
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \

/**
 * Where `text` first nests deeper than `max` arrays and objects (the index of the bracket that goes too deep), or -1
 * when it never does. One pass, brackets inside strings not counted; exact for valid JSON, and anything it
 * miscounts in invalid JSON fails JSON.parse anyway.
 */
export function jsonDepthExceeded(text: string, max: number = MAX_JSON_DEPTH): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) {
      inString = true;
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > max) return i;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    }
  }
  return -1;
}

/**
 * Throws BH_DECODE_DEPTH (naming the limit and where it was passed) when `text` nests deeper than `max`; call it
 * before JSON.parse on anything that came from outside. `what` names the document in the message.
 */
export function checkJsonDepth(text: string, max: number = MAX_JSON_DEPTH, what = 'the JSON document'): void {
  const at = jsonDepthExceeded(text, max);
  if (at >= 0) {
    throw new BackhaulError('BH_DECODE_DEPTH', `${what} nests arrays and objects deeper than ${max} levels (at character ${at}); refused unparsed`, {
      path: '$',
    });
  }
}
