import { type Expression, type SqlBool, sql } from 'kysely';
import { VigilError } from '../errors.ts';
import { parseDuration } from '../internal/duration.ts';
import type { Store, StoreDialect } from '../store/index.ts';
import { recordFromRow } from './chain.ts';
import { type AuditEventKind, type AuditRecord, EVENT_KINDS, RISK_FLAGS, type RiskFlag } from './events.ts';

export const DEFAULT_QUERY_LIMIT = 100;
export const MAX_QUERY_LIMIT = 10_000;

/** Filters shared by `vigil audit query|export` and `GET /api/v1/audit/events`; all must hold. */
export interface AuditQuery {
  kind?: AuditEventKind;
  user?: string;
  device?: string;
  route?: string;
  session?: string;
  sourceIp?: string;
  decision?: 'allow' | 'deny';
  /** The decision carried this reason (e.g. `device-posture-failed`). */
  reason?: string;
  /** This risk flag, or `true` for any risk flag. */
  risk?: RiskFlag | true;
  /** Epoch milliseconds, inclusive. */
  since?: number;
  /** Epoch milliseconds, exclusive. */
  until?: number;
  /** Cursor: only events with a seq above / below this. */
  afterSeq?: number;
  beforeSeq?: number;
  /** Newest first (default, for people) or oldest first (for export). */
  order?: 'asc' | 'desc';
  limit?: number;
}

export interface AuditPage {
  events: AuditRecord[];
  /** Cursor for the next page (`beforeSeq` when newest first, `afterSeq` otherwise); absent on the last page. */
  next?: number;
}

type JsonField = 'user' | 'device' | 'route' | 'session' | 'sourceIp' | 'decision';

function fieldEquals(dialect: StoreDialect, field: JsonField, value: string): Expression<SqlBool> {
  return dialect === 'postgres'
    ? sql<SqlBool>`(data_json::jsonb ->> ${field}) = ${value}`
    : sql<SqlBool>`json_extract(data_json, ${`$.${field}`}) = ${value}`;
}

function listContains(dialect: StoreDialect, field: 'reasons' | 'risk', value: string): Expression<SqlBool> {
  return dialect === 'postgres'
    ? sql<SqlBool>`(data_json::jsonb -> ${field}) @> ${JSON.stringify([value])}::jsonb`
    : sql<SqlBool>`exists (select 1 from json_each(data_json, ${`$.${field}`}) where value = ${value})`;
}

function listNotEmpty(dialect: StoreDialect, field: 'risk'): Expression<SqlBool> {
  return dialect === 'postgres'
    ? sql<SqlBool>`jsonb_array_length(coalesce(data_json::jsonb -> ${field}, '[]'::jsonb)) > 0`
    : sql<SqlBool>`coalesce(json_array_length(data_json, ${`$.${field}`}), 0) > 0`;
}

/** One page of events matching `query`. Time bounds use the indexed `time` column. */
export async function queryEvents(store: Store, query: AuditQuery = {}): Promise<AuditPage> {
  const limit = Math.min(Math.max(1, Math.floor(query.limit ?? DEFAULT_QUERY_LIMIT)), MAX_QUERY_LIMIT);
  const order = query.order ?? 'desc';
  const dialect = store.dialect;
  let builder = store.db.selectFrom('audit_events').select(['seq', 'id', 'time', 'kind', 'data_json']);
  if (query.kind) builder = builder.where('kind', '=', query.kind);
  if (query.since !== undefined) builder = builder.where('time', '>=', query.since);
  if (query.until !== undefined) builder = builder.where('time', '<', query.until);
  if (query.afterSeq !== undefined) builder = builder.where('seq', '>', query.afterSeq);
  if (query.beforeSeq !== undefined) builder = builder.where('seq', '<', query.beforeSeq);
  for (const field of ['user', 'device', 'route', 'session', 'sourceIp', 'decision'] as const) {
    const value = query[field];
    if (value !== undefined) builder = builder.where(fieldEquals(dialect, field, value));
  }
  if (query.reason !== undefined) builder = builder.where(listContains(dialect, 'reasons', query.reason));
  if (query.risk === true) builder = builder.where(listNotEmpty(dialect, 'risk'));
  else if (query.risk !== undefined) builder = builder.where(listContains(dialect, 'risk', query.risk));
  const rows = await builder.orderBy('seq', order).limit(limit).execute();
  const events = rows.map(recordFromRow);
  const last = events.at(-1);
  return rows.length === limit && last ? { events, next: last.seq } : { events };
}

