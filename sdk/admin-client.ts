/**
 * The HTTP client of the management API (contract §5) under {@link KeysmithAdmin}: typed calls, problem+json errors,
 * timeouts, no redirects, tokens scrubbed from every error. It takes its tokens from any {@link TokenSource}, and it
 * imports nothing of Node's, so the console runs the same client in the browser with tokens signed by WebCrypto.
 */
import type {
  AccessKey as AccessKeyView,
  AuditEvent,
  AuditEventQuery,
  ClientChanges,
  ClientIdentity,
  CreateClientInput,
  CreatedAccessKey,
  CreateKeyInput,
  Health,
  Jwks,
  OpenIdConfiguration,
  Page,
  PageOptions,
  RollKeyInput,
  ServiceClient,
  WhoAmI,
} from './admin-types.ts';
import { KeysmithApiError, KeysmithConnectionError, type ProblemFieldError } from './errors.ts';

/** Where the API is, and how to call it. */
export interface KeysmithAdminConnection {
  /** The deployment's API URL, e.g. `https://keys.example.com`; a path prefix (an API Gateway stage) is kept. */
  baseUrl: string;
  /** The fetch to call the API with. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** How long one request may take, body included, in ms. @default 30000 */
  timeoutMs?: number;
  /**
   * Allow a plain `http:` baseUrl on a host other than loopback (`localhost`, `127.0.0.0/8`, `::1`). Off, because
   * every call carries an admin's token, which anyone on the path could then replay until it expires.
   * @default false
   */
  allowInsecureHttp?: boolean;
}

/**
 * Where {@link AdminClient} gets the `Authorization` header of each call: a {@link TokenProvider} in Node, a WebCrypto
 * signer in the console. After a 401 the client calls `invalidate`, so the next call gets a fresh token.
 */
export interface TokenSource {
  /** The client, key and tenant whose tokens these are (no secret in it). */
  readonly identity: ClientIdentity;
  authorizationHeader(): Promise<string>;
  invalidate(): void;
}

/** The default of {@link KeysmithAdminConnection.timeoutMs}. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** The most of one answer that is read; a longer one is an `invalid_response` (a page of 100 items is far less). */
export const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/** A loopback host, where plain http never crosses a network. */
export const isLoopbackHost = (hostname: string): boolean =>
  hostname === 'localhost' || hostname === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);

interface Call {
  query?: Record<string, string | undefined>;
  body?: unknown;
  /** Whether the route needs a client token. @default true */
  auth?: boolean;
  /** What a success answer carries. @default 'json' */
  expect?: 'json' | 'empty';
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const text = (value: unknown): string | undefined => (typeof value === 'string' && value.length > 0 ? value : undefined);

/**
 * One path segment, encoded. `.` and `..` are refused: a URL parser resolves them (even encoded), so
 * `revokeKey(t, c, '..')` would otherwise become `DELETE` of the client itself.
 */
function segment(value: string, name: string): string {
  if (typeof value !== 'string' || value === '' || value === '.' || value === '..')
    throw new TypeError(`${name} must be a non-empty string other than "." and ".."`);
  return encodeURIComponent(value);
}

/** A time parameter as the API takes it: a `Date` as ISO 8601 UTC, a string as given. */
function instant(value: Date | string | undefined, name: string): string | undefined {
  if (!(value instanceof Date)) return value;
  if (Number.isNaN(value.getTime())) throw new RangeError(`${name} is an invalid Date`);
  return value.toISOString();
}

const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];
const CREATE_KEY_MEMBERS: ReadonlySet<string> = new Set(['algorithm', 'expiresAt', 'publicKey']);
const ROLL_KEY_MEMBERS: ReadonlySet<string> = new Set([...CREATE_KEY_MEMBERS, 'gracePeriodSeconds']);

/**
 * The body of a new key. A private key must never leave the caller, not even to be refused by the API: the body is
 * built from the known members only, and the JWK is checked as it would be sent (JSON), not as the object it is.
 */
