// The audit writer's thread (see workerAppender in appender.ts): owns a connection to the
// SQLite file and, per batch, links the chain, inserts, signs a due checkpoint and
// commits, one batch at a time in arrival order.
import { parentPort, workerData } from 'node:worker_threads';
import { openStore, type Store } from '../store/index.ts';
import { appendBatch } from './append.ts';
import { summarize, type WorkerBatch, type WorkerInit, type WorkerReply } from './appender.ts';
import type { PreparedEvent } from './chain.ts';

const port = parentPort;
if (!port) throw new Error('append-worker.ts runs as a worker thread of the audit writer');
const { file, signer } = workerData as WorkerInit;

// The schema is the server's business: this connection never migrates.
const opened: Promise<Store> = openStore(`sqlite://${file}`, { migrate: false });
// A failed open is reported with each batch (the writer retries), not as a crash.
opened.catch(() => {});
let tail: Promise<void> = Promise.resolve();

async function append(batch: WorkerBatch): Promise<WorkerReply> {
  try {
    const store = await opened;
    const events: PreparedEvent[] = new Array(batch.ids.length);
    for (let index = 0; index < events.length; index++) {
      events[index] = {
        id: batch.ids[index] as string,
        time: batch.times[index] as number,
        kind: batch.kinds[index] as PreparedEvent['kind'],
        dataJson: batch.data[index] as string,
      };
    }
    const { rows, checkpoint } = await appendBatch(store, events, {
      checkpointEvery: batch.checkpointEvery,
      now: batch.now,
      ...(signer ? { signer } : {}),
    });
    return { id: batch.id, ok: true, summary: summarize(rows, batch.hashes, checkpoint) };
  } catch (error) {
    const { name, message, code } = error as { name?: string; message?: string; code?: unknown };
    return {
      id: batch.id,
      ok: false,
      error: {
        name: typeof name === 'string' ? name : 'Error',
        message: typeof message === 'string' ? message : String(error),
        ...(typeof code === 'string' ? { code } : {}),
      },
    };
  }
}

port.on('message', (message: WorkerBatch | { type: 'close' }) => {
  if (message.type === 'append') {
    tail = tail.then(async () => port.postMessage(await append(message)));
    return;
  }
  tail = tail.then(async () => {
    await opened.then((store) => store.close()).catch(() => {});
    port.close();
  });
});
