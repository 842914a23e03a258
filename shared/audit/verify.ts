/**
 * `keysmith audit verify`: walks a tenant's records, recomputes its hash chain, and checks it against the tenant's
 * signed digests (./digests.ts) and, with the main table, against each client's sealed last change.
 *
 * Without the audit key (an auditor holding only the digests' public key) it checks integrity: every link, the
 * order, the head against the latest digest. With the key it also opens every record (content and identity) and
 * checks the head's seal. What the digests add: a replayed old head, a deleted partition, a table restored from an
 * older backup and a cut tail are caught from outside the table, as far as the latest digest reaches.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import type { ClientInspection } from '../store.ts';
import { keys } from '../tables.ts';
import { GENESIS_LINK, linkDigest, linkSealValid, readHead, type StoredHead } from './chain.ts';
import { DigestInvalidError, type DigestKeys, type DigestStore, openDigest, type StoredDigest, sha256 } from './digests.ts';
import { type AuditCipher, AuditIntegrityError, EVENT_SORT_KEY, openRecord, recordDigest } from './log.ts';

/** What went wrong first. */
export type ChainProblemKind =
  | 'changed'
  | 'deleted'
  | 'inserted'
  | 'reordered'
  | 'truncated'
  | 'head_missing'
  | 'head_changed'
  | 'rolled_back'
  | 'unlinked'
  | 'digest_invalid';

/** What {@link AuditVerifier.verify} found. */
export interface ChainReport {
  ok: boolean;
  tenantId: string;
  /** Linked records walked. */
  records: number;
  /** Records committed and not linked yet, within the link bound. */
  pending: number;
  firstSeq?: number;
  lastSeq?: number;
  /** The chain head as stored (`digest` is its link): keep a copy outside AWS with `--expect-head`. */
  head?: { seq: number; digest: string; linkedAt: string };
  /** The latest digest, when digests were checked. */
  anchor?: { seq: number; createdAt: string; key: string };
  /** Digests checked (signature, chain of digests, and the chain at each digest's seq). */
  digestsChecked?: number;
  /** Records linked longer ago than the anchor interval allows and not yet covered by a digest (anchoring lags). */
  unanchored?: number;
  /** Whether record content (and the head's seal) was opened with the audit key, or only integrity checked. */
  contentChecked: boolean;
  /** Clients whose sealed last change was found in the chain (when `clients` was given). */
  clientsChecked?: number;
  problem?: { kind: ChainProblemKind; seq: number; detail: string };
}

/** Options of {@link AuditVerifier.verify}. */
export interface VerifyOptions {
  /** Called after each page with the number of records read. */
  onProgress?: (read: number) => void;
  /** A head saved earlier (from a report): the chain must still hold that record with that link. */
  expectHead?: { seq: number; digest: string };
  /**
   * The main table's view of the tenant: each client's seal names the audit record of its last change
   * (`auditEventId`), which must be the last record naming it.
   */
  clients?: {
    listed: readonly string[];
    inspect: (clientId: string) => Promise<ClientInspection>;
  };
}

/** Options of {@link AuditVerifier}. */
export interface AuditVerifierOptions {
  documentClient: DynamoDBDocumentClient;
  tableName: string;
  /** The audit key's cipher; absent, only integrity is checked (no content, no head seal). */
  cipher?: AuditCipher;
  /** The digests and the public keys they must verify with; absent, digests are not checked. */
  digests?: { store: DigestStore; keys: DigestKeys };
  /** Days records are kept (DynamoDB TTL); undefined: forever, so nothing may be missing. */
  retentionDays?: number;
  /** How long a committed record may stay unlinked before it is reported. @default 60 */
  linkBoundSeconds?: number;
  /** How often digests are written. @default 300 */
  anchorSeconds?: number;
  now?: () => number;
}

type Item = Record<string, unknown>;

interface Linked {
  item: Item;
  seq: number;
  eventId: string;
  occurredAt: string;
  link: string;
  prevLink: unknown;
  linkedAt: string;
}

const linkedOf = (item: Item): Linked | undefined => {
  const match = EVENT_SORT_KEY.exec(String(item.sk));
  if (!Number.isSafeInteger(item.seq) || (item.seq as number) < 1 || !match) return undefined;
  return {
    item,
    seq: item.seq as number,
    occurredAt: match[1] as string,
    eventId: match[2] as string,
    link: String(item.link),
    prevLink: item.prevLink,
    linkedAt: String(item.linkedAt),
  };
};