function keyBody(method: string, input: CreateKeyInput, members: ReadonlySet<string>): Record<string, unknown> {
  if (!isObject(input as unknown)) throw new TypeError('input must be an object');
  const unknown = Object.keys(input).filter((member) => !members.has(member));
  if (unknown.length > 0)
    throw new TypeError(`${method} takes ${[...members].join(', ')} only; refused before sending: ${unknown.join(', ')}`);
  const { algorithm, expiresAt, publicKey } = input;
  const jwk: unknown = publicKey === undefined ? undefined : JSON.parse(JSON.stringify(publicKey) ?? 'null');
  if (publicKey !== undefined && !isObject(jwk)) throw new TypeError('publicKey must be a public JWK object');
  if (isObject(jwk) && PRIVATE_JWK_MEMBERS.some((member) => member in jwk))
    throw new TypeError('publicKey holds private key material: export and send the public key only');
  return {
    ...(algorithm !== undefined ? { algorithm } : {}),
    ...(expiresAt !== undefined ? { expiresAt: instant(expiresAt, 'expiresAt') } : {}),
    ...(jwk !== undefined ? { publicKey: jwk } : {}),
  };
}

const pageQuery = ({ limit, cursor }: PageOptions = {}) => ({
  limit: limit === undefined ? undefined : String(limit),
  cursor,
});

/**
 * Yields every item of every page, following `nextCursor` from `cursor` on. A cursor seen before (a server that goes
 * round in a circle) stops it with an `invalid_response`, rather than looping for ever.
 */
async function* follow<T>(list: (cursor: string | undefined) => Promise<Page<T>>, cursor: string | undefined) {
  const seen = new Set<string>();
  do {
    if (cursor !== undefined) seen.add(cursor);
    const page = await list(cursor);
    yield* page.items;
    if (page.nextCursor !== undefined && seen.has(page.nextCursor))
      throw invalidResponse(200, 'The API returned a cursor it had returned before; stopped following it.');
    cursor = page.nextCursor;
  } while (cursor);
}

/**
 * The calls of {@link KeysmithAdmin}, with tokens from a {@link TokenSource}. Use {@link KeysmithAdmin} in Node (it
 * takes an access key); this class is for a token source of your own, such as the console's WebCrypto signer.
 */
export class AdminClient {
  /** The API URL, without a trailing slash. */
  readonly baseUrl: string;
  /** The client, key and tenant whose tokens this sends (no secret in it). */
  readonly identity: ClientIdentity;
  readonly #tokens: TokenSource;
  readonly #fetch: typeof fetch;
  readonly #timeoutMs: number;

