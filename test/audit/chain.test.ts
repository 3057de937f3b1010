import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { exportSPKI } from 'jose';
import { sql } from 'kysely';
import {
  canonicalJson,
  chainHash,
  checkpointSignerFromFile,
  createAuditLog,
  GENESIS_HASH,
  verifyChain,
} from '../../src/audit/index.ts';
import { isVigilError } from '../../src/errors.ts';
import { ManualClock } from '../../src/internal/clock.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { STORE_TARGETS } from '../support/databases.ts';
import { tempDir } from '../support/tmp.ts';
import { admin, checkpointKeys, decision, T0, withStore } from './helpers.ts';

const run = promisify(execFile);
const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [MAIN, ...args], { timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

const EVENTS = 250;

/** Appends EVENTS events with a checkpoint every 100. */
async function fill(store: Store, keys: Awaited<ReturnType<typeof checkpointKeys>>): Promise<void> {
  const clock = new ManualClock(T0);
  const log = createAuditLog(store, {
    clock,
    batchSize: 50,
    checkpointEvery: 100,
    signer: { privateKey: keys.privateKey, kid: 'audit-1' },
  });
  for (let index = 0; index < EVENTS; index++) {
    const event =
      index % 10 === 9
        ? admin({ time: T0 + index, target: `sess-${index}` })
        : decision({ time: T0 + index, path: `/page/${index}`, decision: index % 3 ? 'allow' : 'deny' });
    assert.equal(log.enqueue(event), true);
  }
  await log.close();
}

async function update(store: Store, seq: number, set: Record<string, string | number>): Promise<void> {
  await store.db.updateTable('audit_events').set(set).where('seq', '=', seq).execute();
}

for (const target of STORE_TARGETS) {
  describe(`audit chain on ${target.name}`, () => {
    it('an untouched log verifies, with every checkpoint signature checked', async () => {
      const keys = await checkpointKeys();
      await withStore(target.freshUrl(), async (store) => {
        await fill(store, keys);
        const result = await verifyChain(store, { publicKey: keys.publicKey, pageSize: 64 });
        assert.equal(result.ok, true, JSON.stringify(result.problem));
        assert.equal(result.events, EVENTS);
        assert.equal(result.lastSeq, EVENTS);
        assert.equal(result.checkpoints, 2);
        assert.equal(result.lastCheckpointSeq, 200);
        assert.equal(result.unsignedTail, 50);
      });
    });

    it('each hash is SHA-256 of the canonical JSON of the row, linked to the previous hash', async () => {
      const keys = await checkpointKeys();
      await withStore(target.freshUrl(), async (store) => {
        await fill(store, keys);
        const rows = await store.db.selectFrom('audit_events').selectAll().orderBy('seq').limit(2).execute();
        const [first, second] = rows;
        assert.ok(first && second);
        assert.equal(first.prev_hash, GENESIS_HASH);
        assert.equal(second.prev_hash, first.hash);
        const data = JSON.parse(first.data_json) as Record<string, unknown>;
        assert.equal(first.data_json, canonicalJson(data));
        const envelope = canonicalJson({
          data,
          id: first.id,
          kind: first.kind,
          prev_hash: first.prev_hash,
          seq: Number(first.seq),
          time: Number(first.time),
        });
        const { createHash } = await import('node:crypto');
        assert.equal(createHash('sha256').update(envelope).digest('hex'), first.hash);
        assert.equal(
          chainHash(1, first.id, Number(first.time), first.kind, first.data_json, GENESIS_HASH),
          first.hash,
        );
      });
    });

    it('an edited event is named as a hash mismatch', async () => {
      const keys = await checkpointKeys();
      await withStore(target.freshUrl(), async (store) => {
        await fill(store, keys);
        const row = await store.db
          .selectFrom('audit_events')
          .selectAll()
          .where('seq', '=', 57)
          .executeTakeFirstOrThrow();
        await update(store, 57, {
          data_json: row.data_json.replace('"deny"', '"allow"').replace('"allow"', '"deny"'),
        });
        const result = await verifyChain(store, { publicKey: keys.publicKey, pageSize: 64 });
        assert.equal(result.ok, false);
        assert.deepEqual([result.problem?.seq, result.problem?.kind], [57, 'hash-mismatch']);
        assert.equal(result.events, 56);
      });
    });

    it('an edited time column is caught: every column is covered by the hash', async () => {
      const keys = await checkpointKeys();
      await withStore(target.freshUrl(), async (store) => {
        await fill(store, keys);
        await update(store, 3, { time: T0 - 1000 });
        const result = await verifyChain(store);
        assert.deepEqual([result.problem?.seq, result.problem?.kind], [3, 'hash-mismatch']);
      });
    });

    it('a deleted event is named as a gap', async () => {
      const keys = await checkpointKeys();
      await withStore(target.freshUrl(), async (store) => {
        await fill(store, keys);
        await store.db.deleteFrom('audit_events').where('seq', '=', 80).execute();
        const result = await verifyChain(store, { publicKey: keys.publicKey });
        assert.deepEqual([result.problem?.seq, result.problem?.kind], [80, 'gap']);
      });
    });

    it('two swapped events are named as reordered', async () => {
      const keys = await checkpointKeys();
      await withStore(target.freshUrl(), async (store) => {
        await fill(store, keys);
        await update(store, 30, { seq: -30 });
        await update(store, 31, { seq: 30 });
        await update(store, -30, { seq: 31 });
        const result = await verifyChain(store, { publicKey: keys.publicKey });
        assert.deepEqual([result.problem?.seq, result.problem?.kind], [30, 'reordered']);
      });
    });

    it('a rewritten chain with recomputed hashes fails at the signed checkpoint', async () => {
      const keys = await checkpointKeys();
      await withStore(target.freshUrl(), async (store) => {
        await fill(store, keys);
        // The attacker edits event 11 and recomputes every hash after it.
        const rows = await store.db.selectFrom('audit_events').selectAll().orderBy('seq').execute();
        let prev = GENESIS_HASH;
        for (const row of rows) {
          const seq = Number(row.seq);
          const data = seq === 11 ? row.data_json.replace('dev:alice', 'dev:mallory') : row.data_json;
          const hash = chainHash(seq, row.id, Number(row.time), row.kind, data, prev);
          if (seq >= 11) await update(store, seq, { data_json: data, prev_hash: prev, hash });
          prev = hash;
        }
        assert.equal((await verifyChain(store)).problem?.kind, 'checkpoint-mismatch');
        const result = await verifyChain(store, { publicKey: keys.publicKey });
        assert.deepEqual([result.problem?.seq, result.problem?.kind], [100, 'checkpoint-mismatch']);
      });
    });

    it('a checkpoint signed by another key is named as a bad checkpoint signature', async () => {
      const keys = await checkpointKeys();
      const other = await checkpointKeys();
      await withStore(target.freshUrl(), async (store) => {
        await fill(store, keys);
        const result = await verifyChain(store, { publicKey: other.publicKey });
        assert.deepEqual([result.problem?.seq, result.problem?.kind], [100, 'bad-checkpoint-signature']);
      });
    });

    it('events cut off the end are named as truncated when a checkpoint covered them', async () => {
      const keys = await checkpointKeys();
      await withStore(target.freshUrl(), async (store) => {
        await fill(store, keys);
        await store.db.deleteFrom('audit_events').where('seq', '>', 150).execute();
        const result = await verifyChain(store, { publicKey: keys.publicKey });
        assert.deepEqual([result.problem?.seq, result.problem?.kind], [151, 'truncated']);
      });
    });

    it('two writer processes on one database still make one chain', async () => {
      const url = target.freshUrl();
      await withStore(url, async () => {});
      const child = new URL('./append-child.ts', import.meta.url).pathname;
      await Promise.all([
        run(process.execPath, [child, url, '300', '7', 'a'], { timeout: 60_000 }),
        run(process.execPath, [child, url, '300', '5', 'b'], { timeout: 60_000 }),
      ]);
      await withStore(url, async (store) => {
        const result = await verifyChain(store);
        assert.equal(result.ok, true, JSON.stringify(result.problem));
        assert.equal(result.events, 600);
      });
    });

    if (target.name === 'postgres') {
      it('two writers in one process on one database still make one chain', async () => {
        const url = target.freshUrl();
        const first = await openStore(url);
        const second = await openStore(url);
        try {
          const a = createAuditLog(first, { batchSize: 7 });
          const b = createAuditLog(second, { batchSize: 5 });
          for (let index = 0; index < 60; index++) {
            a.enqueue(decision({ time: T0 + index, path: `/a/${index}` }));
            b.enqueue(decision({ time: T0 + index, path: `/b/${index}` }));
          }
          await Promise.all([a.close(), b.close()]);
          const result = await verifyChain(first);
          assert.equal(result.ok, true, JSON.stringify(result.problem));
          assert.equal(result.events, 120);
        } finally {
          await first.close();
          await second.close();
        }
      });
    }

    it('vigil audit verify exits 0 on an intact log and 1 naming the edited event', async () => {
      const keys = await checkpointKeys();
      const url = target.freshUrl();
      const keyFile = join(tempDir(), 'audit.pub.pem');
      writeFileSync(keyFile, await exportSPKI(keys.publicKey));
      await withStore(url, (store) => fill(store, keys));
      const ok = await cli(['audit', 'verify', '--database', url, '--public-key', keyFile, '--json']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(JSON.parse(ok.stdout).ok, true);
      assert.equal(JSON.parse(ok.stdout).signaturesChecked, true);
      await withStore(url, async (store) => {
        await sql`update audit_events set data_json = replace(data_json, '/page/120', '/page/121') where seq = 121`.execute(
          store.db,
        );
      });
      const broken = await cli(['audit', 'verify', '--database', url, '--public-key', keyFile]);
      assert.equal(broken.code, 1);
      assert.match(broken.stderr, /audit chain broken at event 121 \(hash-mismatch\)/);
      assert.match(broken.stdout, /brokenAt: +121/);
    });

    it('vigil audit verify names a deleted and a reordered event', async () => {
      const keys = await checkpointKeys();
      const deleted = target.freshUrl();
      const reordered = target.freshUrl();
      await withStore(deleted, async (store) => {
        await fill(store, keys);
        await store.db.deleteFrom('audit_events').where('seq', '=', 42).execute();
      });
      await withStore(reordered, async (store) => {
        await fill(store, keys);
        await update(store, 64, { seq: -64 });
        await update(store, 65, { seq: 64 });
        await update(store, -64, { seq: 65 });
      });
      const gap = await cli(['audit', 'verify', '--database', deleted]);
      assert.equal(gap.code, 1);
      assert.match(gap.stderr, /broken at event 42 \(gap\)/);
      const swap = await cli(['audit', 'verify', '--database', reordered, '--json']);
      assert.equal(swap.code, 1);
      assert.deepEqual(
        [JSON.parse(swap.stdout).brokenAt, JSON.parse(swap.stdout).problem],
        [64, 'reordered'],
      );
    });
  });
}

describe('checkpoint signing key file', () => {
  it('reads an owner-only EC P-256 PEM key whose checkpoints verify with its public key', async () => {
    const { generateKeyPairSync, createPublicKey } = await import('node:crypto');
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const file = join(tempDir(), 'audit-signing.pem');
    writeFileSync(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const signer = checkpointSignerFromFile(file, 'audit-2026');
    await withStore(STORE_TARGETS[0]!.freshUrl(), async (store) => {
      const log = createAuditLog(store, { clock: new ManualClock(T0), signer, checkpointEvery: 1 });
      log.enqueue(decision());
      await log.close();
      const result = await verifyChain(store, { publicKey: createPublicKey(signer.privateKey) });
      assert.equal(result.ok, true);
      assert.equal(result.checkpoints, 1);
    });
  });

  it('refuses a key file others can read, and a key of the wrong type', async () => {
    const { generateKeyPairSync } = await import('node:crypto');
    const dir = tempDir();
    const open = join(dir, 'open.pem');
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    });
    writeFileSync(open, ec, { mode: 0o644 });
    assert.throws(() => checkpointSignerFromFile(open), /readable by others/);
    const rsa = join(dir, 'rsa.pem');
    const rsaKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    });
    writeFileSync(rsa, rsaKey, { mode: 0o600 });
    assert.throws(
      () => checkpointSignerFromFile(rsa),
      (error) => isVigilError(error, 'ERR_AUDIT_KEY_INVALID'),
    );
  });
});