/** Checks tenants' audit chains. */
export class AuditVerifier {
  private readonly db: DynamoDBDocumentClient;
  private readonly options: AuditVerifierOptions;
  private readonly now: () => number;

  constructor(options: AuditVerifierOptions) {
    this.db = options.documentClient;
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  private get retentionMs(): number | undefined {
    return this.options.retentionDays ? this.options.retentionDays * 86_400_000 : undefined;
  }

  /** Slack for expiry and lag: the link bound plus one anchor interval. */
  private get slackMs(): number {
    return ((this.options.linkBoundSeconds ?? 60) + (this.options.anchorSeconds ?? 300)) * 1000;
  }

  async verify(tenantId: string, options: VerifyOptions = {}): Promise<ChainReport> {
    const first: { unjudged?: number } = {};
    const report = await this.walk(tenantId, options, 0, first);
    // Records missing past the first head read may have been linked during the walk, or that (unauthenticated) read
    // was tampered with: walk again, judging every gap up to the head the first walk ended at.
    if (!report.ok || first.unjudged === undefined) return report;
    return this.walk(tenantId, options, first.unjudged, {});
  }

  /**
   * One walk. Gaps above `max(floor, the first head read)` are not judged; when there were any, `state.unjudged`
   * is the head seq the walk ended at (every record up to it was linked before the next walk reads).
   */
  private async walk(
    tenantId: string,
    options: VerifyOptions,
    floor: number,
    state: { unjudged?: number },
  ): Promise<ChainReport> {
    const { cipher, digests } = this.options;
    const report: ChainReport = { ok: true, tenantId, records: 0, pending: 0, contentChecked: cipher !== undefined };
    const fail = (kind: ChainProblemKind, seq: number, detail: string): ChainReport => ({
      ...report,
      ok: false,
      problem: { kind, seq, detail },
    });
    const now = this.now();

    // 1. The digests first (each names a head no later than the one read next), the head, every record, the
    //    unlinked ones again, then the head again. The linker writes links and head in one transaction, so every
    //    record the first head covers is read, and every linked record read is covered by the second head; records
    //    between the two were linked during the walk.
    let digestList: StoredDigest[] = [];
    if (digests) {
      try {
        digestList = await this.readDigests(tenantId, digests.store, digests.keys);
      } catch (error) {
        if (error instanceof DigestInvalidError) return fail('digest_invalid', 0, error.message);
        throw error;
      }
      report.digestsChecked = digestList.length;
    }
    const headBefore = await readHead(this.db, this.options.tableName, tenantId);
    const items = await this.readRecords(tenantId, options.onProgress);
    const linked: Linked[] = [];
    const unlinked: Item[] = [];
    for (const item of items) {
      if (item.seq === undefined) unlinked.push(item);
      else {
        const record = linkedOf(item);
        if (!record) return fail('changed', 0, `record ${String(item.sk)} carries a malformed seq`);
        linked.push(record);
      }
    }
    const stillUnlinked: Item[] = [];
    for (const item of unlinked) {
      const { Item: again } = await this.db.send(
        new GetCommand({ TableName: this.options.tableName, Key: { pk: item.pk, sk: item.sk }, ConsistentRead: true }),
      );
      if (!again) continue; // expired or removed meanwhile: judged by the chain below
      const record = again.seq === undefined ? undefined : linkedOf(again);
      if (record) linked.push(record);
      else stillUnlinked.push(again);
    }
    const head: StoredHead | undefined = await readHead(this.db, this.options.tableName, tenantId, cipher);
    if (head) report.head = { seq: head.seq, digest: head.link, linkedAt: head.linkedAt };

    // 2. The chain: contiguous seqs, each link recomputed, each record naming its predecessor.
    linked.sort((a, b) => a.seq - b.seq);
    const bySeq = new Map<number, Linked>();
    const missing: { from: number; to: number }[] = [];
    let previous: Linked | undefined;
    for (const record of linked) {
      if (bySeq.has(record.seq))
        return fail(
          'inserted',
          record.seq,
          `two records carry seq ${record.seq} (${record.eventId} and ${bySeq.get(record.seq)?.eventId})`,
        );
      if (record.item.type === 'auditGap')
        return fail(
          'deleted',
          record.seq,
          `record ${record.eventId} (seq ${record.seq}) was committed and removed before it was linked`,
        );
      const ciphertext = record.item.ciphertext;
      if (!(ciphertext instanceof Uint8Array) || record.item.eventId !== record.eventId)
        return fail('changed', record.seq, `record ${record.seq} is malformed`);
      const expected = linkDigest({
        tenantId,
        seq: record.seq,
        eventId: record.eventId,
        sk: String(record.item.sk),
        action: String(record.item.action),
        recordDigest: recordDigest(ciphertext),
        prevLink: String(record.prevLink),
      });
      if (expected !== record.link)
        return fail('changed', record.seq, `record ${record.seq} does not match its link: its content or place was changed`);
      if (cipher && !(await linkSealValid(cipher, tenantId, record.item)))
        return fail(
          'changed',
          record.seq,
          `record ${record.seq}'s link was not written by Keysmith (its link seal does not match)`,
        );
      if (cipher) {
        try {
          const { content, misplaced } = await openRecord(cipher, record.item);
          if (misplaced) return fail('changed', record.seq, `record ${record.seq} is stored out of place (moved or relabelled)`);
          if (content.eventId !== record.eventId) return fail('changed', record.seq, `record ${record.seq} names another event`);
        } catch (error) {
          if (!(error instanceof AuditIntegrityError)) throw error;
          return fail('changed', record.seq, `record ${record.seq}: ${error.message}`);
        }
      }
      const expectedPrevious = previous ? previous.seq + 1 : 1;
      if (record.seq > expectedPrevious) missing.push({ from: expectedPrevious, to: record.seq - 1 });
      if (record.seq === expectedPrevious) {
        const previousLink = previous ? previous.link : GENESIS_LINK;
        if (record.prevLink !== previousLink)
          return fail('reordered', record.seq, `record ${record.seq} does not follow record ${record.seq - 1}`);
      }
      bySeq.set(record.seq, record);
      previous = record;
      report.records += 1;
      report.firstSeq ??= record.seq;
      report.lastSeq = record.seq;
    }

    // 3. Records never linked: refused by the linker (not authentic) or stuck past the bound.
    const bound = (this.options.linkBoundSeconds ?? 60) * 1000;
    for (const item of stillUnlinked) {
      const occurredAt = Date.parse(String(EVENT_SORT_KEY.exec(String(item.sk))?.[1] ?? item.occurredAt));
      if (cipher) {
        try {
          const { misplaced } = await openRecord(cipher, item);
          if (misplaced) throw new AuditIntegrityError('the record is stored out of place');
        } catch (error) {
          if (!(error instanceof AuditIntegrityError)) throw error;
          return fail(
            'inserted',
            0,
            `record ${String(item.sk)} was not written by Keysmith (${error.message}); it is never linked`,
          );
        }
      }
      // A record dated in the future is waiting for nothing: a clock Keysmith's functions share (skew: 5 minutes).
      if (occurredAt > now + 300_000)
        return fail('inserted', 0, `record ${String(item.sk)} is dated in the future; it was not written by Keysmith`);
      if (!(occurredAt + bound > now))
        return fail('unlinked', 0, `record ${String(item.sk)} was committed more than ${bound / 1000} s ago and is not linked`);
      report.pending += 1;
    }

    // 4. The head: present once anything is linked, sealed, at the last record, never moved back during the walk.
    if (headBefore && (!head || head.seq < headBefore.seq))
      return fail('rolled_back', head?.seq ?? 0, `the chain head moved back from ${headBefore.seq} while it was checked`);
    if (!head && previous) return fail('head_missing', previous.seq, 'records are linked but the chain head is missing');
    if (head && head.authentic === false)
      return fail('head_changed', head.seq, 'the chain head was edited outside Keysmith (its seal does not match)');
    if (head && previous && head.seq < previous.seq)
      return fail('inserted', head.seq + 1, `records after the head (${head.seq}) were linked outside Keysmith`);
    if (head && (!previous || head.seq > previous.seq)) {
      // The newest records gone: a cut tail, unless they expired (the head itself is never expired).
      const from = (previous?.seq ?? 0) + 1;
      missing.push({ from, to: head.seq });
    }
    if (head && previous && head.seq === previous.seq && head.link !== previous.link)
      return fail('changed', head.seq, `record ${head.seq} differs from the head's link`);

    // 5. The digests: each signed, chained to an earlier one, and agreeing with the chain where it still is.
    if (digests) {
      for (const digest of digestList) {
        const record = bySeq.get(digest.payload.seq);
        if (record && record.link !== digest.payload.link)
          return fail(
            'rolled_back',
            digest.payload.seq,
            `record ${digest.payload.seq} is not the one digest ${digest.key} signed: the chain was rewritten`,
          );
      }
      const latest = digestList.at(-1);
      if (latest) {
        report.anchor = { seq: latest.payload.seq, createdAt: latest.payload.createdAt, key: latest.key };
        if (!head && !previous)
          return fail(
            'deleted',
            1,
            `digest ${latest.key} names record ${latest.payload.seq}, but the tenant has no chain: its records were deleted`,
          );
        if (!head || head.seq < latest.payload.seq)
          return fail(
            'rolled_back',
            head?.seq ?? 0,
            `the chain ends at record ${head?.seq ?? previous?.seq}, but digest ${latest.key} names record ${latest.payload.seq}: the table was rolled back or cut`,
          );
        if (head.seq === latest.payload.seq && head.link !== latest.payload.link)
          return fail('rolled_back', head.seq, `the head is not the one digest ${latest.key} signed: it was rewritten`);
      }
      const lagMs = 2 * (this.options.anchorSeconds ?? 300) * 1000 + bound;
      report.unanchored = linked.filter(
        (record) => record.seq > (latest?.payload.seq ?? 0) && Date.parse(record.linkedAt) + lagMs < now,
      ).length;
    }

    // 6. What is missing: expired (with retention, proven by the digest that covered it) or deleted.
    // Only up to the head read before the walk: records past it may have been linked after their page was read.
    const settled = Math.max(floor, headBefore?.seq ?? 0);
    for (const found of missing) {
      if (found.to > settled) state.unjudged = head?.seq ?? settled;
      if (found.from > settled) continue;
      const range = { from: found.from, to: Math.min(found.to, settled) };
      const problem = this.judgeMissing(range, digests ? digestList : undefined, head, now);
      if (problem) return fail(problem.kind, range.from, problem.detail);
    }

    // 7. A head kept elsewhere.
    const { expectHead } = options;
    if (expectHead) {
      const kept = bySeq.get(expectHead.seq);
      if ((kept && kept.link !== expectHead.digest) || !head || head.seq < expectHead.seq)
        return fail(
          'rolled_back',
          expectHead.seq,
          `a head kept elsewhere names record ${expectHead.seq}; the chain no longer holds it as it was`,
        );
    }

    // 8. Each client's sealed last change must be the last record naming it.
    if (options.clients) {
      const { problem, checked } = await this.checkClients(tenantId, options.clients, linked, stillUnlinked, now);
      if (problem) return fail(problem.kind, problem.seq, problem.detail);
      report.clientsChecked = checked;
    }
    return report;
  }

  private judgeMissing(
    range: { from: number; to: number },
    digestList: StoredDigest[] | undefined,
    head: StoredHead | undefined,
    now: number,
  ): { kind: ChainProblemKind; detail: string } | undefined {
    const what = range.from === range.to ? `record ${range.from} is` : `records ${range.from} to ${range.to} are`;
    const retention = this.retentionMs;
    if (!retention) return { kind: range.to === head?.seq ? 'truncated' : 'deleted', detail: `${what} missing` };
    // Record `to` was linked before the earliest digest covering it was made: if that digest is older than the
    // retention, every record of the range is old enough to have expired.
    const expiredBy = (at: number) => at + retention <= now + this.slackMs;
    if (digestList) {
      const covering = digestList.find((digest) => digest.payload.seq >= range.to);
      if (covering) {
        if (expiredBy(Date.parse(covering.payload.createdAt))) return undefined;
        return {
          kind: 'deleted',
          detail: `${what} missing, but digest ${covering.key} covered them less than the retention ago: they were deleted, not expired`,
        };
      }
    }
    if (head && head.seq >= range.to && expiredBy(Date.parse(head.linkedAt))) return undefined;
    // Without a digest to tell, the oldest records may have expired: accept a gap at the start only.
    if (!digestList && range.from === 1 && range.to < (head?.seq ?? 0)) return undefined;
    return {
      kind: range.to === head?.seq ? 'truncated' : 'deleted',
      detail: `${what} missing and not old enough to have expired`,
    };
  }

  /** A tenant's records, strongly consistent, oldest first. */
  private async readRecords(tenantId: string, onProgress?: (read: number) => void): Promise<Item[]> {
    const items: Item[] = [];
    let startKey: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(
        new QueryCommand({
          TableName: this.options.tableName,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :events)',
          ExpressionAttributeValues: { ':pk': keys.auditPartition(tenantId), ':events': 'EVENT#' },
          ConsistentRead: true,
          ExclusiveStartKey: startKey,
        }),
      );
      items.push(...(page.Items ?? []));
      onProgress?.(items.length);
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return items;
  }

