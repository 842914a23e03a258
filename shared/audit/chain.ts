/**
 * The linker: puts each tenant's committed audit records into one hash chain, in the order the audit table's
 * stream delivers them (ordered per partition key, so per tenant), and publishes each linked record as a change
 * event (contract §12: the stream is the outbox).
 *
 * Record n of a tenant gets `seq = n`, `prevLink` (record n-1's link, `genesis` for the first) and
 * `link = SHA-256(tenant, seq, eventId, sort key, SHA-256(ciphertext), prevLink)`: anyone can recompute the chain
 * without a key, and a digest signed over the head's link (./digests.ts) pins everything before it. Only records
 * whose ciphertext authenticates for their tenant, and sits where it belongs, are linked; the others are reported
 * as tampering and never chained. The head (last seq and link) is trusted only through its seal, as before.
 */
import { createHash } from 'node:crypto';
import {
  BatchGetCommand,
  type BatchGetCommandOutput,
  type DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
} from '@aws-sdk/lib-dynamodb';
import { cancellationReasons, type TransactWriteItem } from '../dynamodb.ts';
import type { TamperListener } from '../store.ts';
import { keys } from '../tables.ts';
import type { AnchorQueue } from './anchor-queue.ts';
import { type ChangeEvent, changeEventOf, type EventSink } from './events.ts';
import { type AuditCipher, AuditIntegrityError, auditUnavailable, EVENT_SORT_KEY, keyUnavailable, openRecord } from './log.ts';

/** The prevLink of a tenant's first record. */
export const GENESIS_LINK = 'genesis';
const HEAD_VERSION = 2;
/** Records per transaction: each is one item, beside the head (100 at most; two to spare). */
const RECORDS_PER_TRANSACTION = 98;
const MAX_PLANS = 5;

/**
 * Record n's link: what record n+1 names as prevLink, and what a digest signs for the head. It covers every
 * plaintext attribute a reader relies on (the sort key holds the time and event id; the action is what lists
 * filter on), so relabelling one is caught without the audit key.
 */
export function linkDigest(fields: {
  tenantId: string;
  seq: number;
  eventId: string;
  sk: string;
  action: string;
  recordDigest: string;
  prevLink: string;
}): string {
  const { tenantId, seq, eventId, sk, action, recordDigest, prevLink } = fields;
  return createHash('sha256')
    .update(`keysmith-audit-link-v1\n${JSON.stringify([tenantId, seq, eventId, sk, action, recordDigest, prevLink])}`)
    .digest('base64url');
}

/** A tenant's chain head: the last linked record. */
export interface ChainHead {
  seq: number;
  link: string;
  eventId: string;
  linkedAt: string;
}

/** The head as stored: its fields, and whether its seal says exactly them (undefined when no cipher could check). */
export interface StoredHead extends ChainHead {
  authentic: boolean | undefined;
}

interface HeadSeal extends ChainHead {
  v: number;
  kind: 'head';
  tenantId: string;
}

const isHeadShaped = (item: Record<string, unknown>): boolean =>
  Number.isSafeInteger(item.seq) &&
  (item.seq as number) >= 1 &&
  typeof item.link === 'string' &&
  typeof item.eventId === 'string' &&
  typeof item.linkedAt === 'string';

/**
 * Reads a tenant's head (strongly consistent). With a cipher its seal is checked: `authentic` false when the head
 * was written outside Keysmith. Without one (an auditor holding no decrypt permission) `authentic` is undefined.
 */
export async function readHead(
  db: DynamoDBDocumentClient,
  tableName: string,
  tenantId: string,
  cipher?: AuditCipher,
): Promise<StoredHead | undefined> {
  const { Item } = await db.send(new GetCommand({ TableName: tableName, Key: keys.auditHead(tenantId), ConsistentRead: true }));
  if (!Item) return undefined;
  const head: ChainHead = isHeadShaped(Item)
    ? { seq: Item.seq as number, link: Item.link as string, eventId: Item.eventId as string, linkedAt: Item.linkedAt as string }
    : { seq: 0, link: '', eventId: '', linkedAt: '' };
  if (!cipher) return { ...head, authentic: isHeadShaped(Item) ? undefined : false };
  if (!isHeadShaped(Item) || !(Item.seal instanceof Uint8Array)) return { ...head, authentic: false };
  let sealed: HeadSeal;
  try {
    sealed = JSON.parse((await cipher.decrypt(tenantId, Item.seal)).toString('utf8')) as HeadSeal;
  } catch (error) {
    // KMS throttled, unreachable or denied is not tampering: nothing can be decided.
    if (keyUnavailable(error)) throw auditUnavailable(error, 'decrypted');
    return { ...head, authentic: false };
  }
  const authentic =
    sealed.v === HEAD_VERSION &&
    sealed.kind === 'head' &&
    sealed.tenantId === tenantId &&
    sealed.seq === head.seq &&
    sealed.link === head.link &&
    sealed.eventId === head.eventId &&
    sealed.linkedAt === head.linkedAt;
  return { ...head, authentic };
}

