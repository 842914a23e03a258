/** The CLI end to end against the local stack: in-process through run(), and once as a child process. */
// The authorizer reads this when startTestApp loads the handlers: a revoked key stops working within 1 s.
process.env.KEYSMITH_REVOCATION_SECONDS = '1';

import { execFile } from 'node:child_process';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { DeleteCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { run } from '#cli/main.ts';
import { createDocumentClient } from '#shared/dynamodb.ts';
import { AUDIENCE, ISSUER_BASE, newTenant, ownKeyToken, startTestApp, type TestApp } from '../support/app.ts';
import { waitLinked } from '../support/audit.ts';

let app: TestApp;
let workDir: string;
const startDir = process.cwd();
/** Every line any command printed, to check that the admin key never appears. */
const transcript: string[] = [];

beforeAll(async () => {
  app = await startTestApp();
  workDir = mkdtempSync(join(tmpdir(), 'keysmith-cli-'));
  // Away from any .keysmith/local.json of a running `npm start`: each test names what it uses.
  process.chdir(workDir);
});
afterAll(async () => {
  await app.close();
  process.chdir(startDir);
  rmSync(workDir, { recursive: true, force: true });
  expect(transcript.join('\n')).not.toContain(app.adminAccessKey);
});

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** Runs the CLI in-process with the admin's connection options (unless `bare`). */
async function cli(args: string[], { bare = false } = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const connection = bare ? [] : ['--base-url', app.baseUrl, '--access-key', app.adminAccessKey];
  const code = await run(
    [...args, ...connection],
    (line) => out.push(line),
    (line) => err.push(line),
  );
  transcript.push(...out, ...err);
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

const json = (stdout: string) => JSON.parse(stdout);

describe('keysmith (in-process)', () => {
  it('creates a client and a key, mints a token, calls whoami, revokes the key and then sees 401', async () => {
    const tenant = newTenant();
    const created = await cli([
      'clients',
      'create',
      '--tenant',
      tenant,
      '--name',
      'billing-worker',
      '--scope',
      'invoices:read',
      '--json',
    ]);
    expect(created.code).toBe(0);
    const client = json(created.stdout);
    expect(client).toMatchObject({ tenantId: tenant, name: 'billing-worker', scopes: ['invoices:read'] });

    const key = await cli(['keys', 'create', client.clientId, '--tenant', tenant]);
    expect(key.code).toBe(0);
    expect(key.stderr).toMatch(/shown only this once/);
    const accessKey = key.stdout.trim();
    expect(accessKey.startsWith(`${client.clientId}.`)).toBe(true);
    const keyId = accessKey.split('.')[1] as string;

    const minted = await cli(['token', '--access-key', accessKey, '--issuer-base', ISSUER_BASE, '--audience', AUDIENCE], {
      bare: true,
    });
    expect(minted.code).toBe(0);
    const direct = await app.call('GET', '/v1/whoami', { token: minted.stdout.trim() });
    expect(direct.status).toBe(200);

    const whoami = await cli(['whoami', '--base-url', app.baseUrl, '--access-key', accessKey, '--json'], { bare: true });
    expect(whoami.code).toBe(0);
    expect(json(whoami.stdout)).toEqual({ clientId: client.clientId, tenantId: tenant, keyId, scopes: 'invoices:read' });

    const listed = await cli(['keys', 'list', client.clientId, '--tenant', tenant]);
    expect(listed.stdout).toMatch(new RegExp(`${keyId}\\s+EdDSA\\s+active\\s+generated`));
    expect(listed.stdout).not.toContain(accessKey.split('.')[3]);

    const revoked = await cli(['keys', 'revoke', client.clientId, keyId, '--tenant', tenant]);
    expect(revoked).toMatchObject({ code: 0, stdout: `Revoked key ${keyId} of client ${client.clientId}.` });
    await sleep(1_100);
    const refused = await cli(['whoami', '--base-url', app.baseUrl, '--access-key', accessKey], { bare: true });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/\(unauthorized, HTTP 401\)/);
    expect(refused.stderr).not.toContain(accessKey);
    expect((await cli(['keys', 'list', client.clientId, '--tenant', tenant, '--json'])).stdout).toMatch(/"status": "revoked"/);
  });

  it('rolls a key with keys roll: the new access key alone on stdout, the old one rolling, then stopped after the grace', async () => {
    const tenant = newTenant();
    const client = json((await cli(['clients', 'create', '--tenant', tenant, '--name', 'rolled', '--json'])).stdout);
    const oldKey = (await cli(['keys', 'create', client.clientId, '--tenant', tenant, '--algorithm', 'ES256'])).stdout.trim();
    const oldKeyId = oldKey.split('.')[1] as string;
    const rolled = await cli(['keys', 'roll', client.clientId, oldKeyId, '--tenant', tenant, '--grace', '1s']);
    expect(rolled.code).toBe(0);
    const newKey = rolled.stdout.trim();
    expect(newKey.split('.').slice(0, 3)).toEqual([client.clientId, expect.stringMatching(/^[0-9A-Za-z]{8,16}$/), tenant]);
    expect(rolled.stderr).toMatch(/Rolled to ES256 key .* shown only this once/s);
    const listed = await cli(['keys', 'list', client.clientId, '--tenant', tenant]);
    expect(listed.stdout).toMatch(new RegExp(`${oldKeyId}\\s+ES256\\s+rolling \\(to ${newKey.split('.')[1]}\\)`));
    expect(listed.stdout).not.toContain(newKey.split('.')[3]);
    const again = await cli(['keys', 'roll', client.clientId, oldKeyId, '--tenant', tenant]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/\(key_not_active, HTTP 409\)/);
    for (const grace of ['forever', '31d', '-5'])
      expect((await cli(['keys', 'roll', client.clientId, oldKeyId, '--tenant', tenant, '--grace', grace])).code).toBe(2);
    await sleep(2_200);
    const whoami = (key: string) => cli(['whoami', '--base-url', app.baseUrl, '--access-key', key], { bare: true });
    expect((await whoami(oldKey)).code).toBe(1);
    expect((await whoami(newKey)).code).toBe(0);
  });

  it('lists, shows, updates and deletes clients, human and --json', async () => {
    const tenant = newTenant();
    const ids: string[] = [];
    for (const name of ['alpha', 'beta', 'gamma']) {
      const created = await cli(['clients', 'create', '--tenant', tenant, '--name', name, '--tag', 'team=core']);
      expect(created.code).toBe(0);
      const match = /Created client (sc_\w+) in tenant/.exec(created.stdout);
      ids.push(match?.[1] as string);
    }
    const table = await cli(['clients', 'list', '--tenant', tenant]);
    expect(table.stdout.split('\n')[0]).toMatch(/^CLIENT ID\s+NAME\s+ENABLED\s+SCOPES\s+CREATED\s+LAST USED$/);
    for (const id of ids) expect(table.stdout).toContain(id);

    const firstPage = json((await cli(['clients', 'list', '--tenant', tenant, '--limit', '2', '--json'])).stdout);
    expect(firstPage.items).toHaveLength(2);
    expect(firstPage.nextCursor).toEqual(expect.any(String));
    const all = json((await cli(['clients', 'list', '--tenant', tenant, '--limit', '2', '--all', '--json'])).stdout);
    expect(all.items.map((c: { clientId: string }) => c.clientId).sort()).toEqual([...ids].sort());

    const updated = await cli([
      'clients',
      'update',
      ids[0] as string,
      '--tenant',
      tenant,
      '--disable',
      '--scopes',
      'a:read b:write',
      '--json',
    ]);
    expect(json(updated.stdout)).toMatchObject({ enabled: false, scopes: ['a:read', 'b:write'], tags: { team: 'core' } });
    const shown = await cli(['clients', 'show', ids[0] as string, '--tenant', tenant]);
    expect(shown.stdout).toMatch(/enabled:\s+false/);
    expect(shown.stdout).toMatch(/scopes:\s+a:read b:write/);

    expect((await cli(['clients', 'delete', ids[1] as string, '--tenant', tenant])).code).toBe(0);
    const gone = await cli(['clients', 'show', ids[1] as string, '--tenant', tenant]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/^keysmith: .*\(client_not_found, HTTP 404\)$/);
    const goneJson = await cli(['clients', 'show', ids[1] as string, '--tenant', tenant, '--json']);
    expect(json(goneJson.stderr)).toEqual({ error: { status: 404, code: 'client_not_found', detail: expect.any(String) } });
  });

  it("prints the API's problem code and detail for a refused request", async () => {
    const tenant = newTenant();
    const invalid = await cli(['clients', 'create', '--tenant', tenant, '--name', 'x', '--scope', 'keysmith:bogus"']);
    expect(invalid.code).toBe(1);
    expect(invalid.stderr).toMatch(/HTTP 400\)/);
    const outsider = await app.clientWithToken(newTenant(), ['keysmith:admin']);
    const forbidden = await cli(
      ['clients', 'list', '--tenant', tenant, '--base-url', app.baseUrl, '--access-key', outsider.accessKey],
      {
        bare: true,
      },
    );
    expect(forbidden.code).toBe(1);
    expect(forbidden.stderr).toMatch(/HTTP 403\)/);
    const unreachable = await cli(['whoami', '--base-url', 'http://127.0.0.1:9', '--access-key', app.adminAccessKey], {
      bare: true,
    });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/cannot reach http:\/\/127\.0\.0\.1:9/);
  });

  it('registers your own public key with keys create --public-key-file, and refuses a private one', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const publicFile = join(workDir, 'public.jwk.json');
    const privateFile = join(workDir, 'private.jwk.json');
    writeFileSync(publicFile, JSON.stringify(publicKey.export({ format: 'jwk' })));
    const privateJwk = privateKey.export({ format: 'jwk' });
    writeFileSync(privateFile, JSON.stringify(privateJwk));

    const registered = await cli([
      'keys',
      'create',
      client.clientId,
      '--tenant',
      tenant,
      '--public-key-file',
      publicFile,
      '--json',
    ]);
    expect(registered.code).toBe(0);
    const body = json(registered.stdout);
    expect(body).toMatchObject({ algorithm: 'ES256', origin: 'registered' });
    expect(body.accessKey).toBeUndefined();

    const own = await ownKeyToken(privateKey, 'ES256', body.keyId, client.clientId);
    expect((await app.call('GET', '/v1/whoami', { token: own })).status).toBe(200);

    const refused = await cli(['keys', 'create', client.clientId, '--tenant', tenant, '--public-key-file', privateFile]);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/private key material/);
    expect(refused.stderr).not.toContain(privateJwk.d as string);
  });

  it('lists audit records and verifies the chain, exiting 1 once a record is deleted', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    await app.createKey(tenant, client.clientId);
    await cli(['clients', 'update', client.clientId, '--tenant', tenant, '--name', 'renamed']);
    await waitLinked(tenant, { records: 3 });

    const listed = await cli(['audit', 'list', '--tenant', tenant]);
    expect(listed.code).toBe(0);
    const rows = listed.stdout.split('\n');
    expect(rows[0]).toMatch(/^SEQ\s+TIME\s+ACTION\s+ACTOR\s+TARGET$/);
    expect(rows.slice(1).map((row) => row.split(/\s+/)[2])).toEqual(['client.updated', 'access_key.created', 'client.created']);
    const onlyKeys = json((await cli(['audit', 'list', '--tenant', tenant, '--action', 'access_key.created', '--json'])).stdout);
    expect(onlyKeys.items).toHaveLength(1);

    const target = [
      '--endpoint',
      process.env.AWS_ENDPOINT_URL_DYNAMODB as string,
      '--audit-table',
      process.env.KEYSMITH_AUDIT_TABLE as string,
      '--wrapping-key-file',
      process.env.KEYSMITH_LOCAL_WRAPPING_KEY_FILE as string,
    ];
    const intact = await cli(['audit', 'verify', '--tenant', tenant, ...target], { bare: true });
    expect(intact).toMatchObject({ code: 0 });
    expect(intact.stdout).toBe(`The audit chain of tenant ${tenant} is intact: 3 records linked (seq 1 to 3).`);
    expect(intact.stderr).toContain('Digests not checked');
    // A digest written now, then checked by an auditor holding only its public key (no audit key at all).
    const digestDir = inject('auditDigestDir');
    const written = await cli(
      [
        'audit',
        'anchor',
        '--tenant',
        tenant,
        ...target,
        '--digest-dir',
        digestDir,
        '--digest-key-file',
        inject('auditDigestKeyFile'),
      ],
      { bare: true },
    );
    expect(written.code, written.stderr).toBe(0);
    expect(written.stdout).toMatch(new RegExp(`^${tenant}: digest at seq 3 written to `));
    const publicPem = join(mkdtempSync(join(tmpdir(), 'keysmith-cli-')), 'digest-key.pem');
    writeFileSync(publicPem, createPublicKey(readFileSync(inject('auditDigestKeyFile'))).export({ type: 'spki', format: 'pem' }));
    const auditorArgs = ['--endpoint', target[1]!, '--audit-table', target[3]!, '--integrity-only', '--digest-dir', digestDir];
    const checked = await cli(['audit', 'verify', '--tenant', tenant, ...auditorArgs, '--digest-public-key', publicPem], {
      bare: true,
    });
    expect(checked.code, checked.stderr).toBe(0);
    expect(checked.stdout).toMatch(/3 records linked \(seq 1 to 3\); signed digest at seq 3 .*; integrity only/);
    const withoutKey = await cli(['audit', 'verify', '--tenant', tenant, ...auditorArgs], { bare: true });
    expect(withoutKey).toMatchObject({ code: 2 });
    expect(withoutKey.stderr).toMatch(/--digest-key-arn \(or --digest-public-key FILE\) is required/);
    // --json prints the head to keep elsewhere; --expect-head checks a kept one.
    const head = json((await cli(['audit', 'verify', '--tenant', tenant, ...target, '--json'], { bare: true })).stdout).head;
    expect(head).toMatchObject({ seq: 3, digest: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/) });
    const expected = await cli(
      ['audit', 'verify', '--tenant', tenant, ...target, '--expect-head', `${head.seq}:${head.digest}`],
      {
        bare: true,
      },
    );
    expect(expected.code).toBe(0);
    expect(expected.stderr).toContain('Clients not cross-checked');
    const crossChecked = await cli(
      [
        'audit',
        'verify',
        '--tenant',
        tenant,
        ...target,
        '--main-table',
        process.env.KEYSMITH_MAIN_TABLE as string,
        '--seal-key-file',
        process.env.KEYSMITH_LOCAL_SEAL_KEY_FILE as string,
      ],
      { bare: true },
    );
    expect(crossChecked.code).toBe(0);
    expect(crossChecked.stderr).toMatch(/Cross-checked 1 clients/);
    const ahead = await cli(['audit', 'verify', '--tenant', tenant, ...target, '--expect-head', `4:${head.digest}`], {
      bare: true,
    });
    expect(ahead.code).toBe(1);
    expect(ahead.stdout).toMatch(/\(rolled_back\)/);
    expect((await cli(['audit', 'verify', '--tenant', tenant, ...target, '--expect-head', 'nope'], { bare: true })).code).toBe(2);

    const db = createDocumentClient();
    const table = process.env.KEYSMITH_AUDIT_TABLE as string;
    const { Items = [] } = await db.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: 'pk = :pk AND begins_with(sk, :e)',
        ExpressionAttributeValues: { ':pk': `TENANT#${tenant}`, ':e': 'EVENT#' },
      }),
    );
    const second = Items.find((item) => item.seq === 2);
    await db.send(new DeleteCommand({ TableName: table, Key: { pk: second?.pk, sk: second?.sk } }));
    db.destroy();

    const broken = await cli(['audit', 'verify', '--tenant', tenant, ...target], { bare: true });
    expect(broken.code).toBe(1);
    expect(broken.stdout).toMatch(/BROKEN at record 2 \(deleted\)/);
    const brokenJson = await cli(['audit', 'verify', '--tenant', tenant, ...target, '--json'], { bare: true });
    expect(brokenJson.code).toBe(1);
    expect(json(brokenJson.stdout)).toMatchObject({ ok: false, problem: { kind: 'deleted', seq: 2 } });
  });

  it('bootstraps a platform admin with direct table access, once per tenant unless --force', async () => {
    const tenant = newTenant('platform');
    const args = [
      'bootstrap',
      '--main-table',
      process.env.KEYSMITH_MAIN_TABLE as string,
      '--audit-table',
      process.env.KEYSMITH_AUDIT_TABLE as string,
      '--wrapping-key-file',
      process.env.KEYSMITH_LOCAL_WRAPPING_KEY_FILE as string,
      '--endpoint',
      process.env.AWS_ENDPOINT_URL_DYNAMODB as string,
      '--region',
      'us-east-1',
      '--tenant',
      tenant,
    ];
    const first = await cli(args, { bare: true });
    expect(first.code).toBe(0);
    expect(first.stderr).toMatch(/shown only this once/);
    const accessKey = first.stdout.trim();
    const whoami = await app.call('GET', '/v1/whoami', { token: await app.token(accessKey) });
    expect(whoami.status).toBe(200);
    expect(whoami.body.scopes.split(' ').sort()).toEqual(['keysmith:admin', 'keysmith:platform-admin']);

    const again = await cli(args, { bare: true });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already has a platform admin/);
    expect((await cli([...args, '--force', '--json'], { bare: true })).code).toBe(0);
    expect(
      (await cli(['bootstrap', '--tenant', tenant, '--kms-key-arn', 'arn:aws:kms:us-east-1:1:key/x'], { bare: true })).code,
    ).toBe(2);
  });

  it('defaults to .keysmith/local.json (base URL, admin key, DynamoDB Local, wrapping key)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keysmith-local-'));
    mkdirSync(join(dir, '.keysmith'));
    const tables = { main: process.env.KEYSMITH_MAIN_TABLE, audit: process.env.KEYSMITH_AUDIT_TABLE };
    writeFileSync(
      join(dir, '.keysmith', 'local.json'),
      JSON.stringify({
        baseUrl: app.baseUrl,
        issuerBase: ISSUER_BASE,
        audiences: [ISSUER_BASE, AUDIENCE],
        dynamodbEndpoint: process.env.AWS_ENDPOINT_URL_DYNAMODB,
        tables,
        adminAccessKey: app.adminAccessKey,
      }),
    );
    copyFileSync(process.env.KEYSMITH_LOCAL_WRAPPING_KEY_FILE as string, join(dir, '.keysmith', 'audit-wrapping-key'));
    copyFileSync(process.env.KEYSMITH_LOCAL_SEAL_KEY_FILE as string, join(dir, '.keysmith', 'seal-key'));
    copyFileSync(inject('auditDigestKeyFile'), join(dir, '.keysmith', 'audit-digest-key'));
    mkdirSync(join(dir, '.keysmith', 'audit-digests'));
    process.chdir(dir);
    try {
      const whoami = await cli(['whoami', '--json'], { bare: true });
      expect(whoami.code).toBe(0);
      const admin = json(whoami.stdout);
      expect(admin.scopes).toContain('keysmith:platform-admin');
      const created = await cli(['clients', 'create', '--name', 'from-local', '--json'], { bare: true });
      expect(json(created.stdout).tenantId).toBe(admin.tenantId); // the admin key's own tenant by default
      await waitLinked(admin.tenantId);
      // The digests and their key beside the wrapping key, as npm start leaves them.
      const anchored = await cli(['audit', 'anchor', '--tenant', admin.tenantId], { bare: true });
      expect(anchored.code, anchored.stderr).toBe(0);
      expect(anchored.stdout).toContain(join(dir, '.keysmith', 'audit-digests'));
      const verified = await cli(['audit', 'verify', '--tenant', admin.tenantId], { bare: true });
      expect(verified.code).toBe(0);
      expect(verified.stdout).toMatch(/is intact: \d+ records linked .*; signed digest at seq \d+/);
      expect(verified.stderr).toMatch(/Cross-checked \d+ clients/);
    } finally {
      process.chdir(workDir);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('explains usage errors with exit code 2 and has help for every command', async () => {
    expect((await cli([], { bare: true })).code).toBe(2);
    expect((await cli(['--help'], { bare: true })).stdout).toMatch(/clients create/);
    expect((await cli(['frobnicate'], { bare: true })).stderr).toMatch(/unknown command "frobnicate"/);
    for (const command of [
      'token',
      'whoami',
      'clients create',
      'clients list',
      'clients show',
      'clients update',
      'clients delete',
      'keys create',
      'keys list',
      'keys revoke',
      'audit list',
      'audit verify',
      'audit anchor',
      'bootstrap',
    ]) {
      const help = await cli([...command.split(' '), '--help'], { bare: true });
      expect(help.code).toBe(0);
      expect(help.stdout).toContain(`keysmith ${command}`);
      expect(help.stdout).toMatch(/-h, --help/);
    }
    const cases: [string[], RegExp][] = [
      [['clients', 'create', '--tenant', 'acme'], /--name is required/],
      [['clients', 'show', '--tenant', 'acme'], /missing CLIENT_ID/],
      [['clients', 'update', 'sc_x', '--tenant', 'acme'], /name something to change/],
      [['clients', 'list', '--bogus'], /Unknown option '--bogus'/],
      [['keys', 'create', 'sc_x', '--algorithm', 'HS256'], /--algorithm must be one of EdDSA, ES256, RS256/],
      [['audit', 'verify'], /--tenant is required/],
      [['token', '--issuer-base', ISSUER_BASE], /an access key is required/],
      [['whoami'], /--base-url is required/],
    ];
    for (const [args, message] of cases) {
      const result = await cli(args, { bare: ['audit', 'token', 'whoami'].includes(args[0] as string) });
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toMatch(message);
    }
  });

  it('refuses a base URL with credentials (never echoing them) and plain http off loopback', async () => {
    const withPassword = await cli(
      ['whoami', '--base-url', 'https://admin:hunter2-password@127.0.0.1:1', '--access-key', app.adminAccessKey],
      { bare: true },
    );
    expect(withPassword.code).toBe(2);
    expect(withPassword.stderr).toContain('must not hold a user name or password');
    expect(withPassword.stderr).not.toContain('hunter2');
    const clear = await cli(['whoami', '--base-url', 'http://keys.example.test', '--access-key', app.adminAccessKey], {
      bare: true,
    });
    expect(clear.code).toBe(2);
    expect(clear.stderr).toContain('KEYSMITH_ALLOW_INSECURE_HTTP=1');
  });

  it('token --access-token gets an access token from the token endpoint, and prints its refusal without secrets', async () => {
    const tenantId = newTenant();
    const client = await app.createClient(tenantId, { scopes: ['invoices:read', 'invoices:write'] });
    const { accessKey } = await app.createKey(tenantId, client.clientId);
    // The issuer base is a name (http://keysmith.test): the CLI's requests to it go to the test server.
    const realFetch = globalThis.fetch;
    globalThis.fetch = ((url: string | URL | Request, init?: RequestInit) =>
      realFetch(String(url).replace(ISSUER_BASE, app.baseUrl), init)) as typeof fetch;
    try {
      const args = ['token', '--access-token', '--access-key', accessKey, '--issuer-base', ISSUER_BASE];
      const issued = await cli([...args, '--scope', 'invoices:read', '--audience', AUDIENCE, '--json'], { bare: true });
      expect(issued.code, issued.stderr).toBe(0);
      const { token, scope, expiresAt } = json(issued.stdout);
      expect(scope).toBe('invoices:read');
      expect(Date.parse(expiresAt)).toBeGreaterThan(Date.now());
      expect((await app.call('GET', '/v1/whoami', { token })).body).toMatchObject({ clientId: client.clientId });
      const refused = await cli([...args, '--scope', 'keysmith:admin'], { bare: true });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/invalid_scope/);
      expect(refused.stderr).not.toContain(accessKey.split('.')[3]?.slice(0, 24));
    } finally {
      globalThis.fetch = realFetch;
    }
  });

  it('never echoes a malformed access key', async () => {
    const truncated = app.adminAccessKey.slice(0, -30);
    const result = await cli(['clients', 'list', '--base-url', app.baseUrl, '--access-key', truncated], { bare: true });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/PKCS#8|truncated/);
    expect(result.stderr).not.toContain(truncated.split('.')[3]?.slice(0, 24));
    const token = await cli(['token', '--access-key', truncated, '--issuer-base', ISSUER_BASE], { bare: true });
    expect(token.code).toBe(2);
    expect(token.stderr).not.toContain(truncated.split('.')[3]?.slice(0, 24));
    // A secret passed where a command name goes is not echoed either.
    const misplaced = await cli([app.adminAccessKey], { bare: true });
    expect(misplaced.code).toBe(2);
    expect(misplaced.stderr).toContain('[redacted]');
    // A key pasted as `--option=value` where a file name belongs is not echoed through the file error.
    const secretPart = app.adminAccessKey.split('.')[3] as string;
    for (const args of [
      ['token', `--access-key-file=${app.adminAccessKey}`, '--issuer-base', ISSUER_BASE],
      ['token', `--access-key-file=${app.adminAccessKey}`, '--issuer-base', ISSUER_BASE, '--json'],
    ]) {
      const pasted = await cli(args, { bare: true });
      expect(pasted.code).toBe(2);
      expect(pasted.stderr).toContain('[redacted]');
      expect(pasted.stderr).not.toContain(secretPart.slice(0, 24));
    }
  });
});

describe('keysmith (child process)', () => {
  const bin = fileURLToPath(new URL('../../bin/keysmith.mjs', import.meta.url));
  const exec = promisify(execFile);

  it('runs whoami through node bin/keysmith.mjs with the key from the environment', async () => {
    const { stdout } = await exec(process.execPath, [bin, 'whoami', '--json'], {
      env: { ...process.env, KEYSMITH_BASE_URL: app.baseUrl, KEYSMITH_ADMIN_ACCESS_KEY: app.adminAccessKey },
      cwd: workDir,
    });
    expect(JSON.parse(stdout).scopes).toContain('keysmith:platform-admin');
    transcript.push(stdout);
  });

  it('exits 2 on a usage error', async () => {
    const failure = await exec(process.execPath, [bin, 'keys', 'revoke', 'sc_x'], { cwd: workDir }).catch((e: unknown) => e);
    expect((failure as { code?: number }).code).toBe(2);
    expect((failure as { stderr?: string }).stderr).toMatch(/missing KEY_ID/);
  });
});
