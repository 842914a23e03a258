/**
 * Recording when keys were last used (contract §11) from a warm authorizer: at most one write per key per window, off
 * the request path, on DynamoDB Local's usage table; never a delay or a denial because of it.
 */
import { GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { Authorizer } from '#shared/authorizer.ts';
import { loadConfig } from '#shared/config.ts';
import { createDocumentClient } from '#shared/dynamodb.ts';
import { randomBase62 } from '#shared/ids.ts';
import { keys, usageAttribute } from '#shared/tables.ts';
import { UsageReader, UsageRecorder } from '#shared/usage.ts';
import { addKey, clientToken, firstKeyId, MemoryDirectory, makeClient, POLICY, type TestClient, TestClock } from './support.ts';

const config = loadConfig();
const table = config.tables.usage;
const db = createDocumentClient();
afterAll(() => db.destroy());

/** The document client the recorder writes through, counting UpdateItems and able to fail or hang them. */
class CountingClient {
  updates = 0;
  failWith: string | undefined;
  hang = false;
  send(command: unknown) {
    if (command instanceof UpdateCommand) {
      this.updates++;
      if (this.hang) return new Promise(() => {});
      if (this.failWith) return Promise.reject(Object.assign(new Error('injected'), { name: this.failWith }));
    }
    return db.send(command as UpdateCommand);
  }
}

let clock: TestClock;
let client: TestClient;
let counting: CountingClient;
let failures: { errorName: string; clientId: string; keyId: string }[];
let recorder: UsageRecorder;
let authorizer: Authorizer;

const WINDOW_SECONDS = 300;
const token = (options: Parameters<typeof clientToken>[1] = {}) =>
  clientToken(client, { nowSeconds: Math.floor(clock.ms / 1000), claims: { jti: randomBase62(10) }, ...options });
const stored = async (clientId = client.clientId) =>
  (await db.send(new GetCommand({ TableName: table, Key: keys.usage(clientId), ConsistentRead: true }))).Item;

beforeEach(() => {
  clock = new TestClock();
  client = makeClient(['EdDSA']);
  counting = new CountingClient();
  failures = [];
  recorder = new UsageRecorder({
    documentClient: counting as never,
    tableName: table,
    windowSeconds: WINDOW_SECONDS,
    now: clock.now,
    onFailure: (failure) => failures.push(failure),
  });
  authorizer = new Authorizer({
    directory: new MemoryDirectory(client),
    policy: POLICY,
    revocationSeconds: 60,
    now: clock.now,
    onKeyUsed: (clientId, keyId) => recorder.record(clientId, keyId),
  });
});

describe('last used, from a warm authorizer', () => {
  it('writes one update per key per window, however many authorizations (cached tokens too), and moves forward after', async () => {
    const first = clock.ms;
    const repeated = token();
    for (let i = 0; i < 10_000; i++) {
      const result = await authorizer.authorize(i % 2 === 0 ? repeated : token());
      expect(result.allow).toBe(true);
      if (i % 1000 === 0) clock.advance(1000);
    }
    await recorder.flush();
    expect(counting.updates).toBe(1);
    const keyId = firstKeyId(client);
    expect((await stored())?.[usageAttribute(keyId)]).toBe(new Date(first).toISOString());

    clock.advance(WINDOW_SECONDS * 1000);
    expect((await authorizer.authorize(token())).allow).toBe(true);
    await recorder.flush();
    expect(counting.updates).toBe(2);
    expect((await stored())?.[usageAttribute(keyId)]).toBe(new Date(clock.ms).toISOString());
    const usage = await new UsageReader(db, table, clock.now).forClient(client.clientId);
    expect(usage.lastUsedAt).toBe(new Date(clock.ms).toISOString());
    expect(usage.keys.get(keyId)).toBe(usage.lastUsedAt);
  });

  it('counts each key on its own, and a client’s lastUsedAt is the latest of its keys’', async () => {
    const second = addKey(client);
    const directory = new MemoryDirectory(client);
    authorizer = new Authorizer({
      directory,
      policy: POLICY,
      revocationSeconds: 60,
      now: clock.now,
      onKeyUsed: (clientId, keyId) => recorder.record(clientId, keyId),
    });
    expect((await authorizer.authorize(token())).allow).toBe(true);
    clock.advance(5000);
    expect((await authorizer.authorize(token({ keyId: second }))).allow).toBe(true);
    await recorder.flush();
    expect(counting.updates).toBe(2);
    const usage = await new UsageReader(db, table, clock.now).forClient(client.clientId);
    expect(usage.keys.get(second)).toBe(new Date(clock.ms).toISOString());
    expect(usage.keys.get(firstKeyId(client))).toBe(new Date(clock.ms - 5000).toISOString());
    expect(usage.lastUsedAt).toBe(new Date(clock.ms).toISOString());
  });

  it('records nothing for a refused token', async () => {
    const denied = [
      token({ claims: { aud: 'https://elsewhere.example' } }),
      token({ claims: { exp: Math.floor(clock.ms / 1000) - 3600 } }),
      `${token().slice(0, -4)}AAAA`,
      token({ header: { kid: 'unknownKey01' } }),
    ];
    for (const t of denied) expect((await authorizer.authorize(t)).allow).toBe(false);
    await recorder.flush();
    expect(counting.updates).toBe(0);
    expect(await stored()).toBeUndefined();
  });

  it('still allows when the write fails: the failure is reported by name, and retried in 10 s, not on every use', async () => {
    counting.failWith = 'ProvisionedThroughputExceededException';
    for (let i = 0; i < 100; i++) expect((await authorizer.authorize(token())).allow).toBe(true);
    await recorder.flush();
    expect(counting.updates).toBe(1);
    expect(failures).toEqual([
      { errorName: 'ProvisionedThroughputExceededException', clientId: client.clientId, keyId: firstKeyId(client) },
    ]);
    clock.advance(10_000);
    counting.failWith = undefined;
    expect((await authorizer.authorize(token())).allow).toBe(true);
    await recorder.flush();
    expect(counting.updates).toBe(2);
    expect((await stored())?.[usageAttribute(firstKeyId(client))]).toBe(new Date(clock.ms).toISOString());
    expect(failures).toHaveLength(1);
  });

  it('never waits for the write: a write that never answers does not delay an authorization', async () => {
    counting.hang = true;
    const started = performance.now();
    for (let i = 0; i < 20; i++) expect((await authorizer.authorize(token())).allow).toBe(true);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(counting.updates).toBe(1);
  });

  it('never moves a time back: a write from a container behind another is refused by its condition, silently', async () => {
    const keyId = firstKeyId(client);
    const ahead = new UsageRecorder({ documentClient: db, tableName: table, windowSeconds: 1, now: () => clock.ms + 60_000 });
    ahead.record(client.clientId, keyId);
    await ahead.flush();
    recorder.record(client.clientId, keyId);
    await recorder.flush();
    expect(failures).toEqual([]);
    expect((await stored())?.[usageAttribute(keyId)]).toBe(new Date(clock.ms + 60_000).toISOString());
  });

  it('replaces what is not a plausible time, so junk written around Keysmith cannot freeze a key’s last use', async () => {
    const keyId = firstKeyId(client);
    for (const poison of ['9999-12-31T23:59:59.999Z', 'zzzz', 42]) {
      await db.send(
        new UpdateCommand({
          TableName: table,
          Key: keys.usage(client.clientId),
          UpdateExpression: 'SET #a = :a',
          ExpressionAttributeNames: { '#a': usageAttribute(keyId) },
          ExpressionAttributeValues: { ':a': poison },
        }),
      );
      clock.advance(WINDOW_SECONDS * 1000);
      expect((await authorizer.authorize(token())).allow).toBe(true);
      await recorder.flush();
      expect((await stored())?.[usageAttribute(keyId)], String(poison)).toBe(new Date(clock.ms).toISOString());
    }
    expect(failures).toEqual([]);
  });

  it('reads only times: junk and future values an attacker wrote to the usage table are ignored', async () => {
    const keyId = firstKeyId(client);
    await db.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.usage(client.clientId),
        UpdateExpression: 'SET #a = :a, #b = :b, #c = :c, #d = :d',
        ExpressionAttributeNames: { '#a': usageAttribute(keyId), '#b': 'key_../../x', '#c': 'key_abcdefgh12', '#d': 'other' },
        ExpressionAttributeValues: { ':a': '9999-12-31T00:00:00.000Z', ':b': new Date().toISOString(), ':c': 42, ':d': 'x' },
      }),
    );
    const usage = await new UsageReader(db, table).forClient(client.clientId);
    expect(usage).toEqual({ keys: new Map(), lastUsedAt: undefined });
  });
});