  /**
   * Throws a `TypeError` or `RangeError` for an unusable connection. `tokens` may be a function making the source,
   * called once the connection is found usable (so a bad `baseUrl` is reported before anything else).
   */
  constructor(options: KeysmithAdminConnection, tokens: TokenSource | (() => TokenSource)) {
    const { baseUrl, fetch: baseFetch, timeoutMs = DEFAULT_TIMEOUT_MS } = options;
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch {
      throw new TypeError('baseUrl must be an absolute http(s) URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new TypeError('baseUrl must be an http(s) URL');
    if (url.search || url.hash) throw new TypeError('baseUrl must not have a query or fragment');
    // Credentials in the URL would be repeated by every error that names it (and fetch refuses them anyway).
    if (url.username || url.password) throw new TypeError('baseUrl must not hold a user name or password');
    if (url.protocol === 'http:' && !isLoopbackHost(url.hostname) && options.allowInsecureHttp !== true)
      throw new TypeError(
        'baseUrl is plain http on a host other than loopback: use https (admin tokens would cross the network in clear), or set allowInsecureHttp',
      );
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new RangeError('timeoutMs must be a positive number');
    this.#timeoutMs = timeoutMs;
    this.#fetch = baseFetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#tokens = typeof tokens === 'function' ? tokens() : tokens;
    this.identity = this.#tokens.identity;
  }

  /** `GET /v1/health`: whether the API is up (no token sent). */
  async health(): Promise<Health> {
    return this.#call('GET', '/v1/health', { auth: false });
  }

  /** `GET /v1/whoami`: the authorizer's view of this client (works with any client's access key, admin or not). */
  async whoami(): Promise<WhoAmI> {
    return this.#call('GET', '/v1/whoami');
  }

  /** `POST /v1/tenants/{tenantId}/clients`: creates a service client (without keys: see {@link createKey}). */
  async createClient(tenantId: string, input: CreateClientInput): Promise<ServiceClient> {
    return this.#call('POST', this.#clientsPath(tenantId), { body: input });
  }

  /** `GET /v1/tenants/{tenantId}/clients`: one page of the tenant's clients. */
  async listClients(tenantId: string, page?: PageOptions): Promise<Page<ServiceClient>> {
    return this.#list(this.#clientsPath(tenantId), pageQuery(page));
  }

  /** Every client of the tenant, page after page (`limit` is the page size, `cursor` where to start). */
  iterateClients(tenantId: string, page: PageOptions = {}): AsyncGenerator<ServiceClient, void, undefined> {
    return follow((cursor) => this.listClients(tenantId, { ...page, cursor }), page.cursor);
  }

  /** `GET /v1/tenants/{tenantId}/clients/{clientId}`: a client (404 `client_not_found` also for another tenant's). */
  async getClient(tenantId: string, clientId: string): Promise<ServiceClient> {
    return this.#call('GET', this.#clientPath(tenantId, clientId));
  }

  /** `PATCH .../clients/{clientId}`: changes a client; `scopes` and `tags` replace the whole list or map. */
  async updateClient(tenantId: string, clientId: string, changes: ClientChanges): Promise<ServiceClient> {
    return this.#call('PATCH', this.#clientPath(tenantId, clientId), { body: changes });
  }

  /** `DELETE .../clients/{clientId}`: deletes a client and revokes all its keys. */
  async deleteClient(tenantId: string, clientId: string): Promise<void> {
    await this.#call('DELETE', this.#clientPath(tenantId, clientId), { expect: 'empty' });
  }

  /**
   * `POST .../clients/{clientId}/access-keys`: generates a key (the answer's `accessKey` is shown only this once), or
   * registers `input.publicKey`. At most 5 active keys per client (409 `key_limit_reached`).
   */
  async createKey(tenantId: string, clientId: string, input: CreateKeyInput = {}): Promise<CreatedAccessKey> {
    return this.#call('POST', this.#keysPath(tenantId, clientId), { body: keyBody('createKey', input, CREATE_KEY_MEMBERS) });
  }

  /**
   * `POST .../access-keys/{keyId}/roll`: a new key for the client (generated, with its `accessKey` shown only this
   * once, or `input.publicKey` registered), while the old key keeps working for `gracePeriodSeconds` (default one day,
   * never past its own expiry). Deploy the new key, then let the old one run out. A revoked, expired or already rolling
   * key is 409 `key_not_active`.
   */
  async rollKey(tenantId: string, clientId: string, keyId: string, input: RollKeyInput = {}): Promise<CreatedAccessKey> {
    const body = keyBody('rollKey', input, ROLL_KEY_MEMBERS);
    const { gracePeriodSeconds } = input;
    if (gracePeriodSeconds !== undefined && !Number.isInteger(gracePeriodSeconds))
      throw new TypeError('gracePeriodSeconds must be a whole number of seconds');
    return this.#call('POST', `${this.#keysPath(tenantId, clientId)}/${segment(keyId, 'keyId')}/roll`, {
      body: { ...body, ...(gracePeriodSeconds !== undefined ? { gracePeriodSeconds } : {}) },
    });
  }

  /** `GET .../clients/{clientId}/access-keys`: one page of the client's keys (public parts only). */
  async listKeys(tenantId: string, clientId: string, page?: PageOptions): Promise<Page<AccessKeyView>> {
    return this.#list(this.#keysPath(tenantId, clientId), pageQuery(page));
  }

  /** Every key of the client, page after page. */
  iterateKeys(tenantId: string, clientId: string, page: PageOptions = {}): AsyncGenerator<AccessKeyView, void, undefined> {
    return follow((cursor) => this.listKeys(tenantId, clientId, { ...page, cursor }), page.cursor);
  }

  /** `DELETE .../access-keys/{keyId}`: revokes a key; its tokens stop working within the revocation bound. */
  async revokeKey(tenantId: string, clientId: string, keyId: string): Promise<void> {
    await this.#call('DELETE', `${this.#keysPath(tenantId, clientId)}/${segment(keyId, 'keyId')}`, { expect: 'empty' });
  }

