/**
 * The three packages as their users get them (contract §13): `npm run pack`, then each tarball installed with plain
 * `npm install <tarball>` into a fresh folder outside the repository, with no other Keysmith file present, and used
 * there with plain `node` (no tsx): the SDK against a running `npm start`, its `.d.ts` under strict TypeScript, the
 * constructs in a fresh CDK app with its own aws-cdk-lib and no esbuild, and the CLI.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { decodeProtectedHeader, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '#local/dynamodb-local.ts';
import { localState, REPO, type RunningKeysmith, startKeysmith, untilRunning, userEnv } from '../support/local-start.ts';

const exec = promisify(execFile);
const work = mkdtempSync(join(tmpdir(), 'keysmith-packages-'));
/** The oldest aws-cdk-lib the CDK package's peer range admits: what a consumer may have. */
const CDK_FLOOR = JSON.parse(readFileSync(join(REPO, 'packages/cdk/package.json'), 'utf8'))
  .peerDependencies['aws-cdk-lib'].replace('^', '')
  .trim();
const ROOT = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));

/** A user's shell: no npm script variables and nothing of the repository's node_modules on PATH. */
const shellEnv = (): NodeJS.ProcessEnv => {
  const env = userEnv();
  for (const name of Object.keys(env)) if (name.startsWith('npm_') || name === 'INIT_CWD') delete env[name];
  env.PATH = (env.PATH ?? '')
    .split(delimiter)
    .filter((entry) => !entry.startsWith(REPO))
    .join(delimiter);
  return env;
};

async function sh(file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = shellEnv()) {
  try {
    return await exec(file, args, { cwd, env, maxBuffer: 64 * 1024 * 1024 });
  } catch (error) {
    const failed = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(
      `${file} ${args.join(' ')} failed in ${cwd}:\n${failed.stderr ?? ''}${failed.stdout ?? ''}\n${failed.message}`,
    );
  }
}

/** A fresh project folder with its own package.json, outside the repository. */
function project(name: string): string {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    `${JSON.stringify({ name: `try-${name}`, private: true, type: 'module' }, null, 2)}\n`,
  );
  return dir;
}

const npmInstall = (dir: string, specs: string[]) =>
  sh('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...specs], dir);

/** Bytes of every file under `dir`. */
function footprint(dir: string): number {
  let bytes = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true }))
    if (entry.isFile()) bytes += readFileSync(join(entry.parentPath, entry.name)).byteLength;
  return bytes;
}

let tarballs: Record<'sdk' | 'cdk' | 'cli', string>;