/** Whether any record of the tenant carries a seq (was linked): a missing head is then a removed one. */
async function anyLinked(db: DynamoDBDocumentClient, tableName: string, tenantId: string): Promise<boolean> {
  let startKey: Record<string, unknown> | undefined;
  do {
    const page = await db.send(
      new QueryCommand({
        TableName: tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :events)',
        FilterExpression: 'attribute_exists(seq)',
        ProjectionExpression: 'pk, sk',
        ExpressionAttributeValues: { ':pk': keys.auditPartition(tenantId), ':events': 'EVENT#' },
        ConsistentRead: true,
        ExclusiveStartKey: startKey,
      }),
    );
    if ((page.Items ?? []).length > 0) return true;
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  return false;
}

/** The key of one audit table item, as a stream record names it. */
export interface RecordKey {
  pk: string;
  sk: string;
}

/** What one {@link AuditLinker.link} call did. */
export interface LinkOutcome {
  /** Records linked now. */
  linked: number;
  /** Records found already linked (a batch delivered again): their events were published again. */
  relinked: number;
  /** Records refused (tampering, counted through onTamper). */
  refused: number;
  /** Tenants whose head failed its check: none of their records was linked. */
  blockedTenants: string[];
  /** Events published, in order per tenant. */
  events: ChangeEvent[];
  /** The largest time between a record's occurredAt and its linking, in milliseconds. */
  maxLagMs: number;
}

/** Options of {@link AuditLinker}. */
export interface AuditLinkerOptions {
  documentClient: DynamoDBDocumentClient;
  tableName: string;
  cipher: AuditCipher;
  events: EventSink;
  /** Told about each record or head refused. */
  onTamper: TamperListener;
  /** The clock. @default Date.now */
  now?: () => number;
  /** Where the linker marks each tenant it links for the next scheduled digest (outside the audit table). */
  anchorQueue: AnchorQueue;
  /**
   * Anchors a tenant right after linking it when this linker has not done so for `seconds`: a digest at least that
   * often for a tenant that keeps changing, without waiting for the schedule.
   */
  anchorInline?: { anchor: (tenantId: string) => Promise<unknown>; seconds: number };
}

interface Planned {
  /** The record's key (its item, when it is there). */
  sk: string;
  item: Record<string, unknown> | undefined;
  seq: number;
  prevLink: string;
  link: string;
  eventId: string;
  /** Its change event; none for a gap (a record committed and gone before it was linked). */
  event: ChangeEvent | undefined;
  /** A seq found on the record that its link seal does not vouch for (written around Keysmith): replaced. */
  forgedSeq?: unknown;
}

/** The action a gap entry is linked with: the record it stands for was removed before it could be linked. */
export const GAP_ACTION = 'record.missing';

/** A record update DynamoDB refused as invalid (e.g. over 400 KB once linked): the record, not the batch, is at fault. */
class PoisonedRecordError extends Error {
  constructor(readonly sk: string) {
    super(`the audit record ${sk} cannot be linked`);
  }
}

interface LinkSealContent {
  v: number;
  kind: 'link';
  tenantId: string;
  seq: number;
  eventId: string;
  link: string;
}

/**
 * Whether a linked item's link was written by Keysmith: its `linkSeal` (the tenant, seq, event id and link,
 * encrypted under the tenant's context) says exactly what the item says. Anyone can compute a link; only the audit
 * key can seal one. Throws (audit_unavailable) when KMS cannot be reached.
 */
