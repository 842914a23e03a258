/**
 * The SDK verifier under a flood of tokens naming unknown clientIds, against an in-process stub of Keysmith's
 * discovery routes (one or a few real clients, 404 for every other clientId) and a fake clock: fetches stay
 * bounded by the shared token bucket, unknown clients are answered from their own bounded cache, real clients
 * keep their cache entries, and oversized documents are refused while they stream.
 */
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { ClientTokenVerifier, KeyDiscoveryError, TokenRejectedError } from '#sdk/verifier.ts';
import { newClientId, randomBase62 } from '#shared/ids.ts';

const ISSUER_BASE = 'http://keysmith.test';
const AUDIENCE = 'https://api.example.test';
const MAX_DOCUMENT_BYTES = 64 * 1024;
const issuerOf = (clientId: string) => `${ISSUER_BASE}/v1/clients/${clientId}`;
const discoveryUrl = (clientId: string) => `${issuerOf(clientId)}/.well-known/openid-configuration`;
const jwksUrl = (clientId: string) => `${discoveryUrl(clientId)}/jwks`;

/** A clock the test moves by hand, in ms. */
function fakeClock(start = 1_750_000_000_000) {
  let ms = start;
  return {
    now: () => ms,
    advance: (by: number) => {
      ms += by;
    },
  };
}

interface SigningKey {
  keyId: string;
  privateKey: CryptoKey;
  jwk: JWK;
}

async function newSigningKey(): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA');
  const keyId = randomBase62(12);
  return { keyId, privateKey, jwk: { ...(await exportJWK(publicKey)), kid: keyId, alg: 'EdDSA', use: 'sig' } };
}

interface StubClient {
  clientId: string;
  keys: SigningKey[];
  /** Overrides the discovery document's response (it is built from the client's issuer otherwise). */
  discovery?: () => Response;
  /** Overrides the JWKS response (it is built from `keys` otherwise). */
  jwks?: () => Response;
}

/** Keysmith's discovery routes in-process: the added clients' documents, 404 for every other clientId; records each URL. */
function stubKeysmith() {
  const clients = new Map<string, StubClient>();
  const requests: string[] = [];
  const route = /^http:\/\/keysmith\.test\/v1\/clients\/([^/]+)\/\.well-known\/openid-configuration(\/jwks)?$/;
  const fetchStub: typeof fetch = async (input) => {
    const url = input instanceof Request ? input.url : String(input);
    requests.push(url);
    const match = route.exec(url);
    const client = match ? clients.get(match[1] as string) : undefined;
    if (!match || !client) return Response.json({ error: 'not_found' }, { status: 404 });
    if (match[2]) return client.jwks ? client.jwks() : Response.json({ keys: client.keys.map((k) => k.jwk) });
    return client.discovery
      ? client.discovery()
      : Response.json({ issuer: issuerOf(client.clientId), jwks_uri: jwksUrl(client.clientId) });
  };
  const addClient = async (overrides: Partial<StubClient> = {}): Promise<StubClient> => {
    const client: StubClient = { clientId: newClientId(), keys: [await newSigningKey()], ...overrides };
    clients.set(client.clientId, client);
    return client;
  };
  return { fetch: fetchStub, requests, addClient };
}

/** A token of `clientId` signed with `key`, issued at the clock's time. */
function tokenFor(clientId: string, key: { keyId: string; privateKey: CryptoKey }, nowMs: number): Promise<string> {
  const iat = Math.floor(nowMs / 1000);
  return new SignJWT({ scope: 'invoices:read' })
    .setProtectedHeader({ alg: 'EdDSA', kid: key.keyId, typ: 'JWT' })
    .setIssuer(issuerOf(clientId))
    .setSubject(clientId)
    .setAudience(AUDIENCE)
    .setIssuedAt(iat)
    .setExpirationTime(iat + 300)
    .sign(key.privateKey);
}

/** Tokens for `count` distinct random clientIds that Keysmith does not know, all signed by one attacker key. */
async function floodTokens(count: number, nowMs: number): Promise<{ clientIds: string[]; tokens: string[] }> {
  const attacker = await newSigningKey();
  const clientIds = Array.from({ length: count }, () => newClientId());
  expect(new Set(clientIds).size).toBe(count);
  expect(clientIds.every((id) => /^sc_[0-9A-Za-z]{22}$/.test(id))).toBe(true);
  return { clientIds, tokens: await Promise.all(clientIds.map((id) => tokenFor(id, attacker, nowMs))) };
}

