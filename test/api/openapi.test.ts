/**
 * The OpenAPI document (shared/openapi.ts): served without a token, the same document the code builds, naming every
 * route of the table, clean under Redocly's lint (redocly.yaml), and strict enough that the response validator every
 * API test goes through (test/support/openapi.ts) catches a response that drifts from it.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { buildOpenApiDocument } from '#shared/openapi.ts';
import { ROUTES } from '#shared/routes.ts';
import { newTenant, type TestApp, useTestApp } from '../support/app.ts';
import { assertMatchesOpenApi, OpenApiMismatchError } from '../support/openapi.ts';

let app: TestApp;
useTestApp((started) => {
  app = started;
});

const REPO = fileURLToPath(new URL('../..', import.meta.url));

describe('GET /v1/openapi.json', () => {
  it('is public and is the document shared/openapi.ts builds for this deployment', async () => {
    const served = await app.call('GET', '/v1/openapi.json');
    expect(served.status).toBe(200);
    expect(served.headers.get('content-type')).toBe('application/json');
    expect(served.headers.get('cache-control')).toMatch(/^public, max-age=\d+$/);
    expect(served.body).toEqual(JSON.parse(JSON.stringify(buildOpenApiDocument({ serverUrl: app.config.issuerBase }))));
    expect(served.body.servers).toEqual([expect.objectContaining({ url: app.config.issuerBase })]);
  });

  it('names every route of the table, with its auth, and nothing else', async () => {
    const { body: document } = await app.call('GET', '/v1/openapi.json');
    const operations = Object.entries(document.paths as Record<string, Record<string, any>>).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, operation]) => ({ path, method, operation })),
    );
    expect(operations).toHaveLength(ROUTES.length);
    for (const route of ROUTES) {
      const operation = document.paths[route.path]?.[route.method.toLowerCase()];
      expect(operation?.operationId, `${route.method} ${route.path}`).toBe(route.id);
      expect(operation.security).toEqual(route.auth === 'none' ? [] : [{ bearerAuth: [] }]);
      for (const [, name] of route.path.matchAll(/\{(\w+)\}/g))
        expect(operation.parameters, `${route.id} {${name}}`).toContainEqual(expect.objectContaining({ name, in: 'path' }));
    }
    expect(document.paths['/v1/openapi.json'].get.operationId).toBe('openapi');
    expect(document.paths['/v1/health'].get.operationId).toBe('health');
  });

  it('lints with no errors and no warnings under Redocly (redocly.yaml)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'keysmith-openapi-'));
    try {
      const file = join(dir, 'openapi.json');
      await writeFile(file, JSON.stringify((await app.call('GET', '/v1/openapi.json')).body, null, 2));
      const { stdout, exitCode } = await promisify(execFile)(
        join(REPO, 'node_modules', '.bin', 'redocly'),
        ['lint', file, '--config', join(REPO, 'redocly.yaml'), '--format=json'],
        { cwd: REPO, env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' } },
      ).then(
        ({ stdout }) => ({ stdout, exitCode: 0 }),
        // A lint with errors exits non-zero; its report is on stdout all the same.
        (error: { stdout?: string; code?: number }) => ({ stdout: error.stdout ?? '', exitCode: error.code ?? -1 }),
      );
      const report = JSON.parse(stdout) as {
        totals: { errors: number; warnings: number };
        problems: { ruleId: string; severity: string; message: string; location: { pointer?: string }[] }[];
      };
      const problems = report.problems.map((p) => `${p.severity} ${p.ruleId} at ${p.location[0]?.pointer}: ${p.message}`);
      expect(problems).toEqual([]);
      expect(report.totals).toMatchObject({ errors: 0, warnings: 0 });
      expect(exitCode).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('the response validator catches drift from the document', () => {
  it('a real client passes; an extra member, a wrong type or a missing member fails', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const path = `/v1/tenants/${tenant}/clients/${client.clientId}`;
    const check = (body: unknown) => () => assertMatchesOpenApi('GET', path, 200, 'application/json', body);
    expect(check(client)).not.toThrow();
    expect(check({ ...client, lastSeenAt: client.createdAt })).toThrow(/getClient.*must NOT have additional properties/s);
    expect(check({ ...client, enabled: 'yes' })).toThrow(/\/enabled must be boolean/);
    const { issuer: _issuer, ...withoutIssuer } = client;
    expect(check(withoutIssuer)).toThrow(/must have required property 'issuer'/);
    expect(check({ ...client, createdAt: 'yesterday' })).toThrow(/\/createdAt must match format "date-time"/);
  });

  it('an undocumented status, a wrong content type, a body on a 204 and a problem of the wrong status fail', () => {
    const tenant = newTenant();
    const clients = `/v1/tenants/${tenant}/clients`;
    const problem = {
      type: 'urn:keysmith:problem:client_not_found',
      title: 'Not found',
      status: 404,
      detail: 'x',
      code: 'client_not_found',
    };
    expect(() => assertMatchesOpenApi('GET', clients, 404, 'application/problem+json', problem)).toThrow(
      /listClients.*status 404 is not documented/,
    );
    expect(() => assertMatchesOpenApi('GET', '/v1/health', 200, 'text/plain', { status: 'ok' })).toThrow(
      /content type "text\/plain" is not documented/,
    );
    expect(() =>
      assertMatchesOpenApi('DELETE', `${clients}/sc_0000000000000000000000`, 204, 'application/json', { deleted: true }),
    ).toThrow(/documents no body/);
    expect(() =>
      assertMatchesOpenApi('GET', `${clients}/sc_0000000000000000000000`, 404, 'application/problem+json', {
        ...problem,
        status: 400,
      }),
    ).toThrow(/\/status must be equal to constant/);
    expect(() =>
      assertMatchesOpenApi('GET', `${clients}/sc_0000000000000000000000`, 404, 'application/problem+json', {
        ...problem,
        hint: 'x',
      }),
    ).toThrow(/must NOT have additional properties/);
    expect(() =>
      assertMatchesOpenApi('GET', `${clients}/sc_0000000000000000000000`, 404, 'application/problem+json', problem),
    ).not.toThrow();
  });

  it('a 201 create without its Location header fails', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const path = `/v1/tenants/${tenant}/clients`;
    const created = (headers: Headers) => () => assertMatchesOpenApi('POST', path, 201, 'application/json', client, headers);
    expect(created(new Headers({ location: `${path}/${client.clientId}` }))).not.toThrow();
    expect(created(new Headers())).toThrow(/required header location is missing/);
    expect(created(new Headers({ location: 'https://elsewhere.example/x' }))).toThrow(/header location/);
  });

  it('answers to paths the document does not name are held to the problem schema', () => {
    const notFound = {
      type: 'urn:keysmith:problem:route_not_found',
      title: 'Not found',
      status: 404,
      detail: 'x',
      code: 'route_not_found',
    };
    expect(() => assertMatchesOpenApi('GET', '/v1/nothing-here', 404, 'application/problem+json', notFound)).not.toThrow();
    expect(() => assertMatchesOpenApi('GET', '/v1/nothing-here', 200, 'application/json', { ok: true })).toThrow(
      OpenApiMismatchError,
    );
    expect(() => assertMatchesOpenApi('GET', '/v1/nothing-here', 404, 'text/html', '<h1>Not found</h1>')).toThrow(
      /content type "text\/html"/,
    );
  });
});
