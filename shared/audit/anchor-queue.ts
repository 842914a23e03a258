/**
 * The anchor's to-do list: which tenants' chains moved since their last digest. It lives outside the audit table
 * (review finding F2): a DynamoDB writer who deletes a to-do item there could keep a tenant's last changes unanchored
 * while it rolls them back. In AWS it is an SQS queue only the audit function's role may send to, read or delete
 * from; on a laptop a folder of one file per tenant.
 *
 * The linker marks a tenant before it commits the links (a mark for a commit that then fails costs one look at an
 * unchanged head); the scheduled anchor takes the marks, anchors each tenant once and acknowledges its marks only
 * once its digest is written, so a failed tenant is tried again on the next run.
 */
import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { TENANT_ID } from '../ids.ts';

/** A tenant to anchor, taken from the queue; `done` acknowledges it once its digest is written. */
export interface AnchorMark {
  tenantId: string;
  /** The highest seq marked for the tenant among the marks taken. */
  seq: number;
  done(): Promise<void>;
}

/** Where the linker leaves "anchor tenant T" and the anchor finds it. */
export interface AnchorQueue {
  /** Where it is, for messages. */
  readonly location: string;
  mark(tenantId: string, seq: number): Promise<void>;
  /** The tenants marked, each once, at most `maxTenants` of them. */
  take(maxTenants: number): Promise<AnchorMark[]>;
}

const isMark = (value: unknown): value is { tenantId: string; seq: number } =>
  typeof value === 'object' &&
  value !== null &&
  typeof (value as { tenantId?: unknown }).tenantId === 'string' &&
  TENANT_ID.test((value as { tenantId: string }).tenantId) &&
  Number.isSafeInteger((value as { seq?: unknown }).seq) &&
  (value as { seq: number }).seq > 0;

/** Receive calls of one {@link SqsAnchorQueue.take}, 10 messages each. */
const MAX_RECEIVE_ROUNDS = 200;

/** SQS: a standard queue, one message per mark; duplicates are folded per tenant when taken. */
export class SqsAnchorQueue implements AnchorQueue {
  readonly location: string;

  constructor(
    private readonly sqs: SQSClient,
    private readonly queueUrl: string,
    /** How long taken marks stay invisible before they come back (longer than an anchor run). @default 300 */
    private readonly visibilitySeconds = 300,
  ) {
    this.location = queueUrl;
  }

  async mark(tenantId: string, seq: number): Promise<void> {
    await this.sqs.send(new SendMessageCommand({ QueueUrl: this.queueUrl, MessageBody: JSON.stringify({ tenantId, seq }) }));
  }

  async take(maxTenants: number): Promise<AnchorMark[]> {
    const byTenant = new Map<string, { seq: number; receipts: string[] }>();
    const junk: string[] = [];
    // Until the queue answers empty, or enough tenants (their duplicates too) are in hand, or 2,000 messages were read:
    // a run stays well inside the function's timeout however many marks one busy tenant left; the rest wait.
    for (let round = 0; round < MAX_RECEIVE_ROUNDS && byTenant.size < maxTenants; round++) {
      const { Messages = [] } = await this.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: this.queueUrl,
          MaxNumberOfMessages: 10,
          VisibilityTimeout: this.visibilitySeconds,
          WaitTimeSeconds: 0,
        }),
      );
      if (Messages.length === 0) break;
      for (const message of Messages) {
        if (!message.ReceiptHandle) continue;
        let body: unknown;
        try {
          body = JSON.parse(message.Body ?? '');
        } catch {
          body = undefined;
        }
        if (!isMark(body)) {
          junk.push(message.ReceiptHandle);
          continue;
        }
        const entry = byTenant.get(body.tenantId) ?? { seq: 0, receipts: [] };
        entry.seq = Math.max(entry.seq, body.seq);
        entry.receipts.push(message.ReceiptHandle);
        byTenant.set(body.tenantId, entry);
      }
    }
    await this.delete(junk);
    return [...byTenant].map(([tenantId, { seq, receipts }]) => ({ tenantId, seq, done: () => this.delete(receipts) }));
  }

  private async delete(receipts: string[]): Promise<void> {
    for (let i = 0; i < receipts.length; i += 10) {
      const entries = receipts.slice(i, i + 10).map((ReceiptHandle, n) => ({ Id: String(n), ReceiptHandle }));
      const { Failed = [] } = await this.sqs.send(new DeleteMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: entries }));
      // A mark left undeleted comes back and costs one look at an up-to-date head: not worth failing the run.
      void Failed;
    }
  }
}

/** A folder: one file per tenant, named by its id and holding the highest seq marked (what `npm start` uses). */
export class DirectoryAnchorQueue implements AnchorQueue {
  readonly location: string;

  constructor(private readonly directory: string) {
    this.location = directory;
    mkdirSync(directory, { recursive: true, mode: 0o700 });
  }

  async mark(tenantId: string, seq: number): Promise<void> {
    if (!TENANT_ID.test(tenantId)) throw new TypeError('tenantId must match ^[a-z0-9][a-z0-9_-]{0,62}$');
    const file = join(this.directory, tenantId);
    if (seq <= this.read(tenantId)) return;
    const temporary = `${file}.${process.pid}.tmp`;
    writeFileSync(temporary, String(seq), { mode: 0o600 });
    renameSync(temporary, file);
  }

  async take(maxTenants: number): Promise<AnchorMark[]> {
    const marks: AnchorMark[] = [];
    for (const name of readdirSync(this.directory).sort()) {
      if (marks.length >= maxTenants) break;
      if (!TENANT_ID.test(name)) continue;
      const seq = this.read(name);
      if (seq <= 0) {
        // Not a mark of the linker's (a half-written or foreign file): nothing to anchor for it.
        rmSync(join(this.directory, name), { force: true });
        continue;
      }
      marks.push({
        tenantId: name,
        seq,
        // Only the marks taken: a newer one the linker wrote meanwhile stays for the next run.
        done: async () => {
          if (this.read(name) <= seq) rmSync(join(this.directory, name), { force: true });
        },
      });
    }
    return marks;
  }

  private read(tenantId: string): number {
    try {
      const seq = Number(readFileSync(join(this.directory, tenantId), 'utf8').trim());
      return Number.isSafeInteger(seq) && seq > 0 ? seq : 0;
    } catch {
      return 0;
    }
  }
}