beforeAll(async () => {
  const { stdout } = await exec('npm', ['run', '-s', 'pack'], { cwd: REPO, maxBuffer: 16 * 1024 * 1024 });
  const files = readdirSync(join(REPO, 'dist/packages'));
  const find = (name: string) => {
    const file = files.find((f) => f.startsWith(`keysmith-${name}-`) && f.endsWith('.tgz'));
    if (!file) throw new Error(`npm run pack wrote no ${name} tarball:\n${stdout}`);
    return join(REPO, 'dist/packages', file);
  };
  tarballs = { sdk: find('sdk'), cdk: find('cdk'), cli: find('cli') };
}, 180_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('@keysmith/sdk installed from its tarball', () => {
  let dir: string;
  let keysmith: RunningKeysmith | undefined;
  let stateDir: string;

  beforeAll(async () => {
    dir = project('sdk');
    await npmInstall(dir, [tarballs.sdk]);
    stateDir = mkdtempSync(join(work, 'start-'));
    keysmith = startKeysmith(stateDir, await freePort());
    await untilRunning(keysmith);
  }, 120_000);

  afterAll(() => {
    keysmith?.kill();
  });

  it('depends on jose alone (npm ls --all --omit=dev)', async () => {
    const { stdout } = await sh('npm', ['ls', '--all', '--omit=dev', '--json'], dir);
    const tree = JSON.parse(stdout);
    const sdk = tree.dependencies['@keysmith/sdk'];
    expect(Object.keys(tree.dependencies)).toEqual(['@keysmith/sdk']);
    expect(Object.keys(sdk.dependencies)).toEqual(['jose']);
    expect(sdk.dependencies.jose.dependencies ?? {}).toEqual({});
    console.info(`SDK install footprint: ${(footprint(join(dir, 'node_modules')) / 1024).toFixed(0)} KiB`);
  });

  it('creates a client and key with KeysmithAdmin, calls whoami with createAuthorizedFetch and verifies a token, under plain node', async () => {
    const state = localState(stateDir);
    const audience = state.audiences[0]!;
    writeFileSync(
      join(dir, 'use.mjs'),
      `import { ClientTokenVerifier, KeysmithAdmin, KeysmithApiError, TokenProvider, createAuthorizedFetch } from '@keysmith/sdk';
const { BASE_URL: baseUrl, ISSUER_BASE: issuerBase, AUDIENCE: audience, ADMIN_ACCESS_KEY: accessKey } = process.env;
const admin = new KeysmithAdmin({ baseUrl, accessKey, issuerBase, audience });
const tenant = 'pkg-' + Date.now().toString(36);
const client = await admin.createClient(tenant, { name: 'billing-worker', scopes: ['invoices:read'] });
const key = await admin.createKey(tenant, client.clientId);
const authorizedFetch = createAuthorizedFetch({ accessKey: key.accessKey, issuerBase, audience });
const response = await authorizedFetch(baseUrl + '/v1/whoami');
const whoami = await response.json();
const verifier = new ClientTokenVerifier({ issuerBase, audiences: audience });
const verified = await verifier.verify(await new TokenProvider({ accessKey: key.accessKey, issuerBase, audience }).getToken());
let notFound;
try { await admin.getClient(tenant, 'sc_0000000000000000000000'); } catch (error) { notFound = error instanceof KeysmithApiError && error.code; }
console.log(JSON.stringify({ tenant, clientId: client.clientId, keyId: key.keyId, status: response.status, whoami, verified: verified.clientId, notFound }));
`,
    );
    const { stdout } = await sh(process.execPath, ['use.mjs'], dir, {
      ...shellEnv(),
      BASE_URL: state.baseUrl,
      ISSUER_BASE: state.issuerBase,
      AUDIENCE: audience,
      ADMIN_ACCESS_KEY: state.adminAccessKey,
    });
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!);
    expect(result.status).toBe(200);
    expect(result.whoami).toEqual({
      clientId: result.clientId,
      tenantId: result.tenant,
      keyId: result.keyId,
      scopes: 'invoices:read',
    });
    expect(result.verified).toBe(result.clientId);
    expect(result.notFound).toBe('client_not_found');
  }, 60_000);

  it('typechecks a strict TypeScript file against the shipped .d.ts, and fails a deliberate type error', async () => {
    await npmInstall(dir, [
      `typescript@${ROOT.devDependencies.typescript}`,
      `@types/node@${ROOT.devDependencies['@types/node']}`,
    ]);
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', noEmit: true },
        files: ['typed.ts'],
      }),
    );
    writeFileSync(
      join(dir, 'typed.ts'),
      `import { KeysmithAdmin, KeysmithApiError, TokenProvider, type ServiceClient } from '@keysmith/sdk';
const admin = new KeysmithAdmin({ baseUrl: 'https://keys.example.com', accessKey: process.env.KEY ?? '' });
export async function names(tenant: string): Promise<string[]> {
  const page = await admin.listClients(tenant, { limit: 10 });
  const first: ServiceClient | undefined = page.items[0];
  return [first?.name ?? '', ...page.items.map((client) => client.clientId)];
}
export const isProblem = (error: unknown): string | undefined => (error instanceof KeysmithApiError ? error.code : undefined);
export const header = (provider: TokenProvider): Promise<string> => provider.authorizationHeader();
`,
    );
    const tsc = join(dir, 'node_modules/typescript/bin/tsc');
    await sh(process.execPath, [tsc, '-p', '.'], dir);

    writeFileSync(
      join(dir, 'typed.ts'),
      `import { KeysmithAdmin } from '@keysmith/sdk';
const admin = new KeysmithAdmin({ baseUrl: 'https://keys.example.com', accessKey: 'x' });
export const wrong: number = (await admin.getClient('acme', 'sc_x')).name;
`,
    );
    const failed = await exec(process.execPath, [tsc, '-p', '.'], { cwd: dir, env: shellEnv() }).then(
      () => undefined,
      (error: { stdout: string }) => error.stdout,
    );
    expect(failed).toMatch(/typed\.ts\(3,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/);
  }, 120_000);
});

