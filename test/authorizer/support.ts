/**
 * Keys, hand-made tokens and an in-memory, counting key directory for the authorizer's tests. Tokens are signed
 * here with node:crypto so a test can put anything in the header, the claims or the signature.
 */
import { createHmac, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import type {
  APIGatewayRequestAuthorizerEvent,
  APIGatewayRequestAuthorizerEventV2,
  APIGatewayTokenAuthorizerEvent,
} from 'aws-lambda';
import { toPublicJwk } from '#shared/access-key.ts';
import type { KeyDirectory } from '#shared/authorizer.ts';
import { newEventId, randomBase62 } from '#shared/ids.ts';
import type { AccessKey, Algorithm, ClientWithKeys } from '#shared/model.ts';
import { issuerOf, type TokenPolicy } from '#shared/token-policy.ts';

export const ISSUER_BASE = 'http://keysmith.test';
export const AUDIENCE = 'https://api.example.test';
export const POLICY: TokenPolicy = {
  issuerBase: ISSUER_BASE,
  audiences: [ISSUER_BASE, AUDIENCE],
  maxTokenLifetimeSeconds: 86_400,
  clockSkewSeconds: 60,
};
export const METHOD_ARN = 'arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/v1/invoices/42';
export const STAGE_WILDCARD = 'arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/*';

export const b64url = (value: string | Buffer): string => Buffer.from(value).toString('base64url');
export const encodeJson = (value: unknown): string => b64url(JSON.stringify(value));

export interface TestKeyPair {
  algorithm: Algorithm;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export function generateTestKey(algorithm: Algorithm): TestKeyPair {
  const pair =
    algorithm === 'EdDSA'
      ? generateKeyPairSync('ed25519')
      : algorithm === 'ES256'
        ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { algorithm, ...pair };
}

/** A JWS signature over `input`, for a JWS `alg` (HS256 takes a byte secret). */
export function signInput(alg: string, input: string, key: KeyObject | Buffer): Buffer {
  if (alg === 'HS256')
    return createHmac('sha256', key as Buffer)
      .update(input)
      .digest();
  if (alg === 'EdDSA') return sign(null, Buffer.from(input), key as KeyObject);
  if (alg === 'ES256') return sign('sha256', Buffer.from(input), { key: key as KeyObject, dsaEncoding: 'ieee-p1363' });
  return sign('sha256', Buffer.from(input), key as KeyObject);
}

/** A compact JWS of exactly this header and payload. */
export function signJws(
  header: Record<string, unknown>,
  payload: unknown,
  key: KeyObject | Buffer,
  alg = header.alg as string,
): string {
  const input = `${encodeJson(header)}.${encodeJson(payload)}`;
  return `${input}.${b64url(signInput(alg, input, key))}`;
}

/** A service client with keys, as the directory returns it, plus the private keys. */
export interface TestClient {
  clientId: string;
  tenantId: string;
  scopes: string[];
  keys: Map<string, TestKeyPair>;
  record: ClientWithKeys;
}

export function makeClient(
  algorithms: Algorithm[] = ['EdDSA'],
  scopes: string[] = ['invoices:read', 'invoices:write'],
): TestClient {
  const clientId = `sc_${randomBase62(22)}`;
  const tenantId = `t-${randomBase62(8).toLowerCase()}`;
  const keys = new Map<string, TestKeyPair>();
  const accessKeys: AccessKey[] = [];
  for (const algorithm of algorithms) {
    const keyId = randomBase62(12);
    const pair = generateTestKey(algorithm);
    keys.set(keyId, pair);
    accessKeys.push({
      keyId,
      clientId,
      tenantId,
      algorithm,
      publicKey: toPublicJwk(pair.publicKey),
      origin: 'generated',
      status: 'active',
      createdAt: new Date().toISOString(),
      sealedVersion: 1,
    });
  }
  const now = new Date().toISOString();
  return {
    clientId,
    tenantId,
    scopes,
    keys,
    record: {
      client: {
        clientId,
        tenantId,
        name: 'test',
        scopes,
        tags: {},
        enabled: true,
        createdAt: now,
        updatedAt: now,
        version: 1,
        auditEventId: newEventId(),
      },
      keys: accessKeys,
    },
  };
}

/** Adds a fresh key to a client and returns its keyId. */
export function addKey(client: TestClient, algorithm: Algorithm = 'EdDSA', expiresAt?: string): string {
  const keyId = randomBase62(12);
  const pair = generateTestKey(algorithm);
  client.keys.set(keyId, pair);
  client.record.keys.push({
    keyId,
    clientId: client.clientId,
    tenantId: client.tenantId,
    algorithm,
    publicKey: toPublicJwk(pair.publicKey),
    origin: 'generated',
    status: 'active',
    createdAt: new Date().toISOString(),
    ...(expiresAt ? { expiresAt } : {}),
    sealedVersion: client.record.client.version,
  });
  return keyId;
}

export const firstKeyId = (client: TestClient): string => [...client.keys.keys()][0]!;

export interface TokenOptions {
  keyId?: string;
  header?: Record<string, unknown>;
  claims?: Record<string, unknown>;
  /** Claims to remove from the defaults. */
  omit?: string[];
  nowSeconds?: number;
}

/** A valid token of `client` (its first key unless `keyId`), with header and claims overridable. */
export function clientToken(client: TestClient, options: TokenOptions = {}): string {
  const keyId = options.keyId ?? firstKeyId(client);
  const pair = client.keys.get(keyId)!;
  const now = options.nowSeconds ?? Math.floor(Date.now() / 1000);
  const header = { alg: pair.algorithm, kid: keyId, typ: 'JWT', ...options.header };
  const payload: Record<string, unknown> = {
    iss: issuerOf(ISSUER_BASE, client.clientId),
    sub: client.clientId,
    aud: AUDIENCE,
    iat: now,
    exp: now + 300,
    ...options.claims,
  };
  for (const name of options.omit ?? []) delete payload[name];
  return signJws(header, payload, pair.privateKey);
}

/** An in-memory directory that counts reads and can be made to fail or to wait. */
export class MemoryDirectory implements KeyDirectory {
  reads = 0;
  readonly readsByClient = new Map<string, number>();
  private readonly clients = new Map<string, ClientWithKeys>();
  /** When set, every read fails with it. */
  failure: (() => Error) | undefined;
  /** When set, reads wait for it. */
  gate: Promise<void> | undefined;

  constructor(...clients: TestClient[]) {
    for (const client of clients) this.put(client);
  }

  put(client: TestClient): void {
    this.clients.set(client.clientId, client.record);
  }

  remove(clientId: string): void {
    this.clients.delete(clientId);
  }

  async getClientWithKeys(clientId: string): Promise<ClientWithKeys | undefined> {
    this.reads += 1;
    this.readsByClient.set(clientId, (this.readsByClient.get(clientId) ?? 0) + 1);
    if (this.gate) await this.gate;
    if (this.failure) throw this.failure();
    const found = this.clients.get(clientId);
    return found ? structuredClone(found) : undefined;
  }
}

/** A clock the test moves. */
export class TestClock {
  constructor(public ms = Date.now()) {}
  readonly now = (): number => this.ms;
  advance(ms: number): void {
    this.ms += ms;
  }
}

export const tokenEvent = (authorizationToken: string): APIGatewayTokenAuthorizerEvent => ({
  type: 'TOKEN',
  authorizationToken,
  methodArn: METHOD_ARN,
});

export const requestEvent = (authorization: string | undefined): APIGatewayRequestAuthorizerEvent =>
  ({
    type: 'REQUEST',
    methodArn: METHOD_ARN,
    resource: '/v1/invoices/{id}',
    path: '/v1/invoices/42',
    httpMethod: 'GET',
    headers:
      authorization === undefined ? { Host: 'api.example.test' } : { Host: 'api.example.test', Authorization: authorization },
    multiValueHeaders: {},
    pathParameters: { id: '42' },
    queryStringParameters: null,
    multiValueQueryStringParameters: null,
    stageVariables: null,
    requestContext: {} as APIGatewayRequestAuthorizerEvent['requestContext'],
  }) as APIGatewayRequestAuthorizerEvent;

export const httpApiEvent = (authorization: string | undefined): APIGatewayRequestAuthorizerEventV2 =>
  ({
    version: '2.0',
    type: 'REQUEST',
    routeArn: 'arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/$default/GET/v1/invoices/42',
    identitySource: authorization === undefined ? [] : [authorization],
    routeKey: 'GET /v1/invoices/{id}',
    rawPath: '/v1/invoices/42',
    rawQueryString: '',
    cookies: [],
    headers: authorization === undefined ? { host: 'api.example.test' } : { host: 'api.example.test', authorization },
    queryStringParameters: {},
    requestContext: {} as APIGatewayRequestAuthorizerEventV2['requestContext'],
    pathParameters: { id: '42' },
    stageVariables: {},
  }) as APIGatewayRequestAuthorizerEventV2;
