/**
 * The chain as `keysmith audit verify` checks it: records linked by the run's audit function (from the stream),
 * digests signed outside the table, and what a table writer's edits look like through them — with the audit key,
 * and with only the digests' public key (an auditor without kms:Decrypt).
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DeleteCommand, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import { AuditLinker, linkDigest } from '#shared/audit/chain.ts';
import { AuditAnchor } from '#shared/audit/digests.ts';
import { recordDigest } from '#shared/audit/log.ts';
import { loadConfig } from '#shared/config.ts';
import { createDocumentClient } from '#shared/dynamodb.ts';
import { newEventId } from '#shared/ids.ts';
import { LocalTokenSigner } from '#shared/token-signers.ts';
import { createAuditRecordCipher } from '#shared/wiring.ts';
import { newTenant } from '../support/app.ts';
import {
  auditRecords,
  clientsView,
  createOwnAuditTable,
  memoryAnchorQueue,
  SYSTEM,
  testAnchor,
  testAnchorQueue,
  testDigests,
  testService,
  testVerifier,
  waitLinked,
} from '../support/audit.ts';

const config = loadConfig();
const db = createDocumentClient();
const table = config.tables.audit;
const { service, store } = testService();
const verifier = testVerifier();
const auditor = testVerifier({ withoutKey: true });
const withoutDigests = testVerifier({ digests: undefined });
const headKey = (tenant: string) => ({ pk: `TENANT#${tenant}`, sk: 'HEAD' });

/** A tenant with `n` changes, linked by the audit function; its records in chain order. */
async function chain(n: number, tenant = newTenant()): Promise<{ tenant: string; items: Record<string, any>[] }> {
  for (let i = 0; i < n; i++) await service.createClient(SYSTEM, tenant, { name: `c${i}` });
  const items = await waitLinked(tenant);
  return { tenant, items };
}

/** A digest of the tenant's head now. */
async function anchor(tenant: string): Promise<void> {
  const outcome = await testAnchor().anchor(tenant);
  expect(outcome.written, JSON.stringify(outcome)).toBeDefined();
}

const remove = (item: Record<string, any>) => db.send(new DeleteCommand({ TableName: table, Key: { pk: item.pk, sk: item.sk } }));
const put = (item: Record<string, any>) => db.send(new PutCommand({ TableName: table, Item: item }));

