import type { Store } from '../store/index.ts';
import { chainHash, GENESIS_HASH } from './chain.ts';
import { type AuditKey, checkCheckpoint } from './checkpoint.ts';

export type ChainProblemKind =
  | 'hash-mismatch'
  | 'prev-hash-mismatch'
  | 'gap'
  | 'reordered'
  | 'bad-checkpoint-signature'
  | 'checkpoint-mismatch'
  | 'truncated';

/** The first thing wrong with a chain: where, and what. */
export interface ChainProblem {
  seq: number;
  kind: ChainProblemKind;
  message: string;
}

export interface VerifyResult {
  ok: boolean;
  /** Events walked (up to the problem when there is one). */
  events: number;
  lastSeq: number;
  lastHash: string;
  /** Checkpoints checked against the chain. */
  checkpoints: number;
  /** Whether checkpoint signatures were verified (a public key was given). */
  signaturesChecked: boolean;
  lastCheckpointSeq: number;
  /** Events after the last checkpoint: not yet covered by a signature. */
  unsignedTail: number;
  problem?: ChainProblem;
}

export interface VerifyOptions {
  /** Verifies checkpoint signatures; without it only the hash chain and checkpoint hashes are checked. */
  publicKey?: AuditKey;
  /** Rows read per query. */
  pageSize?: number;
}

const DEFAULT_PAGE_SIZE = 5000;
/** How far ahead a broken link is looked for, to tell "reordered" from "edited". */
const REORDER_LOOKAHEAD = 64;

/**
 * Walks the whole chain in seq order, a page at a time, recomputing every hash, and
 * stops at the first broken event. Checks, in order: seq continuity (a missing seq is a
 * deletion), the link to the previous hash (a link that points further down the chain
 * is a reordering), the event's own hash (an edit), then each signed checkpoint: its
 * signature, that it names the hash the chain has at its seq, and that no checkpoint
 * points past the end (truncation).
 */
export async function verifyChain(store: Store, options: VerifyOptions = {}): Promise<VerifyResult> {
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
  const result: VerifyResult = {
    ok: true,
    events: 0,
    lastSeq: 0,
    lastHash: GENESIS_HASH,
    checkpoints: 0,
    signaturesChecked: options.publicKey !== undefined,
    lastCheckpointSeq: 0,
    unsignedTail: 0,
  };
  const fail = (problem: ChainProblem): VerifyResult => ({ ...result, ok: false, problem });

  // Bounded by the table: each pass consumes at least one row or ends the walk.
  for (;;) {
    const rows = await store.db
      .selectFrom('audit_events')
      .select(['seq', 'id', 'time', 'kind', 'data_json', 'prev_hash', 'hash'])
      .where('seq', '>', result.lastSeq)
      .orderBy('seq', 'asc')
      .limit(pageSize)
      .execute();
    if (rows.length === 0) break;
    const pageStart = result.lastSeq;
    const hashes = new Map<number, string>();
    for (let index = 0; index < rows.length; index++) {
      const row = rows[index]!;
      const seq = Number(row.seq);
      const expected = result.lastSeq + 1;
      if (seq !== expected) {
        const missing = seq - expected === 1 ? `${expected}` : `${expected}..${seq - 1}`;
        return fail({
          seq: expected,
          kind: 'gap',
          message: `event ${missing} missing (next stored event is ${seq})`,
        });
      }
      if (row.prev_hash !== result.lastHash) {
        for (let ahead = index + 1; ahead < Math.min(rows.length, index + 1 + REORDER_LOOKAHEAD); ahead++) {
          if (rows[ahead]!.hash === row.prev_hash) {
            return fail({
              seq,
              kind: 'reordered',
              message: `event ${seq} follows event ${Number(rows[ahead]!.seq)} in the chain but is stored before it`,
            });
          }
        }
        return fail({
          seq,
          kind: 'prev-hash-mismatch',
          message: `event ${seq} does not link to event ${seq - 1} (prev_hash differs)`,
        });
      }
      const hash = chainHash(seq, row.id, Number(row.time), row.kind, row.data_json, row.prev_hash);
      if (hash !== row.hash) {
        return fail({
          seq,
          kind: 'hash-mismatch',
          message: `event ${seq} was modified (its hash does not match its content)`,
        });
      }
      hashes.set(seq, hash);
      result.lastSeq = seq;
      result.lastHash = hash;
      result.events++;
    }
    const problem = await checkCheckpoints(store, options, pageStart, result.lastSeq, hashes, result);
    if (problem) return fail(problem);
    if (rows.length < pageSize) break;
  }
  // A checkpoint beyond the last event means events were cut off the end.
  const beyond = await store.db
    .selectFrom('audit_checkpoints')
    .select('seq')
    .where('seq', '>', result.lastSeq)
    .orderBy('seq', 'asc')
    .limit(1)
    .executeTakeFirst();
  if (beyond) {
    return fail({
      seq: result.lastSeq + 1,
      kind: 'truncated',
      message: `checkpoint at event ${Number(beyond.seq)} but the chain ends at event ${result.lastSeq}`,
    });
  }
  result.unsignedTail = result.lastSeq - result.lastCheckpointSeq;
  return result;
}

async function checkCheckpoints(
  store: Store,
  options: VerifyOptions,
  after: number,
  upTo: number,
  hashes: ReadonlyMap<number, string>,
  result: VerifyResult,
): Promise<ChainProblem | undefined> {
  const checkpoints = await store.db
    .selectFrom('audit_checkpoints')
    .select(['seq', 'hash', 'signature', 'created_at'])
    .where('seq', '>', after)
    .where('seq', '<=', upTo)
    .orderBy('seq', 'asc')
    .execute();
  for (const checkpoint of checkpoints) {
    const seq = Number(checkpoint.seq);
    if (options.publicKey) {
      const wrong = await checkCheckpoint(checkpoint.signature, options.publicKey, {
        seq,
        hash: checkpoint.hash,
        created_at: Number(checkpoint.created_at),
      });
      if (wrong)
        return { seq, kind: 'bad-checkpoint-signature', message: `checkpoint at event ${seq}: ${wrong}` };
    }
    if (hashes.get(seq) !== checkpoint.hash) {
      return {
        seq,
        kind: 'checkpoint-mismatch',
        message: `checkpoint at event ${seq} signed a different hash than the chain holds (events up to ${seq} were rewritten)`,
      };
    }
    result.checkpoints++;
    result.lastCheckpointSeq = seq;
  }
  return undefined;
}
