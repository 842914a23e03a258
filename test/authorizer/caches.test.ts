/**
 * The authorizer's caches and their bounds, with a counting directory and a clock the test moves.
 * Signature verifications are counted by wrapping the token policy's verifySignature.
 */
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { Authorizer, type AuthorizerOptions } from '#shared/authorizer.ts';
import { loadConfig } from '#shared/config.ts';
import { randomBase62 } from '#shared/ids.ts';
import { verifySignature } from '#shared/token-policy.ts';
import { addKey, clientToken, firstKeyId, MemoryDirectory, makeClient, POLICY, type TestClient, TestClock } from './support.ts';

vi.mock(import('#shared/token-policy.ts'), async (original) => {
  const module = await original();
  return { ...module, verifySignature: vi.fn(module.verifySignature) };
});
const verifications = vi.mocked(verifySignature);

const REVOCATION_SECONDS = 60;
let clock: TestClock;
let client: TestClient;
let directory: MemoryDirectory;

const seconds = () => Math.floor(clock.ms / 1000);
const token = (c: TestClient = client, extra: Parameters<typeof clientToken>[1] = {}) =>
  clientToken(c, { nowSeconds: seconds(), claims: { jti: randomBase62(10) }, ...extra });
const build = (options: Partial<AuthorizerOptions> = {}) =>
  new Authorizer({ directory, policy: POLICY, revocationSeconds: REVOCATION_SECONDS, now: clock.now, ...options });

beforeEach(() => {
  clock = new TestClock();
  client = makeClient(['EdDSA']);
  directory = new MemoryDirectory(client);
  verifications.mockClear();
});

describe('the revocation bound', () => {
  it('defaults to 60 s and follows KEYSMITH_REVOCATION_SECONDS', () => {
    expect(loadConfig({}).revocationSeconds).toBe(60);
    expect(loadConfig({ KEYSMITH_REVOCATION_SECONDS: '2' }).revocationSeconds).toBe(2);
  });
});

describe('the client cache', () => {
  it('reads a client once per revocation window however many distinct tokens it sends', async () => {
    const authorizer = build();
    for (let i = 0; i < 200; i++) expect((await authorizer.authorize(token())).allow).toBe(true);
    expect(directory.reads).toBe(1);
    clock.advance(REVOCATION_SECONDS * 1000 - 1);
    expect((await authorizer.authorize(token())).allow).toBe(true);
    expect(directory.reads).toBe(1);
    clock.advance(1);
    expect((await authorizer.authorize(token())).allow).toBe(true);
    expect(directory.reads).toBe(2);
  });

  it('is LRU-bounded', async () => {
    const clients = [makeClient(), makeClient(), makeClient()];
    for (const c of clients) directory.put(c);
    const authorizer = build({ maxCachedClients: 2 });
    for (const c of clients) await authorizer.authorize(token(c));
    expect(authorizer.cacheSizes().clients).toBe(2);
    expect(directory.reads).toBe(3);
    await authorizer.authorize(token(clients[2]!)); // most recent: cached
    expect(directory.reads).toBe(3);
    await authorizer.authorize(token(clients[0]!)); // evicted: read again
    expect(directory.reads).toBe(4);
  });

  it('shares one read among concurrent misses for a client', async () => {
    let open!: () => void;
    directory.gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const authorizer = build();
    const pending = Array.from({ length: 50 }, () => authorizer.authorize(token()));
    open();
    const results = await Promise.all(pending);
    expect(results.every((r) => r.allow)).toBe(true);
    expect(directory.reads).toBe(1);
  });

  it('caches unknown clients negatively, in an LRU of their own that cannot evict known clients', async () => {
    const authorizer = build({ maxCachedClients: 10, maxUnknownClients: 5 });
    await authorizer.authorize(token());
    const ghost = makeClient();
    for (let i = 0; i < 100; i++)
      expect(await authorizer.authorize(token(ghost))).toEqual({ allow: false, reason: 'unknown_client' });
    expect(directory.readsByClient.get(ghost.clientId)).toBe(1);
    for (let i = 0; i < 50; i++) await authorizer.authorize(token(makeClient()));
    expect(authorizer.cacheSizes().unknownClients).toBe(5);
    await authorizer.authorize(token());
    expect(directory.readsByClient.get(client.clientId)).toBe(1);
    clock.advance(REVOCATION_SECONDS * 1000);
    await authorizer.authorize(token(ghost));
    expect(directory.readsByClient.get(ghost.clientId)).toBe(2);
  });

  it('re-reads a known client for unknown kids at most once per unknownKeyRefreshMs, so a new key works within it', async () => {
    const authorizer = build();
    await authorizer.authorize(token());
    expect(directory.reads).toBe(1);
    const forged = () => token(client, { header: { kid: randomBase62(12) } });
    for (let i = 0; i < 1000; i++) expect(await authorizer.authorize(forged())).toEqual({ allow: false, reason: 'unknown_key' });
    expect(directory.reads).toBe(1); // the client was read less than 1 s ago
    clock.advance(1000);
    for (let i = 0; i < 1000; i++) await authorizer.authorize(forged());
    expect(directory.reads).toBe(2);

    const newKey = addKey(client);
    directory.put(client);
    clock.advance(500);
    expect(await authorizer.authorize(token(client, { keyId: newKey }))).toEqual({ allow: false, reason: 'unknown_key' });
    clock.advance(500);
    expect((await authorizer.authorize(token(client, { keyId: newKey }))).allow).toBe(true);
    expect(directory.reads).toBe(3);
  });

  it('spends no read on tokens refused by their structure or claims', async () => {
    const authorizer = build();
    await authorizer.authorize(token(makeClient(), { claims: { exp: seconds() - 3600, iat: seconds() - 4000 } }));
    await authorizer.authorize(token(makeClient(), { claims: { aud: 'https://elsewhere.example' } }));
    await authorizer.authorize('x.y.z');
    expect(directory.reads).toBe(0);
  });
});