export async function linkSealValid(cipher: AuditCipher, tenantId: string, item: Record<string, unknown>): Promise<boolean> {
  if (!(item.linkSeal instanceof Uint8Array)) return false;
  let sealed: LinkSealContent;
  try {
    sealed = JSON.parse((await cipher.decrypt(tenantId, item.linkSeal)).toString('utf8')) as LinkSealContent;
  } catch (error) {
    if (keyUnavailable(error)) throw auditUnavailable(error, 'decrypted');
    return false;
  }
  return (
    sealed.v === 1 &&
    sealed.kind === 'link' &&
    sealed.tenantId === tenantId &&
    sealed.seq === item.seq &&
    sealed.eventId === item.eventId &&
    sealed.link === item.link
  );
}

/** Links committed records into their tenants' chains and publishes their change events. */
export class AuditLinker {
  private readonly db: DynamoDBDocumentClient;
  private readonly tableName: string;
  private readonly cipher: AuditCipher;
  private readonly sink: EventSink;
  private readonly onTamper: TamperListener;
  private readonly now: () => number;

  private readonly anchorInline: AuditLinkerOptions['anchorInline'];
  private readonly anchorQueue: AnchorQueue;
  /** When this linker last anchored each tenant (memory, not the table: nothing a table writer can move). */
  private readonly anchoredAt = new Map<string, number>();

  constructor({
    documentClient,
    tableName,
    cipher,
    events,
    onTamper,
    now = Date.now,
    anchorQueue,
    anchorInline,
  }: AuditLinkerOptions) {
    this.anchorInline = anchorInline;
    this.anchorQueue = anchorQueue;
    this.db = documentClient;
    this.tableName = tableName;
    this.cipher = cipher;
    this.sink = events;
    this.onTamper = onTamper;
    this.now = now;
  }

  /**
   * Links the records named by `recordKeys` (stream order), tenant by tenant. Idempotent: a record already linked is
   * not linked again, only its event published again (at least once). Throws (nothing is lost: call again with the
   * same keys) when DynamoDB, KMS or the event sink fails.
   */
  async link(recordKeys: readonly RecordKey[]): Promise<LinkOutcome> {
    const outcome: LinkOutcome = { linked: 0, relinked: 0, refused: 0, blockedTenants: [], events: [], maxLagMs: 0 };
    const byTenant = new Map<string, string[]>();
    for (const { pk, sk } of recordKeys) {
      if (!pk.startsWith('TENANT#') || !EVENT_SORT_KEY.test(sk)) continue;
      const tenantId = pk.slice('TENANT#'.length);
      const list = byTenant.get(tenantId) ?? [];
      if (!list.includes(sk)) list.push(sk);
      byTenant.set(tenantId, list);
    }
    for (const [tenantId, sortKeys] of byTenant) await this.linkTenant(tenantId, sortKeys, outcome);
    return outcome;
  }

