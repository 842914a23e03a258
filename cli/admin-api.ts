/**
 * Talking to a deployment's HTTP API (contract §5) with a client token from the SDK's provider, and
 * finding which deployment and key to use: options, then environment, then `.keysmith/local.json`.
 */
import { TokenProvider } from '#sdk/token-provider.ts';
import { type OptionSpecs, type OptionValues, stringOption } from './command.ts';
import { ApiProblemError, CliError, type Context, readUserFile, UsageError } from './context.ts';

/** Options of every command that calls the API. */
export const CONNECTION_OPTIONS: OptionSpecs = {
  'base-url': {
    type: 'string',
    value: 'URL',
    description: "the deployment's API URL (default: KEYSMITH_BASE_URL, else .keysmith/local.json)",
  },
  'access-key': {
    type: 'string',
    value: 'KEY',
    description: 'an admin access key (default: KEYSMITH_ADMIN_ACCESS_KEY, else .keysmith/local.json)',
  },
  'access-key-file': { type: 'string', value: 'FILE', description: 'read the access key from FILE' },
  'issuer-base': {
    type: 'string',
    value: 'URL',
    description: "the deployment's issuer base (default: KEYSMITH_ISSUER_BASE, else local.json, else the base URL)",
  },
  audience: {
    type: 'string',
    value: 'AUD',
    description: "the token audience (default: KEYSMITH_AUDIENCE, else local.json's first, else the issuer base)",
  },
  json: { type: 'boolean', description: 'print JSON for scripts' },
};

/** The `--tenant` option of the management commands. */
export const TENANT_OPTION: OptionSpecs = {
  tenant: {
    type: 'string',
    value: 'TENANT',
    description: "the tenant (default: KEYSMITH_TENANT, else the access key's own tenant)",
  },
};

/** The problem+json of an error response, as much as there is. */
interface Problem {
  code?: unknown;
  detail?: unknown;
  title?: unknown;
}

/** A response body and status. */
export interface ApiResult<T> {
  status: number;
  body: T;
}

/** A small client of the HTTP API that signs its own tokens. */
export class AdminApi {
  constructor(
    readonly baseUrl: string,
    readonly tokens: TokenProvider,
    private readonly fetch: typeof globalThis.fetch,
  ) {}

  /** The tenant the access key belongs to. */
  get keyTenant(): string {
    return this.tokens.identity.tenantId;
  }

  /** Calls the API; a problem+json answer becomes an {@link ApiProblemError}. */
  async request<T = any>(
    method: string,
    path: string,
    body?: unknown,
    query: Record<string, string | undefined> = {},
  ): Promise<ApiResult<T>> {
    const url = new URL(`${this.baseUrl}${path}`);
    for (const [name, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(name, value);
    const headers: Record<string, string> = {
      authorization: await this.tokens.authorizationHeader(),
      accept: 'application/json',
    };
    if (body !== undefined) headers['content-type'] = 'application/json';
    let response: Response;
    try {
      response = await this.fetch(url, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(
        `cannot reach ${this.baseUrl}: ${cause?.code ?? cause?.message ?? (error as Error).message}. Is --base-url right?`,
      );
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    if (!response.ok) {
      const problem = (parsed ?? {}) as Problem;
      const code = typeof problem.code === 'string' ? problem.code : 'http_error';
      const detail =
        typeof problem.detail === 'string'
          ? problem.detail
          : typeof problem.title === 'string'
            ? problem.title
            : `${method} ${path} failed`;
      throw new ApiProblemError(response.status, code, detail);
    }
    return { status: response.status, body: parsed as T };
  }

  /** Follows `nextCursor` until the end (for `--all`). */
  async *pages<T>(path: string, query: Record<string, string | undefined>): AsyncGenerator<T[]> {
    let cursor = query.cursor;
    do {
      const { body } = await this.request<{ items: T[]; nextCursor?: string }>('GET', path, undefined, { ...query, cursor });
      yield body.items;
      cursor = body.nextCursor;
    } while (cursor);
  }
}

const trimBase = (url: string) => url.replace(/\/+$/, '');

function checkUrl(option: string, url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`${option} must be an absolute http(s) URL`);
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') throw new UsageError(`${option} must be an http(s) URL`);
  return trimBase(url);
}

/**
 * The API client for a command's options. `keyEnv` names the environment variables tried for the access key,
 * in order, before `.keysmith/local.json`'s admin key.
 */
export function connect(values: OptionValues, ctx: Context, keyEnv: string[] = ['KEYSMITH_ADMIN_ACCESS_KEY']): AdminApi {
  const saved = ctx.local();
  const baseUrlRaw = stringOption(values, 'base-url') ?? ctx.env.KEYSMITH_BASE_URL ?? saved.baseUrl;
  if (!baseUrlRaw)
    throw new UsageError('--base-url is required (or KEYSMITH_BASE_URL; locally `npm start` writes .keysmith/local.json)');
  const baseUrl = checkUrl('--base-url', baseUrlRaw);
  // local.json's key, issuer and audience belong to the local stack: never send them anywhere else.
  const local = saved.baseUrl && trimBase(saved.baseUrl) === baseUrl ? saved : {};
  const keyFile = stringOption(values, 'access-key-file');
  const accessKey = keyFile
    ? readUserFile(keyFile, '--access-key-file').trim()
    : (stringOption(values, 'access-key') ?? keyEnv.map((name) => ctx.env[name]).find((v) => v) ?? local.adminAccessKey);
  if (!accessKey) throw new UsageError(`an access key is required: --access-key, --access-key-file or ${keyEnv.join(' or ')}`);
  const issuerBase = checkUrl(
    '--issuer-base',
    stringOption(values, 'issuer-base') ?? ctx.env.KEYSMITH_ISSUER_BASE ?? local.issuerBase ?? baseUrl,
  );
  const localAudience = local.issuerBase && trimBase(local.issuerBase) === issuerBase ? local.audiences?.[0] : undefined;
  const audience = stringOption(values, 'audience') ?? ctx.env.KEYSMITH_AUDIENCE ?? localAudience ?? issuerBase;
  return new AdminApi(baseUrl, new TokenProvider({ accessKey, issuerBase, audience }), ctx.fetch);
}

/** The tenant a management command acts on. */
export function tenantOf(values: OptionValues, ctx: Context, api: AdminApi): string {
  return stringOption(values, 'tenant') ?? ctx.env.KEYSMITH_TENANT ?? api.keyTenant;
}
