// Appends events to the audit log of a database and prints, one per line, the last seq
// acknowledged after each flush resolved. For the kill -9 and two-process tests.
import { createAuditLog } from '../../src/audit/index.ts';
import { openStore } from '../../src/store/index.ts';
import { decision } from './helpers.ts';

const [url, countText, batchText, tag] = process.argv.slice(2);
if (!url || !countText || !batchText) throw new Error('usage: append-child.ts URL COUNT BATCH [TAG]');
const count = Number(countText);
const batch = Number(batchText);
const store = await openStore(url);
const log = createAuditLog(store, { batchSize: batch, queueLimit: batch * 4 });
for (let index = 0; index < count; ) {
  for (let inBatch = 0; inBatch < batch && index < count; inBatch++, index++) {
    log.enqueue(
      decision({
        time: Date.now(),
        path: `/${tag ?? 'child'}/${index}`,
        requestId: `${tag ?? 'child'}-${index}`,
      }),
    );
  }
  await log.flush();
  process.stdout.write(`${log.stats.lastSeq}\n`);
}
await log.close();
await store.close();
process.stdout.write('done\n');
