/**
 * Called between small steps of a batch's work (an event prepared, a chunk linked or
 * inserted); hands the CPU back when it is time to. A promise means: await it first.
 */
export type Pace = () => Promise<void> | undefined;

/**
 * On the event loop: lets requests in every `every` steps. A batch of thousands of events
 * would otherwise hold them back for milliseconds.
 */
export function eventLoopPace(every: number): Pace {
  let steps = 0;
  return () => {
    if (++steps % every !== 0) return undefined;
    return new Promise((resolve) => setImmediate(resolve));
  };
}

/**
 * In the writer's own thread: once it has run `sliceMs` without a break, it sleeps as long
 * as it ran. Woken by a batch, the thread otherwise keeps a core for the whole batch
 * (several milliseconds at a few thousand requests a second), and the scheduler favours it
 * over the event loop it preempts, since it slept for the flush interval before: measured
 * with `perf sched timehist`, the event loop stood still for exactly the writer's run
 * time, 1.5–4 ms every 50 ms. Sleeping half the time caps that stall at a slice and
 * leaves the writer half a core, several times what the proxy at its peak needs.
 * Wall time, since the thread's CPU clock ticks in milliseconds here
 * (`process.threadCpuUsage` read 0 or about 1 ms for each 0.25 ms of work), capped at
 * MAX_SLEEP_SLICES slices: a thread that was itself preempted for long (a busy machine)
 * must not then sleep that long too and fall behind. A synchronous sleep: the thread has
 * nothing else to do meanwhile. One per batch: its clock starts when it is made.
 */
export function threadPace(sliceMs: number): Pace {
  let since = performance.now();
  return () => {
    const ran = performance.now() - since;
    if (ran < sliceMs) return undefined;
    Atomics.wait(SLEEPER, 0, 0, Math.min(ran, sliceMs * MAX_SLEEP_SLICES));
    since = performance.now();
    return undefined;
  };
}

/** Longest sleep, in slices: a step of the batch overshoots a slice by less than this. */
const MAX_SLEEP_SLICES = 4;

/** Nobody ever notifies it: waiting on it is a sleep. */
const SLEEPER = new Int32Array(new SharedArrayBuffer(4));
