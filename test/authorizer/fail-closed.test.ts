import { randomBytes } from 'node:crypto';
/**
 * Fail closed: when DynamoDB throttles, times out or errs, the authorizer never allows. The handler throws (API
 * Gateway answers 5xx, not 401), logs a reason code, and no log line carries the token or key material.
 */
import { DynamoDBClient, InternalServerError, ProvisionedThroughputExceededException } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createAuthorizerHandler } from '#lambdas/authorizer/handler.ts';
import { Authorizer, type KeyDirectory } from '#shared/authorizer.ts';
import { logger } from '#shared/logger.ts';
import { LocalSealKey } from '#shared/seal.ts';
import { ClientStore } from '#shared/store.ts';
import {
  clientToken,
  firstKeyId,
  httpApiEvent,
  MemoryDirectory,
  makeClient,
  POLICY,
  requestEvent,
  type TestClient,
  TestClock,
  tokenEvent,
} from './support.ts';

let lines: string[];
let client: TestClient;

beforeEach(() => {
  lines = [];
  logger.setLogLevel('DEBUG');
  const capture = (chunk: unknown) => {
    lines.push(String(chunk));
    return true;
  };
  vi.spyOn(process.stdout, 'write').mockImplementation(capture);
  vi.spyOn(process.stderr, 'write').mockImplementation(capture);
  client = makeClient(['EdDSA', 'ES256']);
});

afterEach(() => {
  vi.restoreAllMocks();
  logger.setLogLevel('SILENT');
});

/** Every secret or token fragment that must never reach a log line. */
function secrets(token: string): string[] {
  const [header, payload, signature] = token.split('.') as [string, string, string];
  const out = [token, header, payload, signature];
  for (const pair of client.keys.values()) {
    out.push(pair.privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'));
    const jwk = pair.publicKey.export({ format: 'jwk' });
    if (jwk.x) out.push(jwk.x);
    if (jwk.y) out.push(jwk.y);
  }
  return out;
}

/** Runs a token through all three formats and asserts each fails closed with a 5xx-style error and a reason code. */
async function expectFailsClosed(authorizer: Authorizer, token: string, reason: string): Promise<void> {
  const handler = createAuthorizerHandler(authorizer);
  const header = `Bearer ${token}`;
  for (const event of [tokenEvent(header), requestEvent(header), httpApiEvent(header)]) {
    const outcome = await handler(event).then(
      (result) => ({ result }),
      (error: Error) => ({ error }),
    );
    expect('error' in outcome).toBe(true);
    if ('error' in outcome) expect(outcome.error.message).not.toBe('Unauthorized');
  }
  const logged = lines.join('');
  expect(logged).toContain(`"reason":"${reason}"`);
  for (const secret of secrets(token)) expect(logged).not.toContain(secret);
}

const sealKey = new LocalSealKey(randomBytes(32));

function storeOn(documentClient: DynamoDBDocumentClient): ClientStore {
  return new ClientStore({ documentClient, tableName: 'keysmith-fault-test', sealKey });
}

/** The client's items as Keysmith writes them (sealed), for a mocked Query to return. */
async function sealedItems(record: TestClient['record']): Promise<Record<string, unknown>[]> {
  const writes = await storeOn(DynamoDBDocumentClient.from(new DynamoDBClient({}))).writeState({
    client: record.client,
    keys: record.keys,
    expectedVersion: undefined,
  });
  return writes.map((write) => write.Put?.Item as Record<string, unknown>);
}

describe('DynamoDB faults (aws-sdk-client-mock on the document client given to ClientStore)', () => {
  const documentClient = DynamoDBDocumentClient.from(
    new DynamoDBClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' }, maxAttempts: 1 }),
  );
  const dynamodb = mockClient(documentClient);
  afterEach(() => dynamodb.reset());

  it('throttling: no allow, reason directory_throttled', async () => {
    dynamodb.on(QueryCommand).rejects(new ProvisionedThroughputExceededException({ message: 'Rate exceeded', $metadata: {} }));
    const authorizer = new Authorizer({ directory: storeOn(documentClient), policy: POLICY, revocationSeconds: 60 });
    await expectFailsClosed(authorizer, clientToken(client), 'directory_throttled');
    expect(dynamodb.commandCalls(QueryCommand).length).toBeGreaterThanOrEqual(1);
  });

  it('a request that never answers: no allow, reason directory_timeout', async () => {
    dynamodb.on(QueryCommand).callsFake(() => new Promise(() => undefined));
    const authorizer = new Authorizer({
      directory: storeOn(documentClient),
      policy: POLICY,
      revocationSeconds: 60,
      directoryTimeoutMs: 50,
    });
    await expectFailsClosed(authorizer, clientToken(client), 'directory_timeout');
  });

  it('an SDK timeout error: no allow, reason directory_timeout', async () => {
    dynamodb.on(QueryCommand).rejects(Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }));
    const authorizer = new Authorizer({ directory: storeOn(documentClient), policy: POLICY, revocationSeconds: 60 });
    await expectFailsClosed(authorizer, clientToken(client), 'directory_timeout');
  });

  it('a server error: no allow, reason directory_error', async () => {
    dynamodb.on(QueryCommand).rejects(new InternalServerError({ message: 'boom', $metadata: {} }));
    const authorizer = new Authorizer({ directory: storeOn(documentClient), policy: POLICY, revocationSeconds: 60 });
    await expectFailsClosed(authorizer, clientToken(client), 'directory_error');
  });

  it('an expired cache entry is not served while DynamoDB fails, and neither is a cached token', async () => {
    const clock = new TestClock();
    const token = clientToken(client, {
      nowSeconds: Math.floor(clock.ms / 1000),
      claims: { exp: Math.floor(clock.ms / 1000) + 3600 },
    });
    dynamodb.on(QueryCommand).resolves({ Items: await sealedItems(client.record) });
    const authorizer = new Authorizer({
      directory: storeOn(documentClient),
      policy: POLICY,
      revocationSeconds: 60,
      now: clock.now,
    });
    expect((await authorizer.authorize(token)).allow).toBe(true);
    dynamodb.reset();
    dynamodb.on(QueryCommand).rejects(new ProvisionedThroughputExceededException({ message: 'Rate exceeded', $metadata: {} }));
    clock.advance(60_000);
    await expectFailsClosed(authorizer, token, 'directory_throttled');
  });
});

