/**
 * The anchor queue (shared/audit/anchor-queue.ts): the folder `npm start` uses, and the SQS queue of AWS driven through
 * an in-process stand-in of SQS's semantics (no SQS emulator installs here): receive hides a message for its visibility
 * timeout, delete removes it by receipt handle, a message not deleted comes back.
 */
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteMessageBatchCommand, ReceiveMessageCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { DirectoryAnchorQueue, SqsAnchorQueue } from '#shared/audit/anchor-queue.ts';

/** SQS standard-queue semantics, in memory, with a clock the test moves. */
class SqsStandIn {
  now = 0;
  private readonly messages: { id: number; body: string; visibleAt: number; receipt?: string }[] = [];
  private next = 0;
  sent = 0;
  async send(command: unknown): Promise<unknown> {
    if (command instanceof SendMessageCommand) {
      this.sent++;
      this.messages.push({ id: this.next++, body: command.input.MessageBody as string, visibleAt: 0 });
      return {};
    }
    if (command instanceof ReceiveMessageCommand) {
      const max = command.input.MaxNumberOfMessages ?? 1;
      const visible = this.messages.filter((m) => m.visibleAt <= this.now).slice(0, max);
      for (const m of visible) {
        m.visibleAt = this.now + (command.input.VisibilityTimeout ?? 30) * 1000;
        m.receipt = `r-${m.id}-${this.now}`;
      }
      return { Messages: visible.map((m) => ({ Body: m.body, ReceiptHandle: m.receipt })) };
    }
    if (command instanceof DeleteMessageBatchCommand) {
      for (const entry of command.input.Entries ?? []) {
        const at = this.messages.findIndex((m) => m.receipt === entry.ReceiptHandle);
        if (at >= 0) this.messages.splice(at, 1);
      }
      return { Successful: command.input.Entries, Failed: [] };
    }
    throw new Error(`unexpected ${String(command)}`);
  }
  get size(): number {
    return this.messages.length;
  }
}

describe('the SQS anchor queue', () => {
  it('folds marks per tenant, acknowledges only what was anchored, and drops junk', async () => {
    const sqs = new SqsStandIn();
    const queue = new SqsAnchorQueue(sqs as unknown as SQSClient, 'https://sqs.test/anchor', 300);
    for (let seq = 1; seq <= 25; seq++) await queue.mark('acme', seq);
    await queue.mark('globex', 3);
    await sqs.send(new SendMessageCommand({ QueueUrl: 'x', MessageBody: '{"tenantId":"../../etc","seq":1}' }));
    await sqs.send(new SendMessageCommand({ QueueUrl: 'x', MessageBody: 'not json' }));
    const marks = await queue.take(100);
    expect(marks.map(({ tenantId, seq }) => ({ tenantId, seq }))).toEqual([
      { tenantId: 'acme', seq: 25 },
      { tenantId: 'globex', seq: 3 },
    ]);
    // Junk is deleted at once; the marks are hidden, not gone, until acknowledged.
    expect(sqs.size).toBe(26);
    await marks.find((m) => m.tenantId === 'acme')?.done();
    expect(sqs.size).toBe(1);
    expect(await queue.take(100)).toEqual([]);
    // The unacknowledged tenant (its anchoring failed) comes back after the visibility timeout.
    sqs.now += 300_000;
    expect((await queue.take(100)).map((m) => m.tenantId)).toEqual(['globex']);
  });

  it('takes at most the tenants asked for; the rest wait for the next run', async () => {
    const sqs = new SqsStandIn();
    const queue = new SqsAnchorQueue(sqs as unknown as SQSClient, 'https://sqs.test/anchor');
    for (let i = 0; i < 30; i++) await queue.mark(`t${i}`, 1);
    const first = await queue.take(10);
    expect(first.length).toBeGreaterThanOrEqual(10);
    expect(first.length).toBeLessThan(30);
    for (const mark of first) await mark.done();
    const rest = await queue.take(100);
    expect(new Set([...first, ...rest].map((m) => m.tenantId)).size).toBe(30);
  });
});

describe('the folder anchor queue', () => {
  it('keeps one file per tenant with its highest seq, and keeps a newer mark written while anchoring', async () => {
    const directory = join(mkdtempSync(join(tmpdir(), 'keysmith-anchors-')), 'anchors');
    const queue = new DirectoryAnchorQueue(directory);
    await queue.mark('acme', 2);
    await queue.mark('acme', 1);
    writeFileSync(join(directory, 'Bad.Name'), '1');
    writeFileSync(join(directory, 'half-written'), '');
    const [mark] = await queue.take(10);
    expect(mark).toMatchObject({ tenantId: 'acme', seq: 2 });
    await queue.mark('acme', 3);
    await mark?.done();
    expect((await queue.take(10)).map(({ tenantId, seq }) => ({ tenantId, seq }))).toEqual([{ tenantId: 'acme', seq: 3 }]);
    expect(readdirSync(directory).sort()).toEqual(['Bad.Name', 'acme']);
    await expect(queue.mark('../x', 1)).rejects.toThrow(TypeError);
  });
});