  private async linkTenant(tenantId: string, sortKeys: string[], outcome: LinkOutcome): Promise<void> {
    const poisoned = new Set<string>();
    for (let plan = 1; ; plan++) {
      const head = await readHead(this.db, this.tableName, tenantId, this.cipher);
      if (head ? !head.authentic : await anyLinked(this.db, this.tableName, tenantId)) {
        // Extending a forged head would hide the forgery: link nothing of this tenant until an operator looks.
        this.onTamper({ reason: head ? 'audit_head_invalid' : 'audit_head_missing', tenantId });
        outcome.blockedTenants.push(tenantId);
        return;
      }
      const items = await this.readRecords(tenantId, sortKeys);
      const republish: ChangeEvent[] = [];
      const planned: Planned[] = [];
      let last = head ? { seq: head.seq, link: head.link } : { seq: 0, link: GENESIS_LINK };
      let refused = 0;
      const now = this.now();
      const linkedAt = new Date(now).toISOString();
      const plan1 = (sk: string, eventId: string, action: string, digest: string) => {
        const seq = last.seq + 1;
        const link = linkDigest({ tenantId, seq, eventId, sk, action, recordDigest: digest, prevLink: last.link });
        const entry = { sk, seq, prevLink: last.link, link, eventId };
        last = { seq, link };
        return entry;
      };
      for (const sk of sortKeys) {
        const item = items.get(sk);
        const eventId = EVENT_SORT_KEY.exec(sk)?.[2] as string;
        if (poisoned.has(sk)) {
          refused++;
          continue;
        }
        if (!item) {
          // Committed (the stream says so) but gone: removed around Keysmith before it was linked. A gap entry takes
          // its place in the chain, so `audit verify` reports it too (deleting the entry leaves a hole it reports).
          this.onTamper({ reason: 'audit_record_missing', tenantId, eventId });
          planned.push({ ...plan1(sk, eventId, GAP_ACTION, 'missing'), item: undefined, event: undefined });
          refused++;
          continue;
        }
        if (item.type === 'auditGap') continue; // a gap linked by an earlier delivery
        let opened: Awaited<ReturnType<typeof openRecord>>;
        try {
          opened = await openRecord(this.cipher, item);
          if (opened.misplaced) throw new AuditIntegrityError('the record is stored out of place');
        } catch (error) {
          if (!(error instanceof AuditIntegrityError)) throw error;
          this.onTamper({ reason: 'audit_record_invalid', tenantId, eventId });
          refused++;
          continue;
        }
        const event = (seq: number) => changeEventOf(opened.content, seq);
        let forgedSeq: unknown;
        if (item.seq !== undefined) {
          // Linked by an earlier delivery of this batch: publish again, link nothing, if its link seal vouches for
          // its place. A seq without one was written around Keysmith: reported, and the record linked properly.
          const sealed =
            Number.isSafeInteger(item.seq) && head !== undefined && (item.seq as number) <= head.seq
              ? await linkSealValid(this.cipher, tenantId, item)
              : false;
          if (sealed) {
            republish.push(event(item.seq as number));
            outcome.relinked++;
            continue;
          }
          this.onTamper({ reason: 'audit_record_invalid', tenantId, eventId });
          forgedSeq = item.seq;
        }
        const entry = plan1(sk, opened.content.eventId, opened.content.action, opened.digest);
        planned.push({ ...entry, item, event: event(entry.seq), ...(forgedSeq !== undefined ? { forgedSeq } : {}) });
        outcome.maxLagMs = Math.max(outcome.maxLagMs, now - Date.parse(opened.content.occurredAt));
      }
      try {
        await this.commit(tenantId, head, planned, linkedAt);
      } catch (error) {
        if (error instanceof PoisonedRecordError) {
          // One record DynamoDB cannot update (padded past 400 KB around Keysmith): refuse it, link the rest.
          this.onTamper({ reason: 'audit_record_invalid', tenantId, eventId: EVENT_SORT_KEY.exec(error.sk)?.[2] as string });
          poisoned.add(error.sk);
          plan--;
          continue;
        }
        const reasons = cancellationReasons(error);
        if (reasons && plan < MAX_PLANS) continue; // another linker moved the head or a record: plan again
        throw error;
      }
      outcome.linked += planned.filter((p) => p.event).length;
      outcome.refused += refused;
      const events = [...republish, ...planned.flatMap((p) => (p.event ? [p.event] : []))].sort(
        (a, b) => a.detail.seq - b.detail.seq,
      );
      if (events.length > 0) await this.sink.publish(events);
      outcome.events.push(...events);
      if (planned.length > 0) await this.anchorIfDue(tenantId);
      return;
    }
  }

  private async anchorIfDue(tenantId: string): Promise<void> {
    if (!this.anchorInline) return;
    const now = this.now();
    const last = this.anchoredAt.get(tenantId);
    // First seen here: the schedule anchors it; from now on, this linker anchors it when it keeps changing.
    if (last === undefined) {
      this.anchoredAt.set(tenantId, now);
      if (this.anchoredAt.size > 10_000) this.anchoredAt.delete(this.anchoredAt.keys().next().value as string);
      return;
    }
    if (now - last < this.anchorInline.seconds * 1000) return;
    try {
      await this.anchorInline.anchor(tenantId);
      this.anchoredAt.set(tenantId, now);
    } catch {
      // Linked is linked: the scheduled run (the tenant stays marked) anchors it, and reports what failed.
    }
  }

