/**
 * The audit function end to end on DynamoDB Local's stream: change events (contract §12) for every audited action,
 * in order, with no sensitive field; and a linker stopped mid-stream and started again links nothing twice and
 * skips nothing (own table, own poller, as `npm start` runs it).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type AuditFunctionEvent, auditHandler } from '#lambdas/audit/run.ts';
import { type AuditPipeline, startAuditPipeline } from '#local/audit-pipeline.ts';
import { LOCAL_AWS, localClient } from '#local/dynamodb-local.ts';
import type { ChangeEvent } from '#shared/audit/events.ts';
import { createAuditPipeline } from '#shared/audit/wiring.ts';
import { loadConfig } from '#shared/config.ts';
import { createDocumentClient } from '#shared/dynamodb.ts';
import { randomBase62 } from '#shared/ids.ts';
import { newTenant, type TestApp, useTestApp } from '../support/app.ts';
import { auditRecords, createOwnAuditTable, SYSTEM, testService, testVerifier, waitLinked } from '../support/audit.ts';

const ALLOWED_DETAIL = ['clientId', 'eventId', 'keyId', 'occurredAt', 'seq', 'tenantId'];
const readEvents = (file: string): ChangeEvent[] =>
  readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as ChangeEvent);

let app: TestApp;
useTestApp((started) => {
  app = started;
});

describe('change events (contract §12)', () => {
  it('every audited action, in order per tenant, with identifiers only', async () => {
    const tenant = newTenant();
    const marker = `needle-${randomBase62(8)}`;
    const base = `/v1/tenants/${tenant}/clients`;
    const client = await app.createClient(tenant, {
      name: `${marker}-name`,
      description: `${marker}-description`,
      scopes: [`${marker}:read`],
      tags: { owner: marker },
    });
    await app.call('PATCH', `${base}/${client.clientId}`, { token: app.adminToken, body: { name: `${marker}-renamed` } });
    const key = await app.createKey(tenant, client.clientId);
    await app.call('DELETE', `${base}/${client.clientId}/access-keys/${key.keyId}`, { token: app.adminToken });
    await app.call('DELETE', `${base}/${client.clientId}`, { token: app.adminToken });
    const records = await waitLinked(tenant, { records: 5 });
    // Events are published once their records are linked: wait for the fifth.
    for (let tries = 0; tries < 200; tries++) {
      const published = new Set(
        readEvents(inject('eventsFile'))
          .filter((e) => e.detail.tenantId === tenant)
          .map((e) => e.detail.eventId),
      );
      if (published.size >= 5) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    const text = readFileSync(inject('eventsFile'), 'utf8');
    const mine = readEvents(inject('eventsFile')).filter((event) => event.detail.tenantId === tenant);
    // At least once: a batch delivered again repeats its events, never with another seq.
    const first = new Map<string, ChangeEvent>();
    for (const event of mine) {
      const seen = first.get(event.detail.eventId);
      if (seen) expect(seen).toEqual(event);
      else first.set(event.detail.eventId, event);
    }
    const events = [...first.values()];
    expect(events.map((event) => event['detail-type'])).toEqual([
      'client.created',
      'client.updated',
      'access_key.created',
      'access_key.revoked',
      'client.deleted',
    ]);
    expect(events.map((event) => event.detail.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(events.map((event) => event.detail.eventId)).toEqual(records.map((record) => record.eventId));
    for (const event of events) {
      expect(Object.keys(event).sort()).toEqual(['detail', 'detail-type', 'source']);
      expect(event.source).toBe('keysmith');
      expect(Object.keys(event.detail).every((field) => ALLOWED_DETAIL.includes(field))).toBe(true);
      expect(event.detail.clientId).toBe(client.clientId);
      expect(event.detail.occurredAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    }
    expect(events[2]?.detail.keyId).toBe(key.keyId);
    expect(events[0]?.detail.keyId).toBeUndefined();
    // No names, descriptions, scopes, tags or key material, in the whole file.
    expect(text).not.toContain(marker);
    expect(text).not.toContain(key.accessKey.split('.')[3]);
    expect(text).not.toContain(key.publicKey.x);
  });
});

describe('a linker stopped mid-stream and started again', () => {
  const table = `keysmith-test-audit-restart-${randomBase62(6).toLowerCase()}`;
  const dir = mkdtempSync(join(tmpdir(), 'keysmith-restart-'));
  const eventsFile = join(dir, 'events.jsonl');
  const checkpointFile = join(dir, 'audit-stream.json');
  const endpoint = inject('dynamodbEndpoint');
  const dynamodb = localClient(endpoint);
  const config = loadConfig({
    ...process.env,
    KEYSMITH_AUDIT_TABLE: table,
    KEYSMITH_LOCAL_EVENTS_FILE: eventsFile,
  });
  beforeAll(() => createOwnAuditTable(table));
  afterAll(() => {
    dynamodb.destroy();
    rmSync(dir, { recursive: true, force: true });
  });

  /** The audit function on the own table; `crash` decides, per batch, to fail after linking (before the checkpoint). */
  function start(crash: (batch: number) => boolean, documentClient = createDocumentClient()): Promise<AuditPipeline> {
    const handler = auditHandler(createAuditPipeline(config, { documentClient, onTamper: () => {} }), {
      addMetric() {},
      publishStoredMetrics() {},
    } as never);
    let batch = 0;
    return startAuditPipeline({
      endpoint,
      dynamodb,
      auditTable: table,
      pollMs: 20,
      anchorMs: 24 * 3600_000,
      checkpointFile,
      handler: async (event: AuditFunctionEvent) => {
        const result = await handler(event);
        if ('Records' in event && crash(++batch)) throw new Error('killed after linking, before the checkpoint');
        return result;
      },
    });
  }

  it('links every record once, in one unbroken chain per tenant, and publishes each event with one seq', async () => {
    const { service } = testService({ auditTable: table });
    const tenants = [newTenant(), newTenant(), newTenant()];
    const perTenant = 30;
    const commit = () =>
      Promise.all(
        tenants.map(async (tenant) => {
          for (let i = 0; i < perTenant / 3; i++) await service.createClient(SYSTEM, tenant, { name: `c${i}` });
        }),
      );
    const linkedCount = async () =>
      (await Promise.all(tenants.map((tenant) => waitLinked(tenant, { tableName: table, unlinked: perTenant })))).flat().length;
    // A first third, linked and checkpointed; a second third, linked by a linker that dies before its checkpoint
    // (and stays dead: every later batch fails too, as a killed process would not go on).
    await commit();
    let crashed = false;
    const first = await start((batch) => {
      if (batch < 2) return false;
      crashed = true;
      return true;
    });
    for (const tenant of tenants) await waitLinked(tenant, { records: perTenant / 3, tableName: table });
    await commit();
    const deadline = Date.now() + 20_000;
    while (!crashed && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    await first.stop();
    expect(crashed).toBe(true);
    expect(await linkedCount()).toBeGreaterThan(tenants.length * (perTenant / 3));
    // The last third while no linker runs; then a new one from the saved checkpoint.
    await commit();
    const second = await start(() => false);
    try {
      for (const tenant of tenants) await waitLinked(tenant, { records: perTenant, tableName: table });
      await second.drained();
    } finally {
      await second.stop();
    }

    const events = readEvents(eventsFile);
    const verifier = testVerifier({ tableName: table, digests: undefined });
    for (const tenant of tenants) {
      const linked = await waitLinked(tenant, { records: perTenant, tableName: table });
      expect(linked.map((record) => record.seq)).toEqual(Array.from({ length: perTenant }, (_, i) => i + 1));
      expect(await verifier.verify(tenant)).toMatchObject({ ok: true, records: perTenant, pending: 0 });
      const mine = events.filter((event) => event.detail.tenantId === tenant);
      const seqOf = new Map<string, number>();
      for (const event of mine) {
        const seen = seqOf.get(event.detail.eventId);
        expect(seen === undefined || seen === event.detail.seq, 'one seq per event, however often it is published').toBe(true);
        seqOf.set(event.detail.eventId, event.detail.seq);
      }
      expect(seqOf.size).toBe(perTenant);
      // In order: each first publication of an event comes after the one before it in the chain.
      const firstSeen = [...new Set(mine.map((event) => event.detail.eventId))].map((id) => seqOf.get(id));
      expect(firstSeen).toEqual(Array.from({ length: perTenant }, (_, i) => i + 1));
    }
    // The batch that died after linking was delivered again: its events repeat (at least once), nothing else does.
    expect(events.length).toBeGreaterThan(tenants.length * perTenant);
  });

  it('a transaction failing part-way through a batch links the rest on the next delivery, nothing twice', async () => {
    const tenant = newTenant();
    const { service } = testService({ auditTable: table });
    // Over 98 records of one tenant: the linker writes them in two transactions.
    await Promise.all(
      Array.from({ length: 10 }, async (_, worker) => {
        for (let i = 0; i < 11; i++) await service.createClient(SYSTEM, tenant, { name: `w${worker}-${i}` });
      }),
    );
    expect(await waitLinked(tenant, { tableName: table, records: 110, unlinked: 110 })).toEqual([]);
    let transactions = 0;
    const faulty = createDocumentClient({ ...LOCAL_AWS, endpoint });
    const send = faulty.send.bind(faulty);
    (faulty as { send: unknown }).send = (command: unknown, ...rest: unknown[]) => {
      if (command instanceof TransactWriteCommand && ++transactions === 2)
        return Promise.reject(Object.assign(new Error('network gone'), { name: 'TimeoutError' }));
      return (send as (...args: unknown[]) => Promise<unknown>)(command, ...rest);
    };
    const { linker } = createAuditPipeline(config, { documentClient: faulty, onTamper: () => {} });
    const keys = await recordKeys(tenant);
    await expect(linker.link(keys)).rejects.toThrow('network gone');
    const half = await waitLinked(tenant, { tableName: table, unlinked: 110 - 98 });
    expect(half.map((record) => record.seq)).toEqual(Array.from({ length: 98 }, (_, i) => i + 1));
    const again = await linker.link(keys);
    expect(again).toMatchObject({ linked: 12, relinked: 98, refused: 0 });
    const all = await waitLinked(tenant, { tableName: table });
    expect(all.map((record) => record.seq)).toEqual(Array.from({ length: 110 }, (_, i) => i + 1));
    expect(await testVerifier({ tableName: table, digests: undefined }).verify(tenant)).toMatchObject({ ok: true, records: 110 });
  });

  /** The tenant's record keys in commit order (as the stream would deliver them: by time, then id). */
  async function recordKeys(tenant: string) {
    return (await auditRecords(tenant, table)).map((item) => ({ pk: item.pk as string, sk: item.sk as string }));
  }
});