describe('a faulty KeyDirectory', () => {
  it('throwing synchronously, rejecting with a non-Error, or returning a corrupt key: never an allow', async () => {
    const faulty: KeyDirectory[] = [
      {
        getClientWithKeys: () => {
          throw new Error(`leaky message with ${clientToken(client)}`);
        },
      },
      { getClientWithKeys: () => Promise.reject('a string') },
      {
        getClientWithKeys: async () => ({
          ...client.record,
          keys: client.record.keys.map((key) => ({ ...key, publicKey: { kty: 'OKP', crv: 'Ed25519', x: 'AAAA' } as const })),
        }),
      },
      {
        // An ES256 key stored as EdDSA: an inconsistent record is an error, not a key to verify with.
        getClientWithKeys: async () => ({
          ...client.record,
          keys: client.record.keys.map((key) => ({ ...key, algorithm: 'EdDSA' as const })),
        }),
      },
    ];
    for (const directory of faulty) {
      const authorizer = new Authorizer({ directory, policy: POLICY, revocationSeconds: 60 });
      await expectFailsClosed(authorizer, clientToken(client), 'directory_error');
      expect(lines.join('')).not.toContain('leaky message');
      lines.length = 0;
    }
  });

  it('recovers once the directory answers again (failures are not cached)', async () => {
    const directory = new MemoryDirectory(client);
    directory.failure = () => new Error('down');
    const authorizer = new Authorizer({ directory, policy: POLICY, revocationSeconds: 60 });
    const token = clientToken(client, { keyId: firstKeyId(client) });
    await expect(authorizer.authorize(token)).rejects.toMatchObject({ reason: 'directory_error' });
    directory.failure = undefined;
    expect((await authorizer.authorize(token)).allow).toBe(true);
  });
});

describe('denials are logged by reason code only', () => {
  it('logs the reason of a refused token and never the token', async () => {
    const handler = createAuthorizerHandler(
      new Authorizer({ directory: new MemoryDirectory(client), policy: POLICY, revocationSeconds: 60 }),
    );
    const token = clientToken(client, { claims: { aud: 'https://elsewhere.example' } });
    await expect(handler(tokenEvent(`Bearer ${token}`))).rejects.toThrow(/^Unauthorized$/);
    const logged = lines.join('');
    expect(logged).toContain('"reason":"invalid_audience"');
    for (const secret of secrets(token)) expect(logged).not.toContain(secret);
  });
});
