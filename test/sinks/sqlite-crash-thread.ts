// A historian thread that ends itself when asked to open a file named `crash.sqlite` or to write a batch holding a
// reading of device `crash`: the sqlite sink tests' stand-in for a writer thread that dies (out of memory, a native
// crash). Everything else is the real thread's handling.
import { basename } from 'node:path';
import { serveRequests } from '../../src/core/worker.js';
import type { Message } from '../../src/core/types.js';
import { historianHandlers, type OpenRequest, type WriteRequest } from '../../src/sinks/sqlite/writer.js';

const handlers = historianHandlers();
serveRequests({
  ...handlers,
  open(req: OpenRequest) {
    if (basename(req.path) === 'crash.sqlite') process.exit(3);
    return handlers.open(req);
  },
  write(req: WriteRequest) {
    const batch = JSON.parse(req.batch) as Message[];
    if (batch.some((m) => m.device === 'crash')) process.exit(3); // in a worker, ends this thread only
    return handlers.write(req);
  },
});
