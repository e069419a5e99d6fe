// Inputs that can run out (a file replay, a simulator with `count`) also expose `done()`. The core `Input` interface
// does not name it: the `lines` and `simulator` definitions return this type, so code that creates them directly (the
// tests) can await the end of their source. The hub holds plain `Input`s and does not wait for it.
import type { Input } from '../core/driver.js';

export interface FiniteInput extends Input {
  /**
   * Resolves once the input will emit nothing more and every emit it made has resolved (so all its readings are
   * queued): at the end of a finite source, or after `stop()`. Never rejects.
   */
  done(): Promise<void>;
}