describe('the verified-token cache', () => {
  it('verifies a repeated token once', async () => {
    const authorizer = build();
    const t = token();
    for (let i = 0; i < 100; i++) expect((await authorizer.authorize(t)).allow).toBe(true);
    expect(verifications).toHaveBeenCalledTimes(1);
  });

  it('keeps a token until its exp plus the clock skew, and no longer', async () => {
    const authorizer = build({ revocationSeconds: 3600 });
    const t = token(client, { claims: { iat: seconds(), exp: seconds() + 30 } });
    expect((await authorizer.authorize(t)).allow).toBe(true);
    clock.ms = (seconds() + 30 + POLICY.clockSkewSeconds) * 1000 - 1;
    expect((await authorizer.authorize(t)).allow).toBe(true);
    expect(verifications).toHaveBeenCalledTimes(1);
    clock.advance(1);
    expect(await authorizer.authorize(t)).toEqual({ allow: false, reason: 'token_expired' });
  });

  it('keeps a token no longer than its key lives', async () => {
    const keyId = addKey(client, 'EdDSA', new Date(clock.ms + 10_000).toISOString());
    directory.put(client);
    const authorizer = build();
    const t = token(client, { keyId });
    expect((await authorizer.authorize(t)).allow).toBe(true);
    clock.advance(9_999);
    expect((await authorizer.authorize(t)).allow).toBe(true);
    clock.advance(1);
    expect(await authorizer.authorize(t)).toEqual({ allow: false, reason: 'key_expired' });
  });

  it('never outlives the revocation bound: a token cached before revocation is refused once the bound has passed', async () => {
    const authorizer = build();
    const t = token(client, { claims: { iat: seconds(), exp: seconds() + 3600 } });
    expect((await authorizer.authorize(t)).allow).toBe(true);
    clock.advance(1_000);
    client.record.keys[0]!.status = 'revoked';
    directory.put(client);
    clock.advance(REVOCATION_SECONDS * 1000 - 1_001);
    expect((await authorizer.authorize(t)).allow).toBe(true); // within the bound, from the cache
    clock.advance(1);
    expect(await authorizer.authorize(t)).toEqual({ allow: false, reason: 'key_revoked' });
  });

  it('drops cached tokens as soon as a newer state of their client is read', async () => {
    const authorizer = build();
    const t = token();
    expect((await authorizer.authorize(t)).allow).toBe(true);
    client.record.client.enabled = false;
    directory.put(client);
    clock.advance(1000);
    await authorizer.authorize(token(client, { header: { kid: randomBase62(12) } })); // unknown kid: re-read
    expect(directory.reads).toBe(2);
    expect(await authorizer.authorize(t)).toEqual({ allow: false, reason: 'client_disabled' });
  });

  it('is LRU-bounded and caches no refusals', async () => {
    const authorizer = build({ maxCachedTokens: 3 });
    for (let i = 0; i < 10; i++) await authorizer.authorize(token());
    expect(authorizer.cacheSizes().tokens).toBe(3);
    const forged = token(client, { header: { kid: firstKeyId(client) }, claims: { scope: 'nope' } });
    await authorizer.authorize(forged);
    await authorizer.authorize(forged);
    expect(authorizer.cacheSizes().tokens).toBe(3);
  });
});
