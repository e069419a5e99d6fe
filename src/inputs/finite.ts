// Inputs that can run out (a file replay, a simulator with `count`) also expose `done()`. The core `Input` interface
// does not name it, so callers holding a plain `Input` (the hub, replay) test for it with `isFiniteInput`.
import type { Input } from '../core/driver.js';

export interface FiniteInput extends Input {
  /**
   * Resolves once the input will emit nothing more and every emit it made has resolved (so all its readings are
   * queued): at the end of a finite source, or after `stop()`. Never rejects.
   */
  done(): Promise<void>;
}

export function isFiniteInput(input: Input): input is FiniteInput {
  return typeof (input as Partial<FiniteInput>).done === 'function';
}