  /** Every digest of the tenant, verified, each chained to an earlier one. Throws DigestInvalidError. */
  private async readDigests(tenantId: string, store: DigestStore, trusted: DigestKeys): Promise<StoredDigest[]> {
    const list: StoredDigest[] = [];
    const byKey = new Map<string, StoredDigest>();
    for (const key of await store.list(tenantId)) {
      const body = await store.get(key);
      if (!body) throw new DigestInvalidError(`${key} is listed but cannot be read`);
      const digest = openDigest(key, body, trusted);
      if (digest.payload.tenantId !== tenantId) throw new DigestInvalidError(`${key} is not a digest of tenant ${tenantId}`);
      const { previous } = digest.payload;
      // Two anchors racing (the schedule, the linker's own, `keysmith audit anchor`) may both chain to the same
      // predecessor: any earlier digest, by hash, of no later seq; or, for a tenant's first digests, to none at all.
      const racingFirst = !previous && list.every((earlier) => earlier.payload.previous === null);
      if (list.length > 0 && !racingFirst) {
        const before = previous ? byKey.get(previous.key) : undefined;
        if (!previous || !before || sha256(before.body) !== previous.sha256 || before.payload.seq > digest.payload.seq)
          throw new DigestInvalidError(`${key} does not chain to an earlier digest: a digest was removed or replaced`);
      }
      list.push(digest);
      byKey.set(key, digest);
    }
    return list;
  }