describe('an untouched chain', () => {
  it('verifies with the audit key and with only the digests’ public key', async () => {
    const { tenant, items } = await chain(5);
    await anchor(tenant);
    expect(items.map((item) => item.seq)).toEqual([1, 2, 3, 4, 5]);
    const head = { seq: 5, digest: items[4]!.link, linkedAt: items[4]!.linkedAt };
    expect(await verifier.verify(tenant)).toMatchObject({
      ok: true,
      records: 5,
      pending: 0,
      firstSeq: 1,
      lastSeq: 5,
      head,
      anchor: { seq: 5 },
      digestsChecked: 1,
      unanchored: 0,
      contentChecked: true,
    });
    expect(await auditor.verify(tenant)).toMatchObject({ ok: true, records: 5, head, contentChecked: false });
  });

  it('each record names its predecessor’s link, and the links can be recomputed without a key', async () => {
    const { tenant, items } = await chain(3);
    let previous = 'genesis';
    for (const item of items) {
      expect(item.prevLink).toBe(previous);
      expect(item.link).toBe(
        linkDigest({
          tenantId: tenant,
          seq: item.seq,
          eventId: item.eventId,
          sk: item.sk,
          action: item.action,
          recordDigest: recordDigest(item.ciphertext),
          prevLink: previous,
        }),
      );
      previous = item.link;
    }
  });

  it('concurrent changes in one tenant all commit and are linked into one unbroken chain', async () => {
    const tenant = newTenant();
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => service.createClient(SYSTEM, tenant, { name: `c${i}` })),
    );
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    const items = await waitLinked(tenant, { records: 20 });
    expect(items.map((item) => item.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect(await verifier.verify(tenant)).toMatchObject({ ok: true, records: 20, lastSeq: 20 });
  });

  it('a record committed but not linked yet is pending within the bound, and reported once past it', async () => {
    const tenant = newTenant();
    const { item } = await testService().audit.prepare(tenant, {
      action: 'client.created',
      actor: SYSTEM,
      target: { clientId: 'sc_0000000000000000000000' },
      details: {},
    });
    // Written to a key the stream delivers: the audit function links it. Check before it does, as if it lagged.
    const record = item.Put!.Item as Record<string, unknown>;
    const late = testVerifier({ now: () => Date.parse(record.occurredAt as string) + 61_000 });
    const early = testVerifier({ now: () => Date.parse(record.occurredAt as string) });
    await db.send(new PutCommand({ TableName: table, Item: { ...record, sk: String(record.sk) } }));
    const report = await early.verify(tenant);
    expect(report.ok).toBe(true);
    expect(report.pending + report.records).toBe(1);
    await waitLinked(tenant);
    expect(await late.verify(tenant)).toMatchObject({ ok: true, records: 1, pending: 0 });
  });

  it('a change committed while verify walks the chain is not reported as tampering', async () => {
    const { tenant } = await chain(3);
    let raced = false;
    const racing = Object.create(db) as typeof db;
    racing.send = (async (command: any, ...rest: unknown[]) => {
      const out = await (db.send as (...args: unknown[]) => Promise<unknown>)(command, ...rest);
      if (!raced && command.input?.KeyConditionExpression?.includes('begins_with')) {
        raced = true;
        await service.createClient(SYSTEM, tenant, { name: 'racer' });
        await waitLinked(tenant); // linked before verify reads the head again
      }
      return out;
    }) as typeof db.send;
    const report = await testVerifier({ documentClient: racing }).verify(tenant);
    expect(raced).toBe(true);
    expect(report.ok, JSON.stringify(report.problem)).toBe(true);
    expect(report.head?.seq).toBe(4);
  });
});

