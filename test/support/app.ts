/**
 * The local server in-process against the run's DynamoDB Local, with a fresh platform admin, and small
 * helpers to call it. Every test uses its own random tenants, so files can run side by side. Every response
 * {@link TestApp.call} receives is checked against the OpenAPI document (./openapi.ts) before a test sees it.
 */
import type { KeyObject } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { afterAll, beforeAll } from 'vitest';
import { createLocalServer } from '#local/server.ts';
import { type MintOptions, mintToken } from '#sdk/token.ts';
import { bootstrapPlatformAdmin } from '#shared/bootstrap.ts';
import { loadConfig } from '#shared/config.ts';
import { randomBase62 } from '#shared/ids.ts';
import { createManagement } from '#shared/wiring.ts';
import { assertMatchesOpenApi } from './openapi.ts';

export const ISSUER_BASE = 'http://keysmith.test';
export const AUDIENCE = 'https://api.example.test';

/** A random tenantId, unique to this test. */
export const newTenant = (prefix = 't'): string => `${prefix}-${randomBase62(10).toLowerCase()}`;

export interface CallOptions {
  token?: string;
  body?: unknown;
  /** Sent as is (not JSON-encoded). */
  rawBody?: string;
  headers?: Record<string, string>;
}

export interface CallResult<T = any> {
  status: number;
  headers: Headers;
  body: T;
}

export interface TestApp {
  baseUrl: string;
  config: ReturnType<typeof loadConfig>;
  management: ReturnType<typeof createManagement>;
  /** The platform admin's access key and a token for it. */
  adminAccessKey: string;
  adminToken: string;
  call<T = any>(method: string, path: string, options?: CallOptions): Promise<CallResult<T>>;
  /** `fetch` of a path on the server, for code that takes a fetch (the SDK); its response is checked as call()'s is. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  token(accessKey: string, options?: Partial<MintOptions>): Promise<string>;
  /** Creates a client in `tenantId` (as the platform admin) and returns it. */
  createClient(tenantId: string, body?: Record<string, unknown>): Promise<any>;
  /** Creates a key and returns the 201 body (with accessKey). */
  createKey(tenantId: string, clientId: string, body?: Record<string, unknown>): Promise<any>;
  /** A client with a key and a token: an admin of `tenantId` when scopes hold keysmith:admin. */
  clientWithToken(
    tenantId: string,
    scopes?: string[],
  ): Promise<{ clientId: string; accessKey: string; keyId: string; token: string }>;
  close(): Promise<void>;
}

export async function startTestApp(): Promise<TestApp> {
  const config = loadConfig();
  const management = createManagement(config);
  const server = await createLocalServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const admin = await bootstrapPlatformAdmin(management.service, { tenantId: newTenant('platform') });

  const token = async (accessKey: string, options: Partial<MintOptions> = {}) =>
    (await mintToken(accessKey, { issuerBase: ISSUER_BASE, audience: AUDIENCE, ...options })).token;
  const adminToken = await token(admin.accessKey);

  /** The body as JSON (text when it is not JSON), once the response is found to match the OpenAPI document. */
  function checked(method: string, response: Response, text: string): any {
    // JSON is parsed; the console's page and assets are text.
    const json = /json/.test(response.headers.get('content-type') ?? 'application/json');
    const parsed = text ? (json ? JSON.parse(text) : text) : undefined;
    // The path as fetch sent it (`..` and `.` segments resolved), which is the one the server routed.
    const sent = new URL(response.url).pathname;
    assertMatchesOpenApi(method, sent, response.status, response.headers.get('content-type'), parsed, response.headers);
    return parsed;
  }

  async function call<T>(method: string, path: string, options: CallOptions = {}): Promise<CallResult<T>> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    let body: string | undefined = options.rawBody;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    const response = await fetch(`${baseUrl}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
    const parsed = checked(method, response, await response.text());
    return { status: response.status, headers: response.headers, body: parsed };
  }

  async function checkedFetch(path: string, init?: RequestInit): Promise<Response> {
    const response = await fetch(`${baseUrl}${path}`, init);
    checked(init?.method ?? 'GET', response, await response.clone().text());
    return response;
  }

  const app: TestApp = {
    baseUrl,
    config,
    management,
    adminAccessKey: admin.accessKey,
    adminToken,
    call,
    fetch: checkedFetch,
    token,
    async createClient(tenantId, body = {}) {
      const result = await call('POST', `/v1/tenants/${tenantId}/clients`, {
        token: adminToken,
        body: { name: 'test client', ...body },
      });
      if (result.status !== 201) throw new Error(`createClient: ${result.status} ${JSON.stringify(result.body)}`);
      return result.body;
    },
    async createKey(tenantId, clientId, body = {}) {
      const result = await call('POST', `/v1/tenants/${tenantId}/clients/${clientId}/access-keys`, { token: adminToken, body });
      if (result.status !== 201) throw new Error(`createKey: ${result.status} ${JSON.stringify(result.body)}`);
      return result.body;
    },
    async clientWithToken(tenantId, scopes = []) {
      const client = await app.createClient(tenantId, { scopes });
      const key = await app.createKey(tenantId, client.clientId);
      return { clientId: client.clientId, accessKey: key.accessKey, keyId: key.keyId, token: await token(key.accessKey) };
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return app;
}

/** Starts the test app before this file's tests and closes it after them; `use` receives it. */
export function useTestApp(use: (app: TestApp) => void): void {
  let started: TestApp | undefined;
  beforeAll(async () => {
    started = await startTestApp();
    use(started);
  });
  afterAll(() => started?.close());
}

/** Waits `seconds` (e.g. past a short revocation bound). */
export const waitSeconds = (seconds: number) => new Promise((resolve) => setTimeout(resolve, seconds * 1000));

/** A client token signed with a key the client registered itself (bring your own key), valid for 5 minutes. */
export function ownKeyToken(
  privateKey: KeyObject,
  algorithm: string,
  keyId: string,
  clientId: string,
  claims: Record<string, unknown> = {},
) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: algorithm, kid: keyId })
    .setIssuer(`${ISSUER_BASE}/v1/clients/${clientId}`)
    .setSubject(clientId)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(privateKey);
}