describe('canonical JSON', () => {
  it('sorts keys at every level, drops undefined and writes no whitespace', () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [3, 'x', null], c: true }, e: undefined, '10': 'ten', '2': 'two' }),
      '{"10":"ten","2":"two","a":{"c":true,"d":[3,"x",null]},"b":1}',
    );
  });

  it('refuses values JSON cannot carry faithfully', () => {
    assert.throws(() => canonicalJson({ a: Number.NaN }), TypeError);
    assert.throws(() => canonicalJson({ a: 1n }), TypeError);
    assert.throws(() => canonicalJson({ a: new Date(0) }), TypeError);
  });

  it('stores an event with nested details and integer-like keys in canonical form', async () => {
    await withStore(STORE_TARGETS[0]!.freshUrl(), async (store) => {
      const log = createAuditLog(store, { clock: new ManualClock(T0) });
      log.enqueue(admin({ details: { z: 1, '9': 'nine', '10': { b: 2, a: 1 } } }));
      log.enqueue(decision());
      await log.close();
      const rows = await store.db.selectFrom('audit_events').select('data_json').orderBy('seq').execute();
      for (const row of rows) assert.equal(row.data_json, canonicalJson(JSON.parse(row.data_json)));
      assert.equal((await verifyChain(store)).ok, true);
    });
  });
});