/** How a verification ended: the clientId it accepted, or the error it threw. */
const outcome = (verifier: ClientTokenVerifier, token: string): Promise<string | Error> =>
  verifier.verify(token).then(
    (verified) => verified.clientId,
    (error: unknown) => error as Error,
  );

const isRateLimited = (value: unknown) => value instanceof KeyDiscoveryError && /discovery rate limit/.test(value.message);
const isUnknownClient = (value: unknown) => value instanceof TokenRejectedError && value.reason === 'unknown_client';

describe('the SDK verifier under a flood of unknown clientIds', () => {
  it('keeps fetches within the token bucket, refuses every flood token, and keeps the real client cached', async () => {
    const clock = fakeClock();
    const keysmith = stubKeysmith();
    const real = await keysmith.addClient();
    const rate = 10;
    const verifier = new ClientTokenVerifier({
      issuerBase: ISSUER_BASE,
      audiences: AUDIENCE,
      maxCachedClients: 1, // a shared cache would lose the real client to the first unknown one
      maxDiscoveryFetchesPerSecond: rate,
      fetch: keysmith.fetch,
      now: clock.now,
    });
    const realToken = await tokenFor(real.clientId, real.keys[0] as SigningKey, clock.now());
    expect(await outcome(verifier, realToken)).toBe(real.clientId);
    expect(keysmith.requests).toEqual([discoveryUrl(real.clientId), jwksUrl(real.clientId)]);
    keysmith.requests.length = 0;

    const { clientIds, tokens } = await floodTokens(1000, clock.now());
    const start = clock.now();
    const outcomes: (string | Error)[] = [];
    // Ten waves of 100 concurrent tokens, 100 ms apart: 900 ms pass between the first wave and the last.
    for (let wave = 0; wave < 10; wave++) {
      if (wave > 0) clock.advance(100);
      outcomes.push(...(await Promise.all(tokens.slice(wave * 100, wave * 100 + 100).map((t) => outcome(verifier, t)))));
    }
    const elapsedSeconds = (clock.now() - start) / 1000;
    expect(elapsedSeconds).toBe(0.9);
    // The bucket holds `rate` fetches and gains `rate` a second: no more discoveries than that, ever.
    const bound = rate + Math.floor(rate * elapsedSeconds);
    expect(bound).toBe(19);
    expect(keysmith.requests.length).toBeGreaterThan(0);
    expect(keysmith.requests.length).toBeLessThanOrEqual(bound);
    // Each was one discovery (a 404 costs no JWKS request) of a distinct flood clientId.
    expect(new Set(keysmith.requests).size).toBe(keysmith.requests.length);
    const flooded = new Set(clientIds.map(discoveryUrl));
    expect(keysmith.requests.every((url) => flooded.has(url))).toBe(true);

    expect(outcomes).toHaveLength(1000);
    expect(outcomes.every((o) => isUnknownClient(o) || isRateLimited(o))).toBe(true);
    expect(outcomes.filter(isUnknownClient)).toHaveLength(keysmith.requests.length);
    expect(outcomes.filter(isRateLimited)).toHaveLength(1000 - keysmith.requests.length);

    keysmith.requests.length = 0;
    expect(await outcome(verifier, realToken)).toBe(real.clientId);
    expect(keysmith.requests).toEqual([]);
  });

  it('keeps unknown clients in their own bounded cache, so they never evict a real client', async () => {
    const clock = fakeClock();
    const keysmith = stubKeysmith();
    const real = await keysmith.addClient();
    const verifier = new ClientTokenVerifier({
      issuerBase: ISSUER_BASE,
      audiences: AUDIENCE,
      maxCachedClients: 1,
      maxUnknownClients: 50,
      maxDiscoveryFetchesPerSecond: 1_000_000, // every fetch allowed: only the caches are under test
      fetch: keysmith.fetch,
      now: clock.now,
    });
    const realToken = await tokenFor(real.clientId, real.keys[0] as SigningKey, clock.now());
    expect(await outcome(verifier, realToken)).toBe(real.clientId);

    const { clientIds, tokens } = await floodTokens(200, clock.now());
    keysmith.requests.length = 0;
    for (const token of tokens) expect(isUnknownClient(await outcome(verifier, token))).toBe(true);
    expect(keysmith.requests).toHaveLength(200);

    keysmith.requests.length = 0;
    expect(await outcome(verifier, realToken)).toBe(real.clientId);
    expect(keysmith.requests).toEqual([]);

    // The last 50 unknown clients are remembered; the first was dropped from the 50-entry cache.
    expect(isUnknownClient(await outcome(verifier, tokens[199] as string))).toBe(true);
    expect(keysmith.requests).toEqual([]);
    expect(isUnknownClient(await outcome(verifier, tokens[0] as string))).toBe(true);
    expect(keysmith.requests).toEqual([discoveryUrl(clientIds[0] as string)]);
  });

  it('answers a negative-cached clientId from its cache: 100 tokens cost one fetch until cacheSeconds pass', async () => {
    const clock = fakeClock();
    const keysmith = stubKeysmith();
    const verifier = new ClientTokenVerifier({
      issuerBase: ISSUER_BASE,
      audiences: AUDIENCE,
      cacheSeconds: 60,
      unknownKeyRefreshSeconds: 5,
      fetch: keysmith.fetch,
      now: clock.now,
    });
    const {
      clientIds: [ghost],
      tokens: [token],
    } = await floodTokens(1, clock.now());
    // 100 tokens over 9.9 s: well past unknownKeyRefreshSeconds, within cacheSeconds.
    for (let i = 0; i < 100; i++) {
      if (i > 0) clock.advance(100);
      expect(isUnknownClient(await outcome(verifier, token as string))).toBe(true);
    }
    const concurrent = await Promise.all(Array.from({ length: 100 }, () => outcome(verifier, token as string)));
    expect(concurrent.every(isUnknownClient)).toBe(true);
    expect(keysmith.requests).toEqual([discoveryUrl(ghost as string)]);

    clock.advance(60_000 - 9_900); // the entry expires: one new fetch
    expect(isUnknownClient(await outcome(verifier, token as string))).toBe(true);
    expect(keysmith.requests).toHaveLength(2);
  });

  it('fetches a new real client again once the bucket refills', async () => {
    const clock = fakeClock();
    const keysmith = stubKeysmith();
    const verifier = new ClientTokenVerifier({
      issuerBase: ISSUER_BASE,
      audiences: AUDIENCE,
      maxDiscoveryFetchesPerSecond: 10,
      fetch: keysmith.fetch,
      now: clock.now,
    });
    const { tokens } = await floodTokens(11, clock.now());
    const outcomes = [];
    for (const token of tokens) outcomes.push(await outcome(verifier, token));
    expect(outcomes.slice(0, 10).every(isUnknownClient)).toBe(true);
    expect(isRateLimited(outcomes[10])).toBe(true);
    expect((outcomes[10] as Error).message).toBe('discovery rate limit reached for unknown clients; retry shortly');
    expect(keysmith.requests).toHaveLength(10);

    const fresh = await keysmith.addClient();
    const freshToken = await tokenFor(fresh.clientId, fresh.keys[0] as SigningKey, clock.now());
    keysmith.requests.length = 0;
    expect(isRateLimited(await outcome(verifier, freshToken))).toBe(true);
    expect(keysmith.requests).toEqual([]);

    clock.advance(1000);
    expect(await outcome(verifier, freshToken)).toBe(fresh.clientId);
    expect(keysmith.requests).toEqual([discoveryUrl(fresh.clientId), jwksUrl(fresh.clientId)]);
  });

  it("does not rate-limit a known client's refreshes (expired cache, unknown kid) while the bucket is empty", async () => {
    const clock = fakeClock();
    const keysmith = stubKeysmith();
    const real = await keysmith.addClient();
    const verifier = new ClientTokenVerifier({
      issuerBase: ISSUER_BASE,
      audiences: AUDIENCE,
      cacheSeconds: 60,
      unknownKeyRefreshSeconds: 5,
      maxDiscoveryFetchesPerSecond: 10,
      fetch: keysmith.fetch,
      now: clock.now,
    });
    expect(await outcome(verifier, await tokenFor(real.clientId, real.keys[0] as SigningKey, clock.now()))).toBe(real.clientId);
    const emptyBucket = async () => {
      const { tokens } = await floodTokens(11, clock.now());
      const last = await Promise.all(tokens.map((t) => outcome(verifier, t)));
      expect(last.some(isRateLimited)).toBe(true);
      keysmith.requests.length = 0;
    };

    clock.advance(61_000); // past cacheSeconds
    await emptyBucket();
    expect(await outcome(verifier, await tokenFor(real.clientId, real.keys[0] as SigningKey, clock.now()))).toBe(real.clientId);
    expect(keysmith.requests).toEqual([discoveryUrl(real.clientId), jwksUrl(real.clientId)]);

    const rotated = await newSigningKey();
    real.keys.push(rotated);
    clock.advance(6_000); // past unknownKeyRefreshSeconds
    await emptyBucket();
    expect(await outcome(verifier, await tokenFor(real.clientId, rotated, clock.now()))).toBe(real.clientId);
    expect(keysmith.requests).toEqual([discoveryUrl(real.clientId), jwksUrl(real.clientId)]);
  });
});

