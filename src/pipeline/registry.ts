// Built-in stages. A new stage: a folder under stages/ with index.ts (definition + schema) and README.md, and a line here.
import type { StageDefinition } from '../core/driver.js';
import { deadbandStage } from './stages/deadband/index.js';
import { dedupeStage } from './stages/dedupe/index.js';
import { exprStage } from './stages/expr/index.js';
import { filterStage } from './stages/filter/index.js';
import { livemapStage } from './stages/livemap/index.js';
import { mapStage } from './stages/map/index.js';
import { privacyStage } from './stages/privacy/index.js';
import { rangeStage } from './stages/range/index.js';
import { scaleStage } from './stages/scale/index.js';
import { severityStage } from './stages/severity/index.js';
import { templateStage } from './stages/template/index.js';
import { throttleStage } from './stages/throttle/index.js';
import { windowStage } from './stages/window/index.js';

export const builtinStages: readonly StageDefinition[] = [
  filterStage,
  mapStage,
  scaleStage,
  rangeStage,
  exprStage,
  dedupeStage,
  deadbandStage,
  throttleStage,
  windowStage,
  livemapStage,
  privacyStage,
  severityStage,
  templateStage,
] as readonly StageDefinition[];