describe('what a table writer can do, and what reports it', () => {
  it('an edited ciphertext no longer matches its link (with or without the key)', async () => {
    const { tenant, items } = await chain(5);
    const edited = Buffer.from(items[2]!.ciphertext);
    edited.writeUInt8(edited.readUInt8(edited.length - 40) ^ 1, edited.length - 40);
    await put({ ...items[2], ciphertext: edited });
    expect((await verifier.verify(tenant)).problem).toMatchObject({ kind: 'changed', seq: 3 });
    expect((await auditor.verify(tenant)).problem).toMatchObject({ kind: 'changed', seq: 3 });
  });

  it('an edited plaintext label (the action) no longer matches its link (with or without the key)', async () => {
    const { tenant, items } = await chain(3);
    await db.send(
      new UpdateCommand({
        TableName: table,
        Key: { pk: items[1]!.pk, sk: items[1]!.sk },
        UpdateExpression: 'SET #a = :a',
        ExpressionAttributeNames: { '#a': 'action' },
        ExpressionAttributeValues: { ':a': 'client.deleted' },
      }),
    );
    expect((await verifier.verify(tenant)).problem).toMatchObject({ kind: 'changed', seq: 2 });
    expect((await auditor.verify(tenant)).problem).toMatchObject({ kind: 'changed', seq: 2 });
  });

  it('a deleted record in the middle', async () => {
    const { tenant, items } = await chain(5);
    await remove(items[1]!);
    expect((await verifier.verify(tenant)).problem).toMatchObject({ kind: 'deleted', seq: 2 });
    expect((await auditor.verify(tenant)).problem).toMatchObject({ kind: 'deleted', seq: 2 });
  });

  it('swapped records', async () => {
    const { tenant, items } = await chain(4);
    const [a, b] = [items[1]!, items[2]!];
    await put({ ...a, ciphertext: b.ciphertext, eventId: b.eventId });
    await put({ ...b, ciphertext: a.ciphertext, eventId: a.eventId });
    expect((await auditor.verify(tenant)).problem).toMatchObject({ kind: 'changed', seq: 2 });
  });

  it('a record moved in from another tenant', async () => {
    const { tenant, items } = await chain(2);
    const other = await chain(2);
    await put({ ...items[1]!, ciphertext: other.items[1]!.ciphertext });
    expect((await verifier.verify(tenant)).problem).toMatchObject({ kind: 'changed', seq: 2 });
  });

  it('a record inserted by a table writer is never linked, and verify names it', async () => {
    const { tenant, items } = await chain(2);
    const occurredAt = new Date().toISOString();
    const eventId = newEventId();
    // A copy of a real record under a new key: authentic ciphertext, wrong place.
    const { seq: _s, prevLink: _p, link: _l, linkedAt: _t, ...unlinked } = items[0]!;
    await put({ ...unlinked, sk: `EVENT#${occurredAt}#${eventId}`, eventId, occurredAt });
    const stored = await waitLinked(tenant, { unlinked: 1 });
    expect(stored).toHaveLength(2);
    await new Promise((resolve) => setTimeout(resolve, 500)); // the audit function has seen and refused it
    expect((await auditRecords(tenant)).filter((item) => item.seq === undefined)).toHaveLength(1);
    expect((await verifier.verify(tenant)).problem).toMatchObject({ kind: 'inserted' });
    // Without the key: it stays unlinked, reported once past the link bound.
    const later = testVerifier({ withoutKey: true, now: () => Date.now() + 120_000 });
    expect((await later.verify(tenant)).problem).toMatchObject({ kind: 'unlinked' });
  });

  it('a record inserted mid-chain with every later link recomputed (no key needed) is caught by the digest, without the key', async () => {
    const { tenant, items } = await chain(4);
    await anchor(tenant);
    // Records 3 and 4 become 4 and 5 behind an inserted copy of record 1 at 3; every link recomputed; the head
    // moved to 5 (its seal cannot be forged, which only a holder of the key can check).
    const copyId = newEventId();
    const copy: Record<string, any> = { ...items[0]!, sk: `EVENT#${items[1]!.occurredAt}#${copyId}`, eventId: copyId };
    const rewritten = [items[0]!, items[1]!, copy, items[2]!, items[3]!];
    let prevLink = 'genesis';
    for (const [index, item] of rewritten.entries()) {
      const seq = index + 1;
      const link = linkDigest({
        tenantId: tenant,
        seq,
        eventId: item.eventId,
        sk: item.sk,
        action: item.action,
        recordDigest: recordDigest(item.ciphertext),
        prevLink,
      });
      await put({ ...item, seq, prevLink, link });
      prevLink = link;
    }
    await db.send(
      new UpdateCommand({
        TableName: table,
        Key: headKey(tenant),
        UpdateExpression: 'SET seq = :s, link = :l, eventId = :e',
        ExpressionAttributeValues: { ':s': 5, ':l': prevLink, ':e': items[3]!.eventId },
      }),
    );
    expect(
      (await testVerifier({ withoutKey: true, digests: undefined }).verify(tenant)).ok,
      'consistent without key or digest',
    ).toBe(true);
    expect((await auditor.verify(tenant)).problem).toMatchObject({ kind: 'rolled_back', seq: 4 });
    // With the key, the copy itself is out of place.
    expect((await verifier.verify(tenant)).problem).toMatchObject({ kind: 'changed', seq: 3 });
  });

  it('a cut tail with the head rewritten to the new last record: the digest reports it without the key', async () => {
    const { tenant, items } = await chain(5);
    await anchor(tenant);
    await remove(items[4]!);
    await remove(items[3]!);
    await db.send(
      new UpdateCommand({
        TableName: table,
        Key: headKey(tenant),
        UpdateExpression: 'SET seq = :s, link = :l, eventId = :e, linkedAt = :t',
        ExpressionAttributeValues: { ':s': 3, ':l': items[2]!.link, ':e': items[2]!.eventId, ':t': items[2]!.linkedAt },
      }),
    );
    expect((await testVerifier({ withoutKey: true, digests: undefined }).verify(tenant)).ok).toBe(true);
    expect((await auditor.verify(tenant)).problem).toMatchObject({ kind: 'rolled_back', seq: 3 });
    expect((await verifier.verify(tenant)).problem).toMatchObject({ kind: 'head_changed' });
  });

  it('a cut tail with the head left alone is a truncated chain', async () => {
    const { tenant, items } = await chain(4);
    await remove(items[3]!);
    expect((await verifier.verify(tenant)).problem).toMatchObject({ kind: 'truncated', seq: 4 });
  });

  it('a deleted partition: every record and the head gone, reported through the digest', async () => {
    const { tenant, items } = await chain(3);
    await anchor(tenant);
    for (const item of items) await remove(item);
    await db.send(new DeleteCommand({ TableName: table, Key: headKey(tenant) }));
    expect((await withoutDigests.verify(tenant)).ok, 'nothing left in the table to tell').toBe(true);
    expect((await auditor.verify(tenant)).problem).toMatchObject({ kind: 'deleted' });
    expect((await verifier.verify(tenant)).problem?.detail).toMatch(/its records were deleted/);
  });

  it('the partition restored from an earlier backup (sealed old head and all) is reported through the digests', async () => {
    const { tenant, items } = await chain(3);
    await anchor(tenant);
    const { Item: oldHead } = await db.send(new GetCommand({ TableName: table, Key: headKey(tenant) }));
    await chain(2, tenant);
    await anchor(tenant);
    const now = await waitLinked(tenant);
    // The backup: records 1-3 as they were, the head (authentically sealed) at 3.
    for (const item of now.slice(3)) await remove(item);
    await put(oldHead!);
    expect(await withoutDigests.verify(tenant), 'consistent inside the table, seal and all').toMatchObject({
      ok: true,
      records: 3,
    });
    expect((await verifier.verify(tenant)).problem).toMatchObject({ kind: 'rolled_back', seq: 3 });
    expect((await auditor.verify(tenant)).problem).toMatchObject({ kind: 'rolled_back' });
    // The anchor refuses to sign the rolled-back head.
    const refused: unknown[] = [];
    expect(await testAnchor((report) => refused.push(report)).anchor(tenant)).toMatchObject({ skipped: 'head_rolled_back' });
    expect(refused).toEqual([{ reason: 'audit_head_rolled_back', tenantId: tenant }]);
    // Later legitimate changes build a different 4, 5 and 6 on it: the digest at 5 still tells.
    await chain(3, tenant);
    expect((await verifier.verify(tenant)).problem).toMatchObject({ kind: 'rolled_back', seq: 5 });
    expect(items.map((item) => item.seq)).toEqual([1, 2, 3]);
  });

  it('a head kept elsewhere (--expect-head) catches a rollback even without digests', async () => {
    const { tenant } = await chain(3);
    const { Item: oldHead } = await db.send(new GetCommand({ TableName: table, Key: headKey(tenant) }));
    const later = await chain(2, tenant);
    const kept = (await withoutDigests.verify(tenant)).head!;
    for (const item of later.items.slice(3)) await remove(item);
    await put(oldHead!);
    expect((await withoutDigests.verify(tenant)).ok).toBe(true);
    expect((await withoutDigests.verify(tenant, { expectHead: kept })).problem).toMatchObject({ kind: 'rolled_back', seq: 5 });
  });

  it('a cut tail with the older head written back is caught by the clients’ seals, which name their last change', async () => {
    const tenant = newTenant();
    const first = await service.createClient(SYSTEM, tenant, { name: 'one' });
    await waitLinked(tenant, { records: 1 });
    const { Item: oldHead } = await db.send(new GetCommand({ TableName: table, Key: headKey(tenant) }));
    await service.createClient(SYSTEM, tenant, { name: 'two' });
    await service.updateClient(SYSTEM, tenant, first.clientId, { name: 'one again' });
    const items = await waitLinked(tenant, { records: 3 });
    expect(await withoutDigests.verify(tenant, { clients: await clientsView(store, tenant) })).toMatchObject({
      ok: true,
      clientsChecked: 2,
    });
    for (const item of items.slice(1)) await remove(item);
    await put(oldHead!);
    expect((await withoutDigests.verify(tenant)).ok, 'consistent inside the audit table alone').toBe(true);
    const report = await withoutDigests.verify(tenant, { clients: await clientsView(store, tenant) });
    expect(report.problem).toMatchObject({ kind: 'rolled_back' });
  });

  it('a head edited outside Keysmith blocks linking (nothing is chained onto a forgery) and is reported', async () => {
    const { tenant } = await chain(2);
    await db.send(
      new UpdateCommand({
        TableName: table,
        Key: headKey(tenant),
        UpdateExpression: 'SET linkedAt = :t',
        ExpressionAttributeValues: { ':t': '2099-01-01T00:00:00.000Z' },
      }),
    );
    // Changes still commit (the write path reads no head); their records wait, unlinked.
    await service.createClient(SYSTEM, tenant, { name: 'later' });
    await new Promise((resolve) => setTimeout(resolve, 500));
    const records = await auditRecords(tenant);
    expect(records.filter((item) => item.seq === undefined)).toHaveLength(1);
    expect((await verifier.verify(tenant)).problem).toMatchObject({ kind: 'head_changed' });
  });

  it('a deleted head with linked records left is not a fresh start', async () => {
    const { tenant } = await chain(2);
    await db.send(new DeleteCommand({ TableName: table, Key: headKey(tenant) }));
    await service.createClient(SYSTEM, tenant, { name: 'later' });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await auditRecords(tenant)).filter((item) => item.seq === undefined)).toHaveLength(1);
    expect((await verifier.verify(tenant)).problem).toMatchObject({ kind: 'head_missing' });
  });

  it('a digest removed or replaced breaks the chain of digests', async () => {
    const { tenant } = await chain(1);
    await anchor(tenant);
    await chain(1, tenant);
    await anchor(tenant);
    await chain(1, tenant);
    await anchor(tenant);
    const { store: digests } = testDigests();
    const [, middle] = await digests.list(tenant);
    rmSync(join(digests.location, middle!));
    expect((await auditor.verify(tenant)).problem).toMatchObject({ kind: 'digest_invalid' });
  });
});

