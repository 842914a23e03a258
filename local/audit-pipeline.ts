/**
 * The audit function on a laptop: polls DynamoDB Local's stream of the audit table the way Lambda's event source
 * mapping polls DynamoDB's (shards in parent-before-child order, batches of up to 100 inserted records, a failed
 * batch delivered again from its first record), calls the same handler, and runs the anchor on a timer.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { DescribeTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  type _Record,
  DescribeStreamCommand,
  DynamoDBStreamsClient,
  GetRecordsCommand,
  GetShardIteratorCommand,
  type Shard,
} from '@aws-sdk/client-dynamodb-streams';
import type { AuditFunctionEvent, AuditFunctionResult, StreamRecord } from '../lambdas/audit/run.ts';
import { LOCAL_AWS } from './dynamodb-local.ts';

type Handler = (event: AuditFunctionEvent) => Promise<AuditFunctionResult>;

/** Options of {@link startAuditPipeline}. */
export interface AuditPipelineOptions {
  endpoint: string;
  /** DynamoDB Local's client (for DescribeTable). */
  dynamodb: DynamoDBClient;
  auditTable: string;
  handler: Handler;
  /** How often the stream is polled when it is idle. @default 200 */
  pollMs?: number;
  /** How often pending tenants are anchored. @default 300000 */
  anchorMs?: number;
  /** A file to remember how far each shard was read (across restarts with KEYSMITH_DATA_DIR). */
  checkpointFile?: string;
  /** Told about a failed batch or poll (it is retried). */
  onError?: (error: unknown) => void;
}

interface Checkpoint {
  streamArn: string;
  shards: Record<string, { after?: string; done?: boolean }>;
}

/** The running pipeline; `stop` waits for the batch in flight. `idle` resolves once everything committed is linked. */
export interface AuditPipeline {
  stop(): Promise<void>;
  /** Resolves after a full poll that found nothing new (everything committed before the call is linked). */
  drained(): Promise<void>;
  /** Runs the anchor now (as the schedule would). */
  anchorNow(): Promise<void>;
}

export async function startAuditPipeline(options: AuditPipelineOptions): Promise<AuditPipeline> {
  const { endpoint, dynamodb, auditTable, handler, pollMs = 200, anchorMs = 300_000, checkpointFile, onError } = options;
  const streams = new DynamoDBStreamsClient({ ...LOCAL_AWS, endpoint, maxAttempts: 3 });
  const { Table } = await dynamodb.send(new DescribeTableCommand({ TableName: auditTable }));
  const streamArn = Table?.LatestStreamArn;
  if (!streamArn) throw new Error(`the audit table ${auditTable} has no stream`);
  let checkpoint: Checkpoint = { streamArn, shards: {} };
  if (checkpointFile && existsSync(checkpointFile)) {
    try {
      const saved = JSON.parse(readFileSync(checkpointFile, 'utf8')) as Checkpoint;
      if (saved.streamArn === streamArn) checkpoint = saved;
    } catch {
      // An unreadable checkpoint: read from the start (linking is idempotent; events are at least once).
    }
  }
  const save = () => {
    if (checkpointFile) writeFileSync(checkpointFile, JSON.stringify(checkpoint), { mode: 0o600 });
  };
  const iterators = new Map<string, string>();
  let stopped = false;
  let waiters: (() => void)[] = [];

  /** One pass over the shards; true when it found records. */
  async function poll(): Promise<boolean> {
    const shards: Shard[] = [];
    let start: string | undefined;
    do {
      const { StreamDescription } = await streams.send(
        new DescribeStreamCommand({ StreamArn: streamArn, ...(start ? { ExclusiveStartShardId: start } : {}) }),
      );
      shards.push(...(StreamDescription?.Shards ?? []));
      start = StreamDescription?.LastEvaluatedShardId;
    } while (start);
    const known = new Set(shards.map((shard) => shard.ShardId));
    let found = false;
    for (const shard of shards) {
      const id = shard.ShardId as string;
      const state = checkpoint.shards[id] ?? {};
      checkpoint.shards[id] = state;
      if (state.done) continue;
      // A child shard waits for its parent: a tenant's records stay in order across a shard split.
      const parent = shard.ParentShardId;
      if (parent && known.has(parent) && !checkpoint.shards[parent]?.done) continue;
      let iterator = iterators.get(id);
      if (!iterator) {
        const answer = await streams.send(
          new GetShardIteratorCommand({
            StreamArn: streamArn,
            ShardId: id,
            ...(state.after
              ? { ShardIteratorType: 'AFTER_SEQUENCE_NUMBER', SequenceNumber: state.after }
              : { ShardIteratorType: 'TRIM_HORIZON' }),
          }),
        );
        iterator = answer.ShardIterator;
      }
      // Read the shard to its current end.
      while (iterator && !stopped) {
        const { Records = [], NextShardIterator } = await streams.send(
          new GetRecordsCommand({ ShardIterator: iterator, Limit: 100 }),
        );
        if (Records.length > 0) {
          found = true;
          const delivered = await deliver(Records);
          if (!delivered) {
            iterators.delete(id); // start again after the last record handled
            return true;
          }
          state.after = Records.at(-1)?.dynamodb?.SequenceNumber;
          save();
        }
        if (!NextShardIterator) {
          state.done = true;
          iterators.delete(id);
          save();
          break;
        }
        if (Records.length === 0) {
          // DynamoDB Local's iterator after an empty read fails on the next one ("past the oldest record"): ask again.
          iterators.delete(id);
          break;
        }
        iterator = NextShardIterator;
        iterators.set(id, iterator);
      }
    }
    return found;
  }

  /** Hands one batch to the handler; false when it asked for the batch again. */
  async function deliver(records: _Record[]): Promise<boolean> {
    const batch = records.filter((record) => record.eventName === 'INSERT' && record.dynamodb?.Keys?.sk?.S?.startsWith('EVENT#'));
    if (batch.length === 0) return true;
    const result = await handler({ Records: batch as StreamRecord[] });
    return !('batchItemFailures' in result) || result.batchItemFailures.length === 0;
  }

  const loop = (async () => {
    let failures = 0;
    while (!stopped) {
      let found = false;
      try {
        found = await poll();
        failures = 0;
      } catch (error) {
        failures++;
        onError?.(error);
      }
      if (!found && failures === 0) {
        const ready = waiters;
        waiters = [];
        for (const resolve of ready) resolve();
      }
      if (!found || failures > 0)
        await new Promise((resolve) => setTimeout(resolve, failures > 0 ? Math.min(5000, pollMs * 2 ** failures) : pollMs));
    }
  })();

  const anchorNow = async () => {
    await handler({ keysmith: 'anchor-pending' });
  };
  const anchorTimer = setInterval(() => {
    anchorNow().catch((error: unknown) => onError?.(error));
  }, anchorMs);
  anchorTimer.unref();

  return {
    async stop() {
      stopped = true;
      clearInterval(anchorTimer);
      for (const resolve of waiters) resolve();
      await loop;
      streams.destroy();
    },
    drained() {
      // Two idle passes: the first may have started before the caller's last commit.
      return new Promise<void>((resolve) => {
        waiters.push(() => waiters.push(resolve));
      });
    },
    anchorNow,
  };
}