  /** `GET /v1/tenants/{tenantId}/audit-events`: one page of the tenant's decrypted audit records, newest first. */
  async listAuditEvents(tenantId: string, query: AuditEventQuery = {}): Promise<Page<AuditEvent>> {
    return this.#list(`/v1/tenants/${segment(tenantId, 'tenantId')}/audit-events`, {
      ...pageQuery(query),
      from: instant(query.from, 'from'),
      to: instant(query.to, 'to'),
      action: query.action,
    });
  }

  /** Every audit record of the query, newest first, page after page. */
  iterateAuditEvents(tenantId: string, query: AuditEventQuery = {}): AsyncGenerator<AuditEvent, void, undefined> {
    return follow((cursor) => this.listAuditEvents(tenantId, { ...query, cursor }), query.cursor);
  }

  /** `GET /v1/clients/{clientId}/.well-known/openid-configuration`: the client's discovery document (no token sent). */
  async openidConfiguration(clientId: string): Promise<OpenIdConfiguration> {
    return this.#call('GET', this.#discoveryPath(clientId), { auth: false });
  }

  /** `GET .../openid-configuration/jwks`: the client's active public keys (no token sent). */
  async jwks(clientId: string): Promise<Jwks> {
    return this.#call('GET', `${this.#discoveryPath(clientId)}/jwks`, { auth: false });
  }

  /** `GET /v1/openapi.json`: the OpenAPI 3.1 document of this deployment's API (no token sent). */
  async openapi(): Promise<{ openapi: string; info: { title: string; version: string } } & Record<string, unknown>> {
    return this.#call('GET', '/v1/openapi.json', { auth: false });
  }

  /** What `JSON.stringify` shows: where and who, never the access key. */
  toJSON(): { baseUrl: string } & ClientIdentity {
    return { baseUrl: this.baseUrl, ...this.identity };
  }

  /** What `util.inspect` and `console.log` show: where and who, never the access key. */
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `KeysmithAdmin { baseUrl: '${this.baseUrl}', clientId: '${this.identity.clientId}', keyId: '${this.identity.keyId}' }`;
  }

  #clientsPath(tenantId: string): string {
    return `/v1/tenants/${segment(tenantId, 'tenantId')}/clients`;
  }

  #clientPath(tenantId: string, clientId: string): string {
    return `${this.#clientsPath(tenantId)}/${segment(clientId, 'clientId')}`;
  }

  #keysPath(tenantId: string, clientId: string): string {
    return `${this.#clientPath(tenantId, clientId)}/access-keys`;
  }

  #discoveryPath(clientId: string): string {
    return `/v1/clients/${segment(clientId, 'clientId')}/.well-known/openid-configuration`;
  }

  async #list<T>(path: string, query: Record<string, string | undefined>): Promise<Page<T>> {
    const page = await this.#call<Page<T>>('GET', path, { query });
    if (!Array.isArray(page.items)) throw invalidResponse(200, `GET ${path} answered without an items list.`);
    return page;
  }

  async #call<T>(method: string, path: string, { query = {}, body, auth = true, expect = 'json' }: Call = {}): Promise<T> {
    const url = new URL(`${this.baseUrl}${path}`);
    for (const [name, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(name, value);
    const headers: Record<string, string> = { accept: 'application/json, application/problem+json' };
    const authorization = auth ? await this.#tokens.authorizationHeader() : undefined;
    if (authorization) headers.authorization = authorization;
    if (body !== undefined) headers['content-type'] = 'application/json';
    // Every text that comes back goes into errors: a token echoed by anything on the way is cut out of it, and so is
    // its signature alone (an echo cut short, or the token with its dots escaped).
    const token = authorization?.slice('Bearer '.length);
    const secrets = token ? [token, token.slice(token.lastIndexOf('.') + 1)].filter((part) => part.length >= 16) : [];
    const scrub = (value: string) => secrets.reduce((cleaned, secret) => cleaned.split(secret).join('[redacted]'), value);
    let response: Response;
    let answer: string;
    try {
      response = await this.#fetch(url.href, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        // The token goes to baseUrl only: a redirect is reported, not followed.
        redirect: 'manual',
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      answer = await readCapped(response);
    } catch (error) {
      if (error instanceof KeysmithApiError) throw error;
      throw this.#connectionError(error, scrub);
    }
    if (response.status === 401 && authorization) this.#tokens.invalidate();
    if (response.type === 'opaqueredirect' || (response.status >= 300 && response.status < 400)) {
      const location = response.headers.get('location');
      throw invalidResponse(
        response.status,
        `${method} ${path} answered with a redirect${location ? ` to ${scrub(location)}` : ''}; tokens are sent to baseUrl only, so set baseUrl to the API's own URL.`,
      );
    }
    if (!response.ok) throw problemError(response, answer, `${method} ${path} failed`, scrub);
    if (expect === 'empty') return undefined as T;
    let parsed: unknown;
    try {
      parsed = JSON.parse(answer);
    } catch {
      parsed = undefined;
    }
    if (!isObject(parsed))
      throw invalidResponse(response.status, `${method} ${path} answered with a body that is not a JSON object.`);
    return parsed as T;
  }

  #connectionError(error: unknown, scrub: (value: string) => string): KeysmithConnectionError {
    const e = error as { name?: unknown; message?: unknown; cause?: { code?: unknown; message?: unknown } } | undefined;
    if (e?.name === 'TimeoutError')
      return new KeysmithConnectionError(this.baseUrl, `timed out after ${this.#timeoutMs} ms`, true);
    const reason = text(e?.cause?.code) ?? text(e?.cause?.message) ?? text(e?.message) ?? String(error);
    return new KeysmithConnectionError(this.baseUrl, scrub(reason));
  }
}