/** A body of `head`, then spaces up to `total` bytes, then `tail`, produced 16 KiB a pull; counts what was pulled. */
function paddedStream(head: string, tail: string, total: number) {
  const chunkSize = 16 * 1024;
  const encoder = new TextEncoder();
  const stats = { pulled: 0, cancelled: false };
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (stats.pulled >= total) {
          controller.close();
          return;
        }
        let chunk = new Uint8Array(Math.min(chunkSize, total - stats.pulled)).fill(0x20);
        if (stats.pulled === 0) chunk.set(encoder.encode(head));
        if (stats.pulled + chunk.byteLength >= total) {
          const end = encoder.encode(tail);
          chunk = new Uint8Array([...chunk.subarray(0, chunk.byteLength - end.byteLength), ...end]);
        }
        stats.pulled += chunk.byteLength;
        controller.enqueue(chunk);
      },
      cancel() {
        stats.cancelled = true;
      },
    },
    { highWaterMark: 0 }, // nothing is pulled before the verifier reads
  );
  return { stream, stats };
}

describe('the SDK verifier refuses oversized documents while they stream', () => {
  const TEN_MIB = 10 * 1024 * 1024;

  /** A client whose discovery document or JWKS is `respond`'s; the other document is served honestly. */
  async function clientServing(document: 'discovery' | 'JWKS', respond: (head: string, tail: string) => Response) {
    const clock = fakeClock();
    const keysmith = stubKeysmith();
    const client = await keysmith.addClient();
    const head =
      document === 'discovery'
        ? JSON.stringify({ issuer: issuerOf(client.clientId), jwks_uri: jwksUrl(client.clientId) }).slice(0, -1)
        : JSON.stringify({ keys: client.keys.map((k) => k.jwk) }).slice(0, -1);
    if (document === 'discovery') client.discovery = () => respond(head, '}');
    else client.jwks = () => respond(head, '}');
    const verifier = new ClientTokenVerifier({
      issuerBase: ISSUER_BASE,
      audiences: AUDIENCE,
      fetch: keysmith.fetch,
      now: clock.now,
    });
    const token = await tokenFor(client.clientId, client.keys[0] as SigningKey, clock.now());
    return { verifier, token, client };
  }

  it.each(['discovery', 'JWKS'] as const)('accepts a %s document streamed in small chunks under the limit', async (document) => {
    let stats = { pulled: 0, cancelled: false };
    const { verifier, token, client } = await clientServing(document, (head, tail) => {
      const padded = paddedStream(head, tail, MAX_DOCUMENT_BYTES); // exactly the limit
      stats = padded.stats;
      return new Response(padded.stream, { headers: { 'content-type': 'application/json' } });
    });
    expect(await outcome(verifier, token)).toBe(client.clientId);
    expect(stats).toEqual({ pulled: MAX_DOCUMENT_BYTES, cancelled: false });
  });

  it.each(['discovery', 'JWKS'] as const)('cancels a 10 MiB %s stream soon after 64 KiB', async (document) => {
    let stats = { pulled: 0, cancelled: false };
    const { verifier, token } = await clientServing(document, (head, tail) => {
      const padded = paddedStream(head, tail, TEN_MIB);
      stats = padded.stats;
      return new Response(padded.stream, { headers: { 'content-type': 'application/json' } });
    });
    const error = await outcome(verifier, token);
    expect(error).toBeInstanceOf(KeyDiscoveryError);
    expect((error as Error).message).toMatch(/larger than 65536 bytes/);
    expect(stats.cancelled).toBe(true);
    expect(stats.pulled).toBeGreaterThan(MAX_DOCUMENT_BYTES);
    expect(stats.pulled).toBeLessThanOrEqual(MAX_DOCUMENT_BYTES + 16 * 1024);
  });

  it.each(['discovery', 'JWKS'] as const)(
    'refuses a %s whose content-length is over the limit without reading it',
    async (document) => {
      let stats = { pulled: 0, cancelled: false };
      const { verifier, token } = await clientServing(document, (head, tail) => {
        const padded = paddedStream(head, tail, TEN_MIB);
        stats = padded.stats;
        return new Response(padded.stream, {
          headers: { 'content-type': 'application/json', 'content-length': String(TEN_MIB) },
        });
      });
      const error = await outcome(verifier, token);
      expect(error).toBeInstanceOf(KeyDiscoveryError);
      expect((error as Error).message).toMatch(/larger than 65536 bytes/);
      expect(stats).toEqual({ pulled: 0, cancelled: true });
    },
  );
});