describe('what a table writer does before the linker reads a record', () => {
  // An audit table of its own, linked by hand: the order "attacker writes, then the linker reads" is exact.
  const own = `keysmith-test-audit-race-${newEventId().slice(3, 11).toLowerCase()}`;
  const ownService = testService({ auditTable: own }).service;
  const ownVerifier = testVerifier({ tableName: own, digests: undefined });
  const reports: { reason: string; eventId?: string }[] = [];
  const linker = new AuditLinker({
    anchorQueue: memoryAnchorQueue(),
    documentClient: db,
    tableName: own,
    cipher: createAuditRecordCipher(config),
    events: { publish: async () => {} },
    onTamper: (report) => void reports.push(report),
  });
  beforeAll(() => createOwnAuditTable(own));
  const keysOf = async (tenant: string) =>
    (await auditRecords(tenant, own)).map((item) => ({ pk: item.pk as string, sk: item.sk as string }));

  it('a tenant that keeps changing is anchored by the linker itself once per interval, whatever the markers say', async () => {
    const tenant = newTenant();
    let clock = Date.now();
    const anchored: string[] = [];
    const inline = new AuditLinker({
      anchorQueue: memoryAnchorQueue(),
      documentClient: db,
      tableName: own,
      cipher: createAuditRecordCipher(config),
      events: { publish: async () => {} },
      onTamper: () => {},
      now: () => clock,
      anchorInline: { anchor: async (tenantId) => void anchored.push(tenantId), seconds: 300 },
    });
    const change = async () => {
      await ownService.createClient(SYSTEM, tenant, { name: 'c' });
      const fresh = (await auditRecords(tenant, own)).filter((item) => item.seq === undefined);
      await inline.link(fresh.map((item) => ({ pk: item.pk as string, sk: item.sk as string })));
    };
    await change(); // first seen: left to the schedule
    clock += 200_000;
    await change();
    expect(anchored).toEqual([]);
    clock += 101_000;
    await change(); // 301 s since first seen
    clock += 10_000;
    await change();
    expect(anchored).toEqual([tenant]);
  });

  it('a forged seq on a fresh record is reported, and the record linked in its true place', async () => {
    const tenant = newTenant();
    for (let i = 0; i < 3; i++) await ownService.createClient(SYSTEM, tenant, { name: `c${i}` });
    await linker.link(await keysOf(tenant));
    await ownService.createClient(SYSTEM, tenant, { name: 'fresh' });
    const fresh = (await auditRecords(tenant, own)).find((item) => item.seq === undefined)!;
    await db.send(
      new UpdateCommand({
        TableName: own,
        Key: { pk: fresh.pk, sk: fresh.sk },
        UpdateExpression: 'SET seq = :one',
        ExpressionAttributeValues: { ':one': 1 },
      }),
    );
    reports.length = 0;
    const outcome = await linker.link([{ pk: fresh.pk, sk: fresh.sk }]);
    expect(outcome).toMatchObject({ linked: 1, relinked: 0 });
    expect(outcome.events.map((event) => event.detail.seq)).toEqual([4]);
    expect(reports).toEqual([{ reason: 'audit_record_invalid', tenantId: tenant, eventId: fresh.eventId }]);
    expect(await ownVerifier.verify(tenant)).toMatchObject({ ok: true, records: 4 });
    // Deleting it now leaves a hole the head covers.
    await db.send(new DeleteCommand({ TableName: own, Key: { pk: fresh.pk, sk: fresh.sk } }));
    expect((await ownVerifier.verify(tenant)).problem).toMatchObject({ kind: 'truncated', seq: 4 });
  });

  it('a record deleted before it is linked leaves a gap entry that verify reports', async () => {
    const tenant = newTenant();
    for (let i = 0; i < 3; i++) await ownService.createClient(SYSTEM, tenant, { name: `c${i}` });
    const keys = await keysOf(tenant);
    await db.send(new DeleteCommand({ TableName: own, Key: keys[1]! }));
    reports.length = 0;
    expect(await linker.link(keys)).toMatchObject({ linked: 2, refused: 1 });
    expect(reports).toMatchObject([{ reason: 'audit_record_missing', tenantId: tenant }]);
    expect((await ownVerifier.verify(tenant)).problem).toMatchObject({ kind: 'deleted', seq: 2 });
    // A later delivery of the same batch links nothing again.
    expect(await linker.link(keys)).toMatchObject({ linked: 0, relinked: 2 });
  });

  it('a record padded past what DynamoDB can update is refused; the rest of the batch, other tenants too, is linked', async () => {
    const [tenant, other] = [newTenant(), newTenant()];
    await ownService.createClient(SYSTEM, tenant, { name: 'a' });
    await ownService.createClient(SYSTEM, other, { name: 'b' });
    const [victim] = await auditRecords(tenant, own);
    // As large as DynamoDB takes an item (400 KB): the largest padding it accepts, so linking it cannot fit.
    for (let size = 409_600; ; size -= 100) {
      try {
        await db.send(new PutCommand({ TableName: own, Item: { ...victim, padding: 'x'.repeat(size) } }));
        break;
      } catch (error) {
        if ((error as Error).name !== 'ValidationException' || size < 300_000) throw error;
      }
    }
    reports.length = 0;
    const outcome = await linker.link([...(await keysOf(tenant)), ...(await keysOf(other))]);
    expect(outcome).toMatchObject({ linked: 1, refused: 1 });
    expect(reports).toEqual([{ reason: 'audit_record_invalid', tenantId: tenant, eventId: victim!.eventId }]);
    expect(await ownVerifier.verify(other)).toMatchObject({ ok: true, records: 1 });
  });
});