  /** The records, read again strongly consistent (the stream carries only their keys). */
  private async readRecords(tenantId: string, sortKeys: string[]): Promise<Map<string, Record<string, unknown>>> {
    const found = new Map<string, Record<string, unknown>>();
    const pk = keys.auditPartition(tenantId);
    for (let i = 0; i < sortKeys.length; i += 100) {
      let pending: Record<string, unknown>[] | undefined = sortKeys.slice(i, i + 100).map((sk) => ({ pk, sk }));
      for (let attempt = 0; pending && pending.length > 0; attempt++) {
        if (attempt > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 25 * 2 ** attempt)));
        if (attempt > 8) throw new Error('DynamoDB left audit records unprocessed repeatedly; retry the batch');
        const answer: BatchGetCommandOutput = await this.db.send(
          new BatchGetCommand({ RequestItems: { [this.tableName]: { Keys: pending, ConsistentRead: true } } }),
        );
        for (const item of answer.Responses?.[this.tableName] ?? []) found.set(String(item.sk), item);
        pending = answer.UnprocessedKeys?.[this.tableName]?.Keys;
      }
    }
    return found;
  }

  /**
   * Marks the tenant for the next digest, then writes the links and the new head, in transactions of up to 98
   * records. Each record is linked only if it is still unlinked and unchanged; the head only if no one moved it
   * meanwhile. Marked first: a mark whose links then fail to commit costs the anchor one look at an unchanged head,
   * while links committed without a mark would wait for the tenant's next change to be anchored.
   */
  private async commit(tenantId: string, head: ChainHead | undefined, planned: Planned[], linkedAt: string): Promise<void> {
    const final = planned.at(-1);
    if (final) await this.anchorQueue.mark(tenantId, final.seq);
    let previousSeq = head?.seq;
    for (let i = 0; i < planned.length; i += RECORDS_PER_TRANSACTION) {
      const chunk = planned.slice(i, i + RECORDS_PER_TRANSACTION);
      const last = chunk.at(-1) as Planned;
      const newHead: ChainHead = { seq: last.seq, link: last.link, eventId: last.eventId, linkedAt };
      const sealContent: HeadSeal = { v: HEAD_VERSION, kind: 'head', tenantId, ...newHead };
      let seal: Uint8Array;
      try {
        seal = await this.cipher.encrypt(tenantId, Buffer.from(JSON.stringify(sealContent)));
      } catch (error) {
        throw auditUnavailable(error, 'encrypted');
      }
      const items: TransactWriteItem[] = [];
      for (const p of chunk) {
        const content: LinkSealContent = { v: 1, kind: 'link', tenantId, seq: p.seq, eventId: p.eventId, link: p.link };
        let linkSeal: Uint8Array;
        try {
          linkSeal = await this.cipher.encrypt(tenantId, Buffer.from(JSON.stringify(content)));
        } catch (error) {
          throw auditUnavailable(error, 'encrypted');
        }
        const linked = { seq: p.seq, prevLink: p.prevLink, link: p.link, linkedAt, linkSeal };
        if (!p.item) {
          const occurredAt = EVENT_SORT_KEY.exec(p.sk)?.[1];
          items.push({
            Put: {
              TableName: this.tableName,
              Item: {
                pk: keys.auditPartition(tenantId),
                sk: p.sk,
                type: 'auditGap',
                tenantId,
                eventId: p.eventId,
                occurredAt,
                action: GAP_ACTION,
                ...linked,
              },
              ConditionExpression: 'attribute_not_exists(pk)',
            },
          });
          continue;
        }
        items.push({
          Update: {
            TableName: this.tableName,
            Key: { pk: p.item.pk, sk: p.item.sk },
            UpdateExpression: 'SET seq = :seq, prevLink = :prev, link = :link, linkedAt = :at, linkSeal = :linkSeal',
            ConditionExpression: `${p.forgedSeq === undefined ? 'attribute_not_exists(seq)' : 'seq = :forged'} AND ciphertext = :ct`,
            ExpressionAttributeValues: {
              ':seq': p.seq,
              ':prev': p.prevLink,
              ':link': p.link,
              ':at': linkedAt,
              ':linkSeal': linkSeal,
              ':ct': p.item.ciphertext,
              ...(p.forgedSeq === undefined ? {} : { ':forged': p.forgedSeq }),
            },
          },
        });
      }
      items.push({
        Put: {
          TableName: this.tableName,
          Item: { ...keys.auditHead(tenantId), type: 'auditHead', tenantId, ...newHead, seal },
          ...(previousSeq === undefined
            ? { ConditionExpression: 'attribute_not_exists(pk)' }
            : { ConditionExpression: 'seq = :previous', ExpressionAttributeValues: { ':previous': previousSeq } }),
        },
      });
      try {
        await this.db.send(new TransactWriteCommand({ TransactItems: items }));
      } catch (error) {
        const invalid = (cancellationReasons(error) ?? []).indexOf('ValidationError');
        const record = invalid >= 0 ? chunk[invalid] : undefined;
        if (record?.item) throw new PoisonedRecordError(record.sk);
        throw error;
      }
      previousSeq = newHead.seq;
    }
  }
}
