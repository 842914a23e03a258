/**
 * `npm run bench:audit`: what the audit trail costs, measured in one run on this machine.
 * 1. KMS calls per 1,000 records, with and without the Encryption SDK's data-key cache (a KMS client that counts calls).
 * 2. Latency per mutation (create a service client) with its audit record and seal, against the same write
 *    sealed but unaudited and neither sealed nor audited, all on DynamoDB Local (started here).
 * 3. Seal operations per change and per read (each a KMS GenerateMac or VerifyMac in AWS), counted.
 */
import { randomBytes } from 'node:crypto';
import { TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { createTables, LOCAL_AWS, localClient, startDynamoDbLocal } from '#local/dynamodb-local.ts';
import { AuditLog, createAuditCipher, kmsKeyring, localKeyring } from '#shared/audit.ts';
import { createDocumentClient } from '#shared/dynamodb.ts';
import { newClientId } from '#shared/ids.ts';
import type { ServiceClient } from '#shared/model.ts';
import { LocalSealKey, type SealKey } from '#shared/seal.ts';
import { KeysmithService } from '#shared/service.ts';
import { ClientStore } from '#shared/store.ts';
import { FAKE_KEY_ARN, fakeKms } from '../test/support/kms.ts';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const RECORDS = 1000;

/** Counts seal operations; `none` makes it a seal key that seals nothing (the unsealed baseline). */
class CountingSealKey implements SealKey {
  seals = 0;
  verifies = 0;
  constructor(private readonly inner: SealKey | 'none') {}
  async seal(message: string): Promise<Uint8Array> {
    this.seals += 1;
    return this.inner === 'none' ? new Uint8Array(32) : this.inner.seal(message);
  }
  async verify(message: string, seal: Uint8Array): Promise<boolean> {
    this.verifies += 1;
    return this.inner === 'none' ? true : this.inner.verify(message, seal);
  }
}

async function kmsCalls(): Promise<void> {
  console.log(
    `\n1. KMS calls per ${RECORDS} audit records, each a record and a head seal (Encryption SDK, KMS keyring, committing suite without signatures)`,
  );
  const rows: [string, number, number, number][] = [];
  for (const [label, disableCache, tenants] of [
    ['no data-key cache, 1 tenant', true, 1],
    ['cache (5 min, 1000 msgs), 1 tenant', false, 1],
    ['cache (5 min, 1000 msgs), 10 tenants', false, 10],
  ] as const) {
    const kms = fakeKms();
    const cipher = createAuditCipher({ keyring: kmsKeyring(FAKE_KEY_ARN, kms.kms), disableCache });
    const content = Buffer.from(JSON.stringify({ action: 'client.created', details: { name: 'x'.repeat(200) } }));
    const seal = Buffer.from(JSON.stringify({ v: 1, kind: 'head', seq: 1, digest: 'x'.repeat(43) }));
    const started = performance.now();
    // Each change encrypts two messages, as AuditLog.prepare does: the record and the chain head's seal.
    for (let i = 0; i < RECORDS; i++) {
      await cipher.encrypt(`tenant-${i % tenants}`, content);
      await cipher.encrypt(`tenant-${i % tenants}`, seal);
    }
    const ms = performance.now() - started;
    rows.push([label, kms.calls.generateDataKey, ms / RECORDS, kms.calls.generateDataKey / tenants]);
    kms.restore();
  }
  console.table(
    rows.map(([setup, calls, msPerRecord]) => ({
      setup,
      'KMS calls': calls,
      'ms per record (2 encryptions)': msPerRecord.toFixed(3),
    })),
  );
  const cached = rows[1]?.[1] ?? Number.NaN;
  console.log(`target with cache: <= 10 per ${RECORDS} records -> ${cached <= 10 ? 'met' : 'MISSED'} (${cached})`);
}

function stats(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return { mean: samples.reduce((a, b) => a + b, 0) / samples.length, p50: at(0.5), p95: at(0.95) };
}

async function latency(): Promise<void> {
  const N = 300;
  console.log(`\n2. Latency per mutation on DynamoDB Local (${N} sequential creates each, after 50 warm-up)`);
  const dynamodb = await startDynamoDbLocal();
  try {
    const endpoint = dynamodb.endpoint;
    const documentClient = createDocumentClient({ ...LOCAL_AWS, endpoint });
    const tables = { main: 'bench-main', audit: 'bench-audit' };
    const admin = localClient(endpoint);
    await createTables(admin, tables);
    admin.destroy();
    const sealKey = new CountingSealKey(new LocalSealKey(randomBytes(32)));
    const store = new ClientStore({ documentClient, tableName: tables.main, sealKey });
    const unsealedStore = new ClientStore({ documentClient, tableName: tables.main, sealKey: new CountingSealKey('none') });
    const audit = new AuditLog({
      documentClient,
      tableName: tables.audit,
      cipher: createAuditCipher({ keyring: localKeyring(randomBytes(32)) }),
    });
    const service = new KeysmithService({ documentClient, store, audit });
    const actor = { type: 'system' as const, name: 'bench' };

    const newClient = (): ServiceClient => {
      const now = new Date().toISOString();
      return {
        clientId: newClientId(),
        tenantId: 'bench-plain',
        name: 'x',
        scopes: [],
        tags: {},
        enabled: true,
        createdAt: now,
        updatedAt: now,
        version: 1,
        auditSeq: 0,
      };
    };
    const write = (on: ClientStore) => async () => {
      const items = await on.writeState({ client: newClient(), keys: [], expectedVersion: undefined });
      await documentClient.send(new TransactWriteCommand({ TransactItems: items }));
    };
    const withoutAudit = write(unsealedStore);
    const sealedOnly = write(store);
    const withAudit = async () => {
      await service.createClient(actor, 'bench-audited', { name: 'x' });
    };
    const measure = async (fn: () => Promise<void>) => {
      for (let i = 0; i < 50; i++) await fn();
      const samples: number[] = [];
      for (let i = 0; i < N; i++) {
        const started = performance.now();
        await fn();
        samples.push(performance.now() - started);
      }
      return stats(samples);
    };
    // Interleave so drift on the machine affects all alike.
    const plain = await measure(withoutAudit);
    const sealed = await measure(sealedOnly);
    const audited = await measure(withAudit);
    const plainAgain = await measure(withoutAudit);
    const baseline = {
      mean: (plain.mean + plainAgain.mean) / 2,
      p50: (plain.p50 + plainAgain.p50) / 2,
      p95: (plain.p95 + plainAgain.p95) / 2,
    };
    const row = (s: { mean: number; p50: number; p95: number }) => ({
      'mean ms': s.mean.toFixed(2),
      'p50 ms': s.p50.toFixed(2),
      'p95 ms': s.p95.toFixed(2),
    });
    const minus = (a: typeof baseline, b: typeof baseline) => ({ mean: a.mean - b.mean, p50: a.p50 - b.p50, p95: a.p95 - b.p95 });
    console.table({
      'create client, unsealed, no audit (baseline)': row(baseline),
      'create client, sealed, no audit': row(sealed),
      'create client + seal + audit record (Keysmith)': row(audited),
      'added by the seal': row(minus(sealed, baseline)),
      'added by seal + audit trail': row(minus(audited, baseline)),
    });
    console.log(
      'The audited write also reads the chain head (one GetItem) and checks its seal; KMS is off the hot path (cached data key).',
    );

    console.log('\n3. Seal operations per change (each one KMS GenerateMac or VerifyMac in AWS; $0.03 per 10,000)');
    const counts: Record<string, { GenerateMac: number; VerifyMac: number }> = {};
    const counted = async (label: string, run: () => Promise<unknown>) => {
      sealKey.seals = 0;
      sealKey.verifies = 0;
      await run();
      counts[label] = { GenerateMac: sealKey.seals, VerifyMac: sealKey.verifies };
    };
    let clientId = '';
    let keyId = '';
    await counted('create client', async () => {
      clientId = (await service.createClient(actor, 'bench-count', { name: 'x' })).clientId;
    });
    await counted('create key', async () => {
      keyId = (await service.createKey(actor, 'bench-count', clientId, {})).key.keyId;
    });
    await counted('update client', () => service.updateClient(actor, 'bench-count', clientId, { name: 'y' }));
    await counted('revoke key', () => service.revokeKey(actor, 'bench-count', clientId, keyId));
    await counted('read a client and its keys (authorizer or JWKS cache miss)', () => store.getClientWithKeys(clientId));
    console.table(counts);
    documentClient.destroy();
  } finally {
    await dynamodb.stop();
  }
}

await kmsCalls();
await latency();
