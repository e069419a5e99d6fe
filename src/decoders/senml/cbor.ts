// A linear pre-check of SenML CBOR before cbor-x decodes it. cbor-x reads far more than SenML needs, and some of it
// is dangerous on hostile input: shared references (tags 28/29) build self-referencing values that overflow every
// recursive walk, tag 27 builds RegExps, bignums (tags 2/3) cost quadratic time in their length, and deep nesting
// overflows the stack. One pass over the bytes, with an explicit stack, checks that the data item is well formed
// enough to walk, nests at most `maxDepth` deep, and uses only the tags SenML CBOR may carry.
import { BackhaulError } from '../../core/errors.js';

/** Tags the SenML decoder reads: bignums (2, 3), decimal fractions (4, as cbor-x turns them into numbers), and the
 * self-described CBOR marker (55799). Any other tag is refused. */
export const SENML_CBOR_TAGS: ReadonlySet<number> = new Set([2, 3, 4, 55799]);
/** Longest bignum content (bytes): a number larger than 2^128 is no sensor value, and cbor-x's bignum conversion is
 * quadratic in its length. */
export const MAX_BIGNUM_BYTES = 16;

const syntax = (detail: string) => new BackhaulError('BH_DECODE_SYNTAX', `not valid CBOR (${detail})`);

/**
 * Throws BH_DECODE_SYNTAX for a malformed or truncated item (or bytes after it), BH_DECODE_DEPTH past `maxDepth`
 * nested arrays, maps and tags, BH_DECODE_TOO_MANY for a map of more than `maxMembers` entries (as JSON objects are
 * bounded), BH_DECODE_CBOR_TAG for a tag outside SENML_CBOR_TAGS. Linear in the input.
 */
export function checkSenmlCbor(b: Uint8Array, maxDepth: number, maxMembers: number): void {
  const len = b.length;
  // Items still expected in each open array, map (2 per entry) or tag (1); -1 for indefinite-length containers.
  const open: number[] = [];
  // What each open container is: 'c' an array or tag, 'm' a map, 's2'/'s3' an indefinite byte/text string (only
  // chunks of its major type inside), 'b' a bignum tag (a short byte string inside).
  const kinds: string[] = [];
  // Items seen so far in each open indefinite-length map (keys and values).
  const seen: number[] = [];
  const tooMany = () => new BackhaulError('BH_DECODE_TOO_MANY', `a CBOR map has more than ${maxMembers} entries; refused undecoded`, { path: '$' });
  let pos = 0;
  for (;;) {
    if (pos >= len) throw syntax('the data ends inside an item');
    const ib = b[pos++]!;
    const major = ib >> 5;
    const ai = ib & 0x1f;
    const inside = kinds[kinds.length - 1];
    if (ib === 0xff) {
      // "break": closes the innermost indefinite-length container.
      if (open[open.length - 1] !== -1) throw syntax('a break outside an indefinite-length item');
      open.pop();
      kinds.pop();
      seen.pop();
    } else {
      let arg = 0;
      let indefinite = false;
      if (ai < 24) arg = ai;
      else if (ai <= 27) {
        const n = 1 << (ai - 24);
        if (pos + n > len) throw syntax('the data ends inside an item head');
        for (let k = 0; k < n; k++) arg = arg * 256 + b[pos + k]!;
        pos += n;
      } else if (ai === 31 && major >= 2 && major <= 5) indefinite = true;
      else throw syntax(`reserved or malformed item head 0x${ib.toString(16)}`);

      if (inside === 's2' || inside === 's3') {
        if (major !== Number(inside[1]) || indefinite) throw syntax('an indefinite-length string holds something else than chunks of its kind');
      }
      if (inside === 'b' && (major !== 2 || indefinite || arg > MAX_BIGNUM_BYTES)) {
        throw new BackhaulError('BH_DECODE_CBOR_TAG', `a bignum (tags 2, 3) must be a byte string of at most ${MAX_BIGNUM_BYTES} bytes`);
      }

      let opens = -2; // -2: this item is complete; otherwise the number of items it contains (-1 indefinite)
      let kind = 'c';
      switch (major) {
        case 0:
        case 1:
          break;
        case 2:
        case 3:
          if (indefinite) {
            opens = -1;
            kind = `s${major}`;
          } else {
            if (arg > len - pos) throw syntax('a string runs past the end of the data');
            pos += arg;
          }
          break;
        case 4:
        case 5: {
          if (major === 5) {
            kind = 'm';
            if (!indefinite && arg > maxMembers) throw tooMany();
          }
          const items = major === 5 ? arg * 2 : arg;
          // Every item takes at least one byte: a count larger than what is left is a lie, refused before anything
          // makes room for it.
          if (!indefinite && items > len - pos) throw syntax('an array or map claims more items than the data holds');
          opens = indefinite ? -1 : items === 0 ? -2 : items;
          break;
        }
        case 6:
          if (!SENML_CBOR_TAGS.has(arg)) {
            throw new BackhaulError(
              'BH_DECODE_CBOR_TAG',
              `CBOR tag ${arg}${arg === 28 || arg === 29 ? ' (a shared reference)' : ''} is not read here; SenML CBOR takes only tags ${[...SENML_CBOR_TAGS].join(', ')}`,
            );
          }
          opens = 1;
          kind = arg === 2 || arg === 3 ? 'b' : 'c';
          break;
        case 7:
          // Simple values and floats: ai 24 takes one byte, 25..27 two to eight, all consumed above.
          break;
      }
      if (opens !== -2) {
        if (open.length >= maxDepth) {
          throw new BackhaulError('BH_DECODE_DEPTH', `the CBOR item nests arrays, maps and tags deeper than ${maxDepth} levels; refused undecoded`, {
            path: '$',
          });
        }
        open.push(opens);
        kinds.push(kind);
        seen.push(0);
        continue;
      }
    }
    // An item is complete: count it in the definite containers it completes.
    while (open.length > 0) {
      const top = open.length - 1;
      if (open[top] === -1) {
        if (kinds[top] === 'm' && ++seen[top]! > 2 * maxMembers) throw tooMany();
        break;
      }
      open[top]!--;
      if (open[top]! > 0) break;
      open.pop();
      kinds.pop();
      seen.pop();
    }
    if (open.length === 0) {
      if (pos !== len) throw syntax(`${len - pos} byte(s) after the data item`);
      return;
    }
  }
}