/**
 * Reads filters from text (CLI flags, URL query). `since`/`until` take a duration back
 * from now (`24h`, `15m`), an ISO 8601 time or epoch milliseconds. `risk` is a flag name,
 * or `any` / empty for any flag. Unknown values fail with ERR_AUDIT_QUERY_INVALID naming the field.
 */
export function parseAuditQuery(
  params: Readonly<Record<string, string | undefined>>,
  now: number,
): AuditQuery {
  const query: AuditQuery = {};
  const invalid = (field: string, why: string) =>
    new VigilError('ERR_AUDIT_QUERY_INVALID', `${field}: ${why}`, {
      status: 400,
      publicMessage: `${field}: ${why}`,
    });
  const text = (field: string) => {
    const value = params[field];
    if (value === undefined) return undefined;
    if (value.length > 512) throw invalid(field, 'longer than 512 characters');
    return value;
  };
  const kind = text('kind');
  if (kind !== undefined) {
    if (!(EVENT_KINDS as readonly string[]).includes(kind))
      throw invalid('kind', `must be one of ${EVENT_KINDS.join(', ')}`);
    query.kind = kind as AuditEventKind;
  }
  for (const field of ['user', 'device', 'route', 'session', 'reason'] as const) {
    const value = text(field);
    if (value !== undefined) query[field] = value;
  }
  const sourceIp = text('sourceIp') ?? text('source-ip') ?? text('ip');
  if (sourceIp !== undefined) query.sourceIp = sourceIp;
  const decision = text('decision');
  if (decision !== undefined) {
    if (decision !== 'allow' && decision !== 'deny') throw invalid('decision', 'must be allow or deny');
    query.decision = decision;
  }
  const risk = text('risk');
  if (risk !== undefined) {
    if (risk === '' || risk === 'any' || risk === 'true') query.risk = true;
    else if ((RISK_FLAGS as readonly string[]).includes(risk)) query.risk = risk as RiskFlag;
    else throw invalid('risk', `must be any or one of ${RISK_FLAGS.join(', ')}`);
  }
  for (const field of ['since', 'until'] as const) {
    const value = text(field);
    if (value !== undefined) query[field] = parseTime(value, now, field, invalid);
  }
  for (const [field, key] of [
    ['after', 'afterSeq'],
    ['before', 'beforeSeq'],
    ['limit', 'limit'],
  ] as const) {
    const value = text(field);
    if (value === undefined) continue;
    if (!/^\d{1,15}$/.test(value)) throw invalid(field, 'must be a non-negative integer');
    const number = Number(value);
    if (field === 'limit' && (number < 1 || number > MAX_QUERY_LIMIT)) {
      throw invalid(field, `must be between 1 and ${MAX_QUERY_LIMIT}`);
    }
    query[key] = number;
  }
  const order = text('order');
  if (order !== undefined) {
    if (order !== 'asc' && order !== 'desc') throw invalid('order', 'must be asc or desc');
    query.order = order;
  }
  return query;
}

function parseTime(
  value: string,
  now: number,
  field: string,
  invalid: (field: string, why: string) => Error,
): number {
  if (/^\d{1,15}$/.test(value)) return Number(value);
  const duration = parseDuration(value);
  if (duration !== undefined) return now - duration;
  if (/^\d{4}-\d{2}-\d{2}/.test(value)) {
    const time = Date.parse(value);
    if (!Number.isNaN(time)) return time;
  }
  throw invalid(field, 'must be a duration back from now (24h, 15m), an ISO 8601 time or epoch milliseconds');
}
