// Entry of the sqlite sink's writer thread (spawned by index.ts); the handlers are in writer.ts.
import { serveRequests } from '../../core/worker.js';
import { historianHandlers } from './writer.js';

serveRequests(historianHandlers());