  private async checkClients(
    tenantId: string,
    clients: NonNullable<VerifyOptions['clients']>,
    linked: Linked[],
    unlinked: Item[],
    now: number,
  ): Promise<{ problem?: { kind: ChainProblemKind; seq: number; detail: string }; checked: number }> {
    // The last record naming each client needs its content: only with the key. Without it, only presence is checked.
    const { cipher } = this.options;
    const lastNaming = new Map<string, { eventId: string; action: string; seq: number }>();
    const named = new Set<string>();
    if (cipher)
      for (const item of [...linked.map((record) => record.item), ...unlinked]) {
        const { content } = await openRecord(cipher, item);
        lastNaming.set(content.target.clientId, { eventId: content.eventId, action: content.action, seq: Number(item.seq ?? 0) });
        named.add(content.target.clientId);
      }
    const present = new Set([...linked.map((record) => record.eventId), ...unlinked.map((item) => String(item.eventId))]);
    let checked = 0;
    for (const clientId of new Set([...named, ...clients.listed])) {
      const found = await clients.inspect(clientId);
      const last = lastNaming.get(clientId);
      const refuse = (kind: ChainProblemKind, seq: number, detail: string) => ({ problem: { kind, seq, detail }, checked });
      if (found.status === 'refused')
        return refuse(
          found.reason === 'client_stale' ? 'rolled_back' : 'changed',
          last?.seq ?? 0,
          `client ${clientId} fails its integrity check (${found.reason}) in the main table`,
        );
      if (found.status === 'absent') continue;
      checked += 1;
      const { auditEventId, updatedAt } = found.found.client;
      if (last && last.eventId === auditEventId) continue;
      if (!present.has(auditEventId)) {
        // Committed after the walk? Its record is where the seal says.
        const { Item } = await this.db.send(
          new GetCommand({
            TableName: this.options.tableName,
            Key: { pk: keys.auditPartition(tenantId), sk: keys.auditEventSort(updatedAt, auditEventId) },
            ConsistentRead: true,
          }),
        );
        if (Item) continue;
        const retention = this.retentionMs;
        if (retention && Date.parse(updatedAt) + retention <= now + this.slackMs) continue;
        return refuse(
          'rolled_back',
          0,
          `client ${clientId} was last changed by record ${auditEventId}, which the audit table no longer holds: records were cut`,
        );
      }
      if (last && cipher)
        return refuse(
          'rolled_back',
          last.seq,
          last.action === 'client.deleted'
            ? `client ${clientId} was deleted by record ${last.eventId} but its items are back`
            : `client ${clientId}'s seal names record ${auditEventId} as its last change, but the chain names it last in ${last.eventId}`,
        );
    }
    return { checked };
  }
}