describe('@keysmith/cdk installed from its tarball', () => {
  it(`synthesizes KeysmithStack and a user stack whose RestApi and HttpApi use KeysmithAuthorizer, with aws-cdk-lib ${CDK_FLOOR} and no esbuild, offline`, async () => {
    const dir = project('cdk');
    await npmInstall(dir, [`aws-cdk-lib@${CDK_FLOOR}`, 'constructs@10', tarballs.cdk]);
    expect(existsSync(join(dir, 'node_modules/esbuild'))).toBe(false);
    const { stdout: tree } = await sh('npm', ['ls', '--all', '--json'], dir);
    expect(JSON.stringify(JSON.parse(tree))).not.toContain('"esbuild"');
    writeFileSync(
      join(dir, 'app.mjs'),
      `import { App, Stack } from 'aws-cdk-lib';
import { LambdaIntegration, RestApi, AuthorizationType } from 'aws-cdk-lib/aws-apigateway';
import { HttpApi, HttpMethod } from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { Code, Function, Runtime } from 'aws-cdk-lib/aws-lambda';
import { KeysmithAuthorizer, KeysmithStack } from '@keysmith/cdk';

const app = new App({ outdir: 'cdk.out' });
const env = { region: 'eu-west-1' };
new KeysmithStack(app, 'Keysmith', { env });
const stack = new Stack(app, 'Invoices', { env });
const backend = new Function(stack, 'Backend', {
  runtime: Runtime.NODEJS_24_X,
  handler: 'index.handler',
  code: Code.fromInline('export const handler = async () => ({ statusCode: 200, body: "ok" });'),
});
const keysmith = KeysmithAuthorizer.fromStackExport(stack, 'Keysmith');
const rest = new RestApi(stack, 'Rest');
rest.root.addResource('invoices').addMethod('GET', new LambdaIntegration(backend), {
  authorizer: keysmith.restTokenAuthorizer(),
  authorizationType: AuthorizationType.CUSTOM,
});
const http = new HttpApi(stack, 'Http');
http.addRoutes({
  path: '/invoices',
  methods: [HttpMethod.GET],
  integration: new HttpLambdaIntegration('Backend', backend),
  authorizer: keysmith.httpAuthorizer(),
});
// Access tokens: API Gateway verifies them itself, no Lambda, each route with the scopes it needs.
http.addRoutes({
  path: '/reports',
  methods: [HttpMethod.GET],
  integration: new HttpLambdaIntegration('Reports', backend),
  authorizer: keysmith.httpJwtAuthorizer('Jwt', { audience: ['https://invoices.example.com'] }),
  authorizationScopes: ['reports:read'],
});
app.synth();
`,
    );
    await sh(process.execPath, ['app.mjs'], dir, { ...shellEnv(), CDK_DEFAULT_REGION: 'eu-west-1' });

    const template = (name: string) => JSON.parse(readFileSync(join(dir, 'cdk.out', `${name}.template.json`), 'utf8'));
    const keysmith = template('Keysmith');
    const functions = Object.values<any>(keysmith.Resources).filter((r) => r.Type === 'AWS::Lambda::Function');
    // authorizer, management, discovery, token, audit
    expect(functions).toHaveLength(5);
    const assets = JSON.parse(readFileSync(join(dir, 'cdk.out', 'Keysmith.assets.json'), 'utf8')).files;
    const staged = functions.map((fn) => {
      expect(fn.Properties.Runtime).toBe('nodejs24.x');
      const hash = String(fn.Properties.Code.S3Key).replace(/\.zip$/, '');
      // The prebuilt bundle, staged as cdk deploy would upload it.
      return join(dir, 'cdk.out', assets[hash].source.path);
    });
    const listings = staged.map((asset) => readdirSync(asset).sort().join(' ')).sort();
    // The discovery function's asset carries the console it serves: its page, script and style sheet.
    expect(listings).toEqual(['console index.mjs index.mjs.map', ...Array(4).fill('index.mjs index.mjs.map')]);
    const withConsole = staged.find((asset) => readdirSync(asset).includes('console')) as string;
    const consoleFiles = readdirSync(join(withConsole, 'console')).map((name) => name.replace(/^app-\w+\./, 'app-<hash>.'));
    expect(consoleFiles.sort()).toEqual(['app-<hash>.css', 'app-<hash>.js', 'index.html']);
    expect(Object.keys(keysmith.Outputs)).toEqual(expect.arrayContaining(['ApiUrl', 'AuthorizerFunctionArn']));
    const invoices = Object.values<any>(template('Invoices').Resources);
    const restAuthorizer = invoices.find((r) => r.Type === 'AWS::ApiGateway::Authorizer');
    const httpAuthorizer = invoices.find(
      (r) => r.Type === 'AWS::ApiGatewayV2::Authorizer' && r.Properties.AuthorizerType === 'REQUEST',
    );
    const jwtAuthorizer = invoices.find(
      (r) => r.Type === 'AWS::ApiGatewayV2::Authorizer' && r.Properties.AuthorizerType === 'JWT',
    );
    expect(jwtAuthorizer.Properties.JwtConfiguration).toEqual({
      Issuer: { 'Fn::ImportValue': 'Keysmith-IssuerBase' },
      Audience: ['https://invoices.example.com'],
    });
    const reports = invoices.find((r) => r.Type === 'AWS::ApiGatewayV2::Route' && r.Properties.RouteKey === 'GET /reports');
    expect(reports.Properties).toMatchObject({ AuthorizationType: 'JWT', AuthorizationScopes: ['reports:read'] });
    expect(restAuthorizer.Properties.Type).toBe('TOKEN');
    expect(httpAuthorizer.Properties).toMatchObject({ AuthorizerType: 'REQUEST', AuthorizerPayloadFormatVersion: '2.0' });
    expect(JSON.stringify(restAuthorizer.Properties.AuthorizerUri)).toContain('Keysmith-AuthorizerFunctionArn');
  }, 240_000);
});

