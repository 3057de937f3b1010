import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { queryEvents, verifyChain } from '../../src/audit/index.ts';
import { STORE_TARGETS } from '../support/databases.ts';
import { withStore } from './helpers.ts';

const CHILD = new URL('./append-child.ts', import.meta.url).pathname;
/** Acknowledged batches to wait for before the kill: the child is mid-run, not starting. */
const ACKS_BEFORE_KILL = 15;

for (const target of STORE_TARGETS) {
  describe(`audit log after kill -9 on ${target.name}`, () => {
    it('keeps every acknowledged event and a chain that verifies', async () => {
      const url = target.freshUrl();
      await withStore(url, async () => {});
      const child = spawn(process.execPath, [CHILD, url, '10000000', '250', 'k9'], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      const acknowledged: number[] = [];
      let buffered = '';
      const enough = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error('child acknowledged too little within 60 s')),
          60_000,
        );
        child.stdout.on('data', (chunk: Buffer) => {
          buffered += chunk.toString('utf8');
          const lines = buffered.split('\n');
          buffered = lines.pop() ?? '';
          for (const line of lines) if (/^\d+$/.test(line)) acknowledged.push(Number(line));
          if (acknowledged.length >= ACKS_BEFORE_KILL) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      await enough;
      child.kill('SIGKILL');
      const [, signal] = await once(child, 'exit');
      assert.equal(signal, 'SIGKILL');
      const highest = Math.max(...acknowledged);
      await withStore(url, async (store) => {
        const result = await verifyChain(store);
        assert.equal(result.ok, true, JSON.stringify(result.problem));
        assert.ok(result.lastSeq >= highest, `acknowledged ${highest}, found ${result.lastSeq}`);
        // One writer, so seq n is the child's event n - 1: the last acknowledged one is there, intact.
        const last = await queryEvents(store, { afterSeq: highest - 1, order: 'asc', limit: 1 });
        const event = last.events[0];
        assert.equal(event?.seq, highest);
        assert.equal(event?.kind === 'decision' ? event.requestId : undefined, `k9-${highest - 1}`);
      });
    });
  });
}
