// Built-in decoders. A new decoder: a folder here with index.ts (definition + options schema) and README.md, and a line below.
import type { DecoderDefinition } from '../core/driver.js';
import { chirpstackDecoder } from './chirpstack/index.js';
import { jsonDecoder } from './json/index.js';
import { opentrvDecoder } from './opentrv/index.js';
import { senmlDecoder } from './senml/index.js';
import { ttsDecoder } from './tts/index.js';

export const builtinDecoders: readonly DecoderDefinition[] = [opentrvDecoder, senmlDecoder, jsonDecoder, chirpstackDecoder, ttsDecoder] as readonly DecoderDefinition[];