describe('the anchor', () => {
  it('skips marks naming no well-formed tenant, and one tenant failing does not hold back the others', async () => {
    const { tenant: failing } = await chain(1);
    const { tenant: fine } = await chain(1);
    const queue = testAnchorQueue([failing, fine, 'junk-content']);
    writeFileSync(join(queue.location, 'Not.A.Tenant'), '1');
    writeFileSync(join(queue.location, 'junk-content'), 'garbage');
    const { store } = testDigests();
    const anchor = new AuditAnchor({
      documentClient: db,
      tableName: table,
      cipher: createAuditRecordCipher(config),
      signer: LocalTokenSigner.fromPem(readFileSync(inject('auditDigestKeyFile'), 'utf8')),
      store: {
        location: store.location,
        list: (tenantId, after) => store.list(tenantId, after),
        get: (key) => store.get(key),
        put: (key, body) => (key.includes(`/${failing}/`) ? Promise.reject(new Error('S3 is down')) : store.put(key, body)),
      },
      onTamper: () => {},
      queue,
    });
    const outcomes = await anchor.anchorPending();
    expect(outcomes.map((outcome) => outcome.tenantId)).not.toContain('Not.A.Tenant');
    expect(outcomes.map((outcome) => outcome.tenantId)).not.toContain('junk-content');
    expect(outcomes.find((outcome) => outcome.tenantId === failing)).toMatchObject({ failed: 'Error: S3 is down' });
    expect(outcomes.find((outcome) => outcome.tenantId === fine)?.written).toMatchObject({ seq: 1 });
    // The failed tenant stays marked: the next run anchors it. The anchored one is no longer marked.
    const taken = (await queue.take(10_000)).map((mark) => mark.tenantId);
    expect(taken).toContain(failing);
    expect(taken).not.toContain(fine);
    expect(
      (await testAnchor(undefined, [failing]).anchorPending()).find((outcome) => outcome.tenantId === failing)?.written,
    ).toMatchObject({
      seq: 1,
    });
    rmSync(join(queue.location, 'Not.A.Tenant'), { force: true });
  });

  it('accepts a tenant’s first digests written by anchors racing each other (the schedule, the linker, the CLI)', async () => {
    const { tenant } = await chain(3);
    const outcomes = await Promise.all([testAnchor().anchor(tenant), testAnchor().anchor(tenant), testAnchor().anchor(tenant)]);
    expect(outcomes.filter((outcome) => outcome.written).length).toBeGreaterThanOrEqual(1);
    expect(await testVerifier().verify(tenant)).toMatchObject({ ok: true, records: 3 });
    expect(await testVerifier({ withoutKey: true }).verify(tenant)).toMatchObject({ ok: true });
  });

  it('finds the tenants to anchor outside the audit table: deleting every item a table writer can see hides none', async () => {
    const { tenant } = await chain(2);
    // Nothing in the audit table says "anchor me": the mark is in the anchor queue, which a table writer cannot reach.
    const { Items = [] } = await db.send(
      new QueryCommand({ TableName: table, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': 'ANCHORS' } }),
    );
    expect(Items).toEqual([]);
    expect((await testAnchorQueue().take(10_000)).find((mark) => mark.tenantId === tenant)).toMatchObject({ seq: 2 });
    const outcomes = await testAnchor(undefined, [tenant]).anchorPending();
    expect(outcomes.find((outcome) => outcome.tenantId === tenant)?.written).toMatchObject({ seq: 2 });
    expect((await testAnchorQueue().take(10_000)).map((mark) => mark.tenantId)).not.toContain(tenant);
  });
});

describe('retention', () => {
  it('tells expired records from deleted ones by the digest that covered them', async () => {
    const { tenant, items } = await chain(2);
    await anchor(tenant);
    await chain(2, tenant);
    await anchor(tenant);
    await remove(items[0]!);
    await remove(items[1]!);
    const day = 86_400_000;
    const retained = (now: number) => testVerifier({ retentionDays: 30, now: () => now });
    expect((await retained(Date.now()).verify(tenant)).problem?.detail).toMatch(/deleted, not expired/);
    expect(await retained(Date.now() + 31 * day).verify(tenant)).toMatchObject({ ok: true, records: 2, firstSeq: 3 });
    // Without retention nothing may be missing.
    expect((await verifier.verify(tenant)).problem).toMatchObject({ kind: 'deleted', seq: 1 });
  });
});
