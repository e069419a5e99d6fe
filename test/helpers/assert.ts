import assert from 'node:assert/strict';
import { BackhaulError, type ErrorCode } from '../../src/core/errors.js';

/** Asserts `fn` throws a BackhaulError with this code (and path, when given); returns it for more checks. */
export function throwsCode(fn: () => unknown, code: ErrorCode, path?: string): BackhaulError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof BackhaulError, `expected a BackhaulError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (path !== undefined) assert.equal(caught.path, path, caught.message);
  return caught;
}