describe('@keysmith/cli installed from its tarball', () => {
  it('runs under plain node with no dependencies: --help, and token signs with an access key', async () => {
    const dir = project('cli');
    await npmInstall(dir, [tarballs.cli]);
    const { stdout: tree } = await sh('npm', ['ls', '--all', '--omit=dev', '--json'], dir);
    expect(JSON.parse(tree).dependencies['@keysmith/cli'].dependencies ?? {}).toEqual({});
    const keysmith = join(dir, 'node_modules/.bin/keysmith');
    const { stdout: help } = await sh(process.execPath, [keysmith, '--help'], dir);
    expect(help).toContain('Usage: keysmith <command>');
    expect(help).toContain('token');

    const { privateKey } = await generateKeyPair('EdDSA', { extractable: true });
    const pkcs8 = (await import('node:crypto')).KeyObject.from(privateKey).export({ type: 'pkcs8', format: 'der' });
    const accessKey = `sc_${'a'.repeat(22)}.k1234567.acme.${pkcs8.toString('base64')}`;
    writeFileSync(join(dir, 'access-key'), accessKey, { mode: 0o600 });
    const { stdout: token } = await sh(
      process.execPath,
      [keysmith, 'token', '--access-key-file', 'access-key', '--issuer-base', 'https://keys.example.com'],
      dir,
    );
    expect(decodeProtectedHeader(token.trim())).toEqual({ alg: 'EdDSA', kid: 'k1234567', typ: 'JWT' });
  }, 120_000);
});
