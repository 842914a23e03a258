/**
 * The audit trail as the tests see it: the run's audit function links records from the stream (test/global-setup.ts);
 * these helpers wait for it, write digests on demand, and check chains the way `keysmith audit verify` does.
 */
import { readFileSync } from 'node:fs';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { inject } from 'vitest';
import { createTableInput } from '#local/dynamodb-local.ts';
import { type AnchorQueue, DirectoryAnchorQueue } from '#shared/audit/anchor-queue.ts';
import { AuditAnchor, digestKeyFromPem, LocalDigestStore } from '#shared/audit/digests.ts';
import { AuditLog } from '#shared/audit/log.ts';
import { AuditVerifier, type AuditVerifierOptions } from '#shared/audit/verify.ts';
import { loadConfig } from '#shared/config.ts';
import { createDocumentClient } from '#shared/dynamodb.ts';
import { KeysmithService } from '#shared/service.ts';
import { ClientStore } from '#shared/store.ts';
import { AUDIT_TABLE } from '#shared/tables.ts';
import { LocalTokenSigner } from '#shared/token-signers.ts';
import { createAuditRecordCipher, createSealKey } from '#shared/wiring.ts';

const config = loadConfig();
const db = createDocumentClient();

/** The run's digest folder and the public key that checks its digests. */
export const testDigests = () => ({
  store: new LocalDigestStore(inject('auditDigestDir')),
  keys: [digestKeyFromPem(readFileSync(inject('auditDigestKeyFile'), 'utf8'))],
});

/**
 * The anchor, as the audit function's schedule runs it (`onTamper` collects what it refuses). `tenants` confines its
 * `anchorPending` to those tenants' marks (see {@link testAnchorQueue}).
 */
export function testAnchor(onTamper: (report: unknown) => void = () => {}, tenants?: readonly string[]): AuditAnchor {
  return new AuditAnchor({
    documentClient: db,
    tableName: config.tables.audit,
    cipher: createAuditRecordCipher(config),
    signer: LocalTokenSigner.fromPem(readFileSync(inject('auditDigestKeyFile'), 'utf8')),
    store: testDigests().store,
    onTamper,
    queue: testAnchorQueue(tenants),
  });
}

/**
 * The run's anchor queue: the folder where the run's audit function marks the tenants it links. Given `tenants`, it
 * takes only their marks: test files run in parallel, and an anchor run of one must not anchor another's tenants
 * under it (a test that anchors through the CLI expects to write its tenant's digest itself).
 */
export function testAnchorQueue(tenants?: readonly string[]): AnchorQueue {
  const queue = new DirectoryAnchorQueue(inject('auditAnchorDir'));
  if (tenants === undefined) return queue;
  return {
    location: queue.location,
    mark: (tenantId, seq) => queue.mark(tenantId, seq),
    take: async (maxTenants) => {
      const marks = await queue.take(Number.MAX_SAFE_INTEGER);
      return marks.filter((mark) => tenants.includes(mark.tenantId)).slice(0, maxTenants);
    },
  };
}

/** An anchor queue in memory, for linkers of a test's own audit table: what they mark is kept in `marks`. */
export function memoryAnchorQueue(): AnchorQueue & { marks: Map<string, number> } {
  const marks = new Map<string, number>();
  return {
    location: 'memory',
    marks,
    async mark(tenantId, seq) {
      marks.set(tenantId, Math.max(seq, marks.get(tenantId) ?? 0));
    },
    async take(max) {
      return [...marks].slice(0, max).map(([tenantId, seq]) => ({
        tenantId,
        seq,
        done: async () => void (marks.get(tenantId) === seq && marks.delete(tenantId)),
      }));
    },
  };
}

/** `audit verify` over the run's audit table: with the audit key and the digests unless told otherwise. */
export function testVerifier(options: Partial<AuditVerifierOptions> & { withoutKey?: boolean } = {}): AuditVerifier {
  const { withoutKey, ...rest } = options;
  return new AuditVerifier({
    documentClient: db,
    tableName: config.tables.audit,
    ...(withoutKey ? {} : { cipher: createAuditRecordCipher(config) }),
    digests: testDigests(),
    linkBoundSeconds: config.auditLinkBoundSeconds,
    anchorSeconds: config.auditAnchorSeconds,
    ...rest,
  });
}

/** A tenant's record items, oldest first (strongly consistent). */
export async function auditRecords(tenantId: string, tableName = config.tables.audit): Promise<Record<string, any>[]> {
  const items: Record<string, any>[] = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const page = await db.send(
      new QueryCommand({
        TableName: tableName,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :e)',
        ExpressionAttributeValues: { ':pk': `TENANT#${tenantId}`, ':e': 'EVENT#' },
        ConsistentRead: true,
        ExclusiveStartKey: startKey,
      }),
    );
    items.push(...(page.Items ?? []));
    startKey = page.LastEvaluatedKey;
  } while (startKey);
  return items;
}

/**
 * Waits until the audit function has linked the tenant's records (all but `unlinked` of them: records it refuses
 * stay unlinked), and returns them in chain order.
 */
export async function waitLinked(
  tenantId: string,
  options: { records?: number; unlinked?: number; timeoutMs?: number; tableName?: string } = {},
): Promise<Record<string, any>[]> {
  const { unlinked = 0, timeoutMs = 30_000, tableName } = options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const items = await auditRecords(tenantId, tableName);
    const linked = items.filter((item) => item.seq !== undefined);
    const enough = options.records === undefined || items.length >= options.records;
    if (enough && items.length - linked.length <= unlinked) return linked.sort((a, b) => a.seq - b.seq);
    if (Date.now() > deadline)
      throw new Error(`tenant ${tenantId}: ${linked.length} of ${items.length} audit records linked after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A service over the test tables writing to `auditTable` (the run's by default), with the local audit key. */
export function testService(options: { documentClient?: typeof db; audit?: AuditLog; auditTable?: string } = {}) {
  const documentClient = options.documentClient ?? db;
  const store = new ClientStore({ documentClient, tableName: config.tables.main, sealKey: createSealKey(config) });
  const audit =
    options.audit ??
    new AuditLog({
      documentClient,
      tableName: options.auditTable ?? config.tables.audit,
      cipher: createAuditRecordCipher(config),
    });
  return { store, audit, service: new KeysmithService({ documentClient, store, audit }) };
}

/** The system actor the tests change things as. */
export const SYSTEM = { type: 'system' as const, name: 'test' };

/** The main table's view of a tenant, as `audit verify` cross-checks it. */
export async function clientsView(store: ClientStore, tenantId: string) {
  return {
    listed: (await store.listClients(tenantId, 100)).items.map((c) => c.clientId),
    inspect: (clientId: string) => store.inspectClient(clientId),
  };
}

/** A fresh audit table (with its stream) for a test that runs its own audit function. */
export async function createOwnAuditTable(name: string): Promise<void> {
  const client = new DynamoDBClient({});
  try {
    await client.send(new CreateTableCommand(createTableInput(AUDIT_TABLE, name)));
  } finally {
    client.destroy();
  }
}
