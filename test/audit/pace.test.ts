import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { appendBatch } from '../../src/audit/append.ts';
import { batchIdPrefix, eventId, prepareEvent } from '../../src/audit/chain.ts';
import { createAuditLog, verifyChain } from '../../src/audit/index.ts';
import { eventLoopPace, type Pace, threadPace } from '../../src/audit/pace.ts';
import { ManualClock } from '../../src/internal/clock.ts';
import { freshSqliteUrl } from '../support/databases.ts';
import { decision, T0, withStore } from './helpers.ts';

function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin: a batch's work holding the CPU
  }
}

describe('audit: pacing a batch', () => {
  it('threadPace sleeps as long as the thread ran once it has run a slice, and not before', () => {
    // Bounds far apart, so that a stall of this machine cannot pass for a sleep or hide one.
    const pace = threadPace(100);
    const before = performance.now();
    assert.equal(pace(), undefined);
    assert.ok(performance.now() - before < 100, 'no sleep before a slice has run');
    busyFor(120);
    const sleeping = performance.now();
    assert.equal(pace(), undefined, 'a synchronous sleep, nothing to await');
    assert.ok(performance.now() - sleeping >= 119, 'slept about as long as it ran');
    const after = performance.now();
    pace();
    assert.ok(performance.now() - after < 100, 'the clock starts again after the sleep');
  });

  it('threadPace sleeps at most a few slices after a long wait (a preempted thread must not fall behind)', () => {
    const pace = threadPace(20);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 400);
    const start = performance.now();
    pace();
    const slept = performance.now() - start;
    assert.ok(slept >= 79, `slept the longest sleep, 4 slices (${slept} ms)`);
    assert.ok(slept < 250, `not the 400 ms the thread was away (${slept} ms)`);
  });

  it('eventLoopPace hands the event loop back every so many steps', async () => {
    const pace = eventLoopPace(3);
    const steps = [pace(), pace(), pace(), pace(), pace(), pace()];
    assert.deepEqual(
      steps.map((step) => step instanceof Promise),
      [false, false, true, false, false, true],
    );
    let resolved = false;
    void steps[2]?.then(() => {
      resolved = true;
    });
    for (let microtask = 0; microtask < 10; microtask++) await Promise.resolve();
    assert.equal(resolved, false, 'not within the same turn of the event loop');
    await steps[2];
    assert.equal(resolved, true);
  });

  it('links and inserts a paced batch exactly as an unpaced one', async () => {
    const events = Array.from({ length: 300 }, (_, index) =>
      prepareEvent(decision({ time: T0 + index }), eventId(batchIdPrefix('0000-test-', 1), index)),
    );
    const options = { batchIdPrefix: batchIdPrefix('0000-test-', 1), checkpointEvery: 10_000, now: T0 };
    let paces = 0;
    const counting: Pace = () => {
      paces++;
      return paces % 2 === 0 ? new Promise((resolve) => setImmediate(resolve)) : undefined;
    };
    const paced = await withStore(freshSqliteUrl(), async (store) => {
      const { rows } = await appendBatch(store, events, { ...options, pace: counting });
      assert.equal((await verifyChain(store)).ok, true);
      return rows;
    });
    const unpaced = await withStore(freshSqliteUrl(), async (store) => {
      const { rows } = await appendBatch(store, events, options);
      return rows;
    });
    assert.deepEqual(paced, unpaced);
    // 300 rows: linked in 10 chunks of 32 at most, inserted in 10 statements.
    assert.ok(paces >= 20, `the pace was called between chunks (${paces} calls)`);
  });

  it('a batch is paced unless the log is behind (the batch is full, or a full one waits)', async () => {
    const hurried: boolean[] = [];
    const postMessage = Worker.prototype.postMessage;
    Worker.prototype.postMessage = function (this: Worker, message: { type?: string; hurry?: boolean }) {
      if (message?.type === 'append') hurried.push(message.hurry === true);
      return postMessage.call(this, message);
    };
    try {
      await withStore(freshSqliteUrl(), async (store) => {
        const log = createAuditLog(store, {
          flushIntervalMs: 60_000,
          batchSize: 100,
          clock: new ManualClock(T0),
        });
        for (let index = 0; index < 10; index++) assert.ok(log.enqueue(decision()));
        await log.flush();
        for (let index = 0; index < 250; index++) assert.ok(log.enqueue(decision()));
        await log.flush();
        await log.close();
        assert.equal(log.stats.appended, 260);
      });
    } finally {
      Worker.prototype.postMessage = postMessage;
    }
    assert.deepEqual(hurried, [false, true, true, false]);
  });

  it("the writer's thread checkpoints the WAL in small steps", async () => {
    const url = freshSqliteUrl();
    await withStore(url, async (store) => {
      const log = createAuditLog(store, { flushIntervalMs: 60_000, clock: new ManualClock(T0) });
      // 20 batches of about 90 pages each: at SQLite's default of 1000 pages the WAL grows
      // past 4 MB before a checkpoint; at 128 it stays near 128 pages and one batch.
      for (let batch = 0; batch < 20; batch++) {
        for (let index = 0; index < 500; index++) assert.ok(log.enqueue(decision({ path: `/doc/${index}` })));
        await log.flush();
      }
      await log.close();
      assert.equal(log.stats.appended, 10_000);
      const walBytes = statSync(`${store.file}-wal`).size;
      assert.ok(walBytes < 2 * 1024 * 1024, `WAL of ${walBytes} bytes`);
    });
  });
});
