// Small helpers shared by the input drivers.

/** A plain Uint8Array view of a Buffer's bytes (no copy), so frames carry exactly the type `Frame` declares. */
export function bytes(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** A promise with its resolve function, for `done()`. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