function invalidResponse(status: number, detail: string): KeysmithApiError {
  return new KeysmithApiError({ status, code: 'invalid_response', title: 'Invalid response', detail });
}

/** The body as text, refusing one longer than {@link MAX_RESPONSE_BYTES} (a hostile endpoint cannot fill memory). */
async function readCapped(response: Response): Promise<string> {
  if (!response.body) return '';
  const decoder = new TextDecoder();
  let answer = '';
  let length = 0;
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    length += chunk.byteLength;
    // Leaving the loop cancels the stream.
    if (length > MAX_RESPONSE_BYTES)
      throw invalidResponse(response.status, `The answer is longer than ${MAX_RESPONSE_BYTES} bytes; stopped reading it.`);
    answer += decoder.decode(chunk, { stream: true });
  }
  return answer + decoder.decode();
}

/** `value` with `scrub` applied to every string in it, however deep (object keys included). */
function scrubbed(value: unknown, scrub: (text: string) => string): unknown {
  if (typeof value === 'string') return scrub(value);
  if (Array.isArray(value)) return value.map((item) => scrubbed(item, scrub));
  if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([key, item]) => [scrub(key), scrubbed(item, scrub)]));
  return value;
}

/**
 * The error of an error answer, from its problem+json as far as there is one. Everything in it that came from the
 * answer (body, status text, request id) is scrubbed after parsing, so no escape in the JSON hides a token.
 */
function problemError(
  response: Response,
  answer: string,
  fallbackDetail: string,
  scrub: (text: string) => string,
): KeysmithApiError {
  let parsed: unknown;
  try {
    parsed = answer ? JSON.parse(answer) : undefined;
  } catch {
    parsed = undefined;
  }
  const problem = (isObject(parsed) ? scrubbed(parsed, scrub) : {}) as Record<string, unknown>;
  const errors: ProblemFieldError[] = Array.isArray(problem.errors)
    ? problem.errors.flatMap((issue: unknown) =>
        isObject(issue) && typeof issue.path === 'string' && typeof issue.message === 'string'
          ? [{ path: issue.path, message: issue.message }]
          : [],
      )
    : [];
  const statusText = text(response.statusText);
  const title = text(problem.title) ?? (statusText ? scrub(statusText) : `HTTP ${response.status}`);
  const header =
    response.headers.get('x-request-id') ?? response.headers.get('x-amzn-requestid') ?? response.headers.get('apigw-requestid');
  const requestId = header ? scrub(header) : undefined;
  return new KeysmithApiError({
    status: response.status,
    code: text(problem.code) ?? 'http_error',
    title,
    detail: text(problem.detail) ?? text(problem.title) ?? fallbackDetail,
    ...(text(problem.type) ? { type: problem.type as string } : {}),
    errors,
    ...(requestId ? { requestId } : {}),
    problem,
  });
}
