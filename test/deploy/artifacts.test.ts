/**
 * The deployed artifacts, tested (issue 10): the app is synthesized once, and each function's staged asset (the
 * folder `cdk deploy` zips and uploads) runs on Lambda's Node major in a runtime stand-in, with only the environment
 * the template gives it plus what Lambda itself sets. Its tables are made in DynamoDB Local from the template's own
 * definitions and its KMS keys are served by a KMS stand-in. Requests go through the template's own REST API methods,
 * the Lambda authorizer first, as API Gateway would send them.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { CreateTableCommand, DeleteTableCommand, type DynamoDBClient, UpdateTimeToLiveCommand } from '@aws-sdk/client-dynamodb';
import { DecryptCommand, GenerateDataKeyCommand, GetPublicKeyCommand, KMS, KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { localClient } from '#local/dynamodb-local.ts';
import { mintToken } from '#sdk/token.ts';
import { type BootstrappedAdmin, bootstrapPlatformAdmin } from '#shared/bootstrap.ts';
import { loadConfig } from '#shared/config.ts';
import { createDocumentClient } from '#shared/dynamodb.ts';
import { randomBase62 } from '#shared/ids.ts';
import { KmsSealKey } from '#shared/seal.ts';
import { createManagement } from '#shared/wiring.ts';
import { createKeysmithApp } from '../../cdk/keysmith-app.ts';
import { type KmsKeySpec, KmsServer } from '../support/kms-server.ts';
import { NODE24 } from '../support/node24.ts';
import {
  type DeployedFunction,
  DeployedStack,
  type GatewayRequest,
  type InvokeOutcome,
  type Json,
  RestApiGateway,
  readStackAssembly,
} from '../support/template.ts';

const RUNNER = fileURLToPath(new URL('../support/lambda-runner.mjs', import.meta.url));
const REGION = 'us-east-1';
const SOURCE_IP = '203.0.113.7';

/** One warm Lambda container: the runner on Node 24, reused for every event until stopped. */
class LambdaContainer {
  private readonly lines: string[] = [];
  private readonly waiting: { resolve: (line: string) => void; reject: (error: Error) => void }[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private exited: Error | undefined;
  /** What the function printed (its logs and metrics), as CloudWatch would have them. */
  logs = '';
  node = '';

  private constructor(
    readonly fn: DeployedFunction,
    private readonly child: ChildProcess,
  ) {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const waiter = this.waiting.shift();
      if (waiter) waiter.resolve(line);
      else this.lines.push(line);
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      if (this.logs.length < 1_000_000) this.logs += chunk.toString();
    });
    const gone = (why: string) => {
      this.exited ??= new Error(`${fn.logicalId} ${why}; its log ends:\n${this.logs.slice(-3000)}`);
      for (const waiter of this.waiting.splice(0)) waiter.reject(this.exited);
    };
    child.once('exit', (code, signal) => gone(`exited (${signal ?? code})`));
    child.once('error', (error) => gone(`could not run ${NODE24}: ${error.message}`));
  }

  /** Starts the container and waits for its cold start; a failed one throws with the function's own error. */
  static async start(fn: DeployedFunction, environment: Record<string, string>): Promise<LambdaContainer> {
    const child = spawn(NODE24, [RUNNER, '--timeout', String(fn.timeoutSeconds), '--function-arn', fn.arn], {
      cwd: fn.codeDirectory,
      env: environment,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const container = new LambdaContainer(fn, child);
    const first = JSON.parse(await container.next());
    if (!first.ready) {
      await container.stop();
      throw new Error(`${fn.logicalId} failed to initialise: ${first.error?.errorType}: ${first.error?.errorMessage}`);
    }
    container.node = first.node;
    return container;
  }

  private next(): Promise<string> {
    const line = this.lines.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (this.exited) return Promise.reject(this.exited);
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** One invocation, after the previous one (a container serves one event at a time). */
  invoke(event: Json): Promise<InvokeOutcome> {
    const run = this.queue.then(async () => {
      this.child.stdin!.write(`${JSON.stringify(event)}\n`);
      return JSON.parse(await this.next()) as InvokeOutcome;
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Structured log lines (Powertools JSON) the function wrote. */
  logEntries(): Json[] {
    return this.logs
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Json];
        } catch {
          return [];
        }
      });
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exit = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await exit;
    clearTimeout(timer);
  }
}

let outdir: string;
let deployed: DeployedStack;
let kms: KmsServer;
let dynamodb: DynamoDBClient;
let gateway: RestApiGateway;
let admin: BootstrappedAdmin;
let issuerBase: string;
const containers = new Map<string, LambdaContainer>();
const created: string[] = [];
const clientsToClose: { destroy(): void }[] = [];

/**
 * The credentials each function signs with, so the KMS stand-in can tell its callers apart (each has its own role).
 * Letters and digits only: DynamoDB Local refuses any other access key id (UnrecognizedClientException).
 */
const accessKeyOf = (fn: DeployedFunction) => `ASIA${fn.logicalId.replace(/[^A-Za-z0-9]/g, '')}`;

/** The template's variables of the function, then what Lambda sets (it wins, as reserved variables do), then the stand-ins. */
function lambdaEnvironment(fn: DeployedFunction, variables: Record<string, string> = fn.environment): Record<string, string> {
  return {
    ...variables,
    AWS_REGION: deployed.region,
    AWS_DEFAULT_REGION: deployed.region,
    AWS_EXECUTION_ENV: `AWS_Lambda_${fn.runtime}`,
    AWS_LAMBDA_FUNCTION_NAME: fn.name,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(fn.memoryMb),
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
    AWS_LAMBDA_LOG_GROUP_NAME: fn.logGroupName,
    AWS_LAMBDA_LOG_STREAM_NAME: `2026/01/01/[$LATEST]${randomBase62(32)}`,
    AWS_ACCESS_KEY_ID: accessKeyOf(fn),
    AWS_SECRET_ACCESS_KEY: 'test-secret',
    AWS_SESSION_TOKEN: 'test-session',
    LAMBDA_TASK_ROOT: fn.codeDirectory,
    _HANDLER: fn.handler,
    TZ: ':UTC',
    LANG: 'en_US.UTF-8',
    PATH: '/usr/local/bin:/usr/bin/:/bin',
    // Not Lambda's: where this test's DynamoDB and KMS answer, through the SDK's own endpoint variables.
    AWS_ENDPOINT_URL_DYNAMODB: inject('dynamodbEndpoint'),
    AWS_ENDPOINT_URL_KMS: kms.endpoint,
  };
}

const KEY_SPECS: Record<string, KmsKeySpec> = {
  'SYMMETRIC_DEFAULT/ENCRYPT_DECRYPT': 'SYMMETRIC_DEFAULT',
  'HMAC_256/GENERATE_VERIFY_MAC': 'HMAC_256',
  'RSA_2048/SIGN_VERIFY': 'RSA_2048',
};

function container(logicalId: string): LambdaContainer {
  const found = containers.get(logicalId);
  if (!found) throw new Error(`no container runs ${logicalId}`);
  return found;
}

/** A request through the gateway; the result's body parsed when it is JSON. */
async function call(request: GatewayRequest & { token?: string }) {
  const { token, ...rest } = request;
  const response = await gateway.request({
    sourceIp: SOURCE_IP,
    ...rest,
    headers: { ...rest.headers, ...(token ? { Authorization: `Bearer ${token}` } : {}) },
  });
  const text = !/json/.test(response.headers['content-type'] ?? 'application/json');
  const json = response.body && !text ? JSON.parse(response.body) : undefined;
  // What to show when a status is not the expected one: the functions' outcomes and the end of their logs.
  const steps = [response.trace.authorizer, response.trace.integration].flatMap((step, index) =>
    step ? [{ step: index === 0 ? 'authorizer' : 'integration', outcome: step.outcome }] : [],
  );
  const logs = [...containers.values()].map((running) => `--- ${running.fn.logicalId}\n${running.logs.slice(-1500)}`);
  const why = `${response.statusCode} ${response.body}\n${JSON.stringify(steps, null, 1)}\n${logs.join('\n')}`;
  return { ...response, json, why };
}

/** The function serving a route of the template. */
const integrationOf = (httpMethod: string, resourcePath: string) =>
  deployed.function(deployed.findMethod(httpMethod, resourcePath).integrationFunction);

beforeAll(async () => {
  outdir = mkdtempSync(join(tmpdir(), 'keysmith-artifacts-'));
  // The staged assets run from outside the repository, so nothing resolves from its node_modules (as in Lambda).
  expect(relative(fileURLToPath(new URL('../..', import.meta.url)), outdir)).toMatch(/^\.\./);
  const { app, stack } = createKeysmithApp({ outdir });
  const assembly = app.synth();
  deployed = new DeployedStack(readStackAssembly(assembly.directory, stack.stackName), { region: stack.region });

  kms = new KmsServer({ region: deployed.region, accountId: deployed.accountId });
  for (const key of deployed.keys()) {
    const spec = KEY_SPECS[`${key.keySpec}/${key.keyUsage}`];
    if (!spec) throw new Error(`the KMS stand-in has no ${key.keySpec} key for ${key.keyUsage} (${key.logicalId})`);
    kms.createKey(spec, key.arn);
  }
  await kms.start();

  dynamodb = localClient(inject('dynamodbEndpoint'));
  for (const table of deployed.tables()) {
    await dynamodb.send(new CreateTableCommand(table.createTable));
    created.push(table.name);
    if (table.timeToLiveAttribute)
      await dynamodb.send(
        new UpdateTimeToLiveCommand({
          TableName: table.name,
          TimeToLiveSpecification: { AttributeName: table.timeToLiveAttribute, Enabled: true },
        }),
      );
  }

  const started = await Promise.all(deployed.functions().map((fn) => LambdaContainer.start(fn, lambdaEnvironment(fn))));
  for (const running of started) containers.set(running.fn.logicalId, running);
  gateway = new RestApiGateway(deployed, (logicalId, event) => container(logicalId).invoke(event));

  // The operator's bootstrap, in-process: the management function's own configuration, with the operator's clients.
  const management = integrationOf('POST', '/v1/tenants/{tenantId}/clients');
  const config = loadConfig(management.environment);
  // shared/config.ts falls back to default table names, so a variable the template dropped shows here, not at cold start.
  const tableNames = deployed.tables().map((table) => table.name);
  for (const role of ['main', 'audit'] as const)
    if (!tableNames.includes(config.tables[role]))
      throw new Error(`the management function's ${role} table is ${config.tables[role]}; the template creates ${tableNames}`);
  issuerBase = config.issuerBase;
  const aws = { region: deployed.region, credentials: { accessKeyId: 'operator', secretAccessKey: 'operator' } };
  const documentClient = createDocumentClient({ ...aws, endpoint: inject('dynamodbEndpoint') });
  const kmsAggregated = new KMS({ ...aws, endpoint: kms.endpoint });
  const kmsClient = new KMSClient({ ...aws, endpoint: kms.endpoint });
  clientsToClose.push(documentClient, kmsAggregated, kmsClient);
  const { service } = createManagement(config, { documentClient, kms: kmsAggregated, kmsClient });
  admin = await bootstrapPlatformAdmin(service, { tenantId: `platform-${randomBase62(8).toLowerCase()}` });
});

afterAll(async () => {
  await Promise.all([...containers.values()].map((running) => running.stop()));
  await kms?.close();
  for (const name of created) await dynamodb.send(new DeleteTableCommand({ TableName: name })).catch(() => undefined);
  dynamodb?.destroy();
  for (const client of clientsToClose) client.destroy();
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

describe('the synthesized stack, run as deployed', () => {
  it("runs every function's staged asset on the template's runtime, told the tables and keys the template names", () => {
    const tables = Object.fromEntries(deployed.tables().map((table) => [table.logicalId, table.name]));
    const keys = new Set(deployed.keys().map((key) => key.arn));
    for (const running of containers.values()) {
      const { fn } = running;
      expect(fn.runtime, fn.logicalId).toMatch(/^nodejs\d+\.x$/);
      expect(running.node, `${fn.logicalId} runs on ${fn.runtime}`).toMatch(new RegExp(`^v${/\d+/.exec(fn.runtime)![0]}\\.`));
      expect(fn.codeDirectory.startsWith(join(outdir, 'asset.')), fn.codeDirectory).toBe(true);
      // Every table and key a function is told about is one the template creates (a Ref to it, resolved).
      const config = loadConfig(fn.environment);
      // The audit function alone has no main table (it may not touch clients or keys); every function has one table.
      expect(fn.environment.KEYSMITH_MAIN_TABLE || fn.environment.KEYSMITH_AUDIT_TABLE, fn.logicalId).toBeTruthy();
      if (fn.environment.KEYSMITH_MAIN_TABLE) expect(Object.values(tables)).toContain(config.tables.main);
      if (fn.environment.KEYSMITH_AUDIT_TABLE) expect(Object.values(tables)).toContain(config.tables.audit);
      for (const name of ['KEYSMITH_AUDIT_KMS_KEY_ARN', 'KEYSMITH_SEAL_KMS_KEY_ARN', 'KEYSMITH_AUDIT_DIGEST_KEY_ARN'])
        if (fn.environment[name]) expect(keys, `${fn.logicalId} ${name}`).toContain(fn.environment[name]);
    }
    expect(issuerBase).toBe(`https://${deployed.apiId}.execute-api.${REGION}.amazonaws.com/${deployed.stageName()}`);
  });

  it('walks create client → key → token → whoami → revoke → refused → audit list through the gateway', async () => {
    const adminToken = (await mintToken(admin.accessKey, { issuerBase })).token;
    const tenant = `t-${randomBase62(10).toLowerCase()}`;
    const clientsPath = `/v1/tenants/${tenant}/clients`;

    const client = await call({
      method: 'POST',
      path: clientsPath,
      token: adminToken,
      body: { name: 'orders-service', scopes: ['orders:read'] },
    });
    expect(client.statusCode, client.why).toBe(201);
    const clientId: string = client.json.clientId;
    expect(client.headers.location).toBe(`${clientsPath}/${clientId}`);
    expect(client.json.issuer).toBe(`${issuerBase}/v1/clients/${clientId}`);
    expect(client.trace.authorizer?.event).toMatchObject({ type: 'TOKEN', authorizationToken: `Bearer ${adminToken}` });
    expect(client.trace.integration?.event.requestContext.authorizer).toMatchObject({
      principalId: admin.client.clientId,
      clientId: admin.client.clientId,
      scopes: expect.stringContaining('keysmith:platform-admin'),
    });

    const key = await call({ method: 'POST', path: `${clientsPath}/${clientId}/access-keys`, token: adminToken, body: {} });
    expect(key.statusCode, key.why).toBe(201);
    expect(key.json).toMatchObject({ clientId, algorithm: 'EdDSA', status: 'active', accessKey: expect.any(String) });
    const keyId: string = key.json.keyId;

    const clientToken = (await mintToken(key.json.accessKey, { issuerBase })).token;
    const whoami = await call({ method: 'GET', path: '/v1/whoami', token: clientToken });
    expect(whoami.statusCode, whoami.why).toBe(200);
    expect(whoami.json).toEqual({ clientId, tenantId: tenant, keyId, scopes: 'orders:read' });

    // The token endpoint (contract §9): the token function signs with the template's RSA_2048 key through KMS, and
    // the authorizer verifies the access token against that key's public half, with no read.
    const assertion = (
      await mintToken(key.json.accessKey, { issuerBase, audience: issuerBase, lifetimeSeconds: 60, jti: randomBase62(16) })
    ).token;
    const granted = await call({
      method: 'POST',
      path: '/v1/oauth/token',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
        client_assertion: assertion,
      }).toString(),
    });
    expect(granted.statusCode, granted.why).toBe(200);
    expect(granted.headers['cache-control'] ?? granted.headers['Cache-Control']).toBe('no-store');
    expect(granted.json).toMatchObject({ token_type: 'Bearer', scope: 'orders:read' });
    const byAccessToken = await call({ method: 'GET', path: '/v1/whoami', token: granted.json.access_token });
    expect(byAccessToken.statusCode, byAccessToken.why).toBe(200);
    expect(byAccessToken.json).toEqual({ clientId, tenantId: tenant, keyId, scopes: 'orders:read' });
    const published = await call({ method: 'GET', path: '/.well-known/jwks.json' });
    expect(published.statusCode, published.why).toBe(200);
    expect(published.json.keys).toHaveLength(1);

    const revoke = await call({ method: 'DELETE', path: `${clientsPath}/${clientId}/access-keys/${keyId}`, token: adminToken });
    expect(revoke.statusCode, revoke.why).toBe(204);

    // The warm authorizer may keep a key for KEYSMITH_REVOCATION_SECONDS (the contract's bound); a new container,
    // as Lambda starts for a new request or after the bound, reads the key again and must refuse it.
    const authorizerId = deployed.authorizer(deployed.findMethod('GET', '/v1/whoami').authorizerLogicalId!).functionLogicalId;
    const warm = container(authorizerId);
    await warm.stop();
    const fresh = await LambdaContainer.start(warm.fn, lambdaEnvironment(warm.fn));
    containers.set(authorizerId, fresh);
    const refused = await call({ method: 'GET', path: '/v1/whoami', token: clientToken });
    expect(refused.statusCode, refused.why).toBe(401);
    expect(refused.json).toMatchObject({ code: 'unauthorized', status: 401 });
    expect(refused.trace.integration).toBeUndefined();
    expect(fresh.logEntries()).toContainEqual(expect.objectContaining({ message: 'denied', reason: 'key_revoked' }));

    const audit = await call({ method: 'GET', path: `/v1/tenants/${tenant}/audit-events`, token: adminToken });
    expect(audit.statusCode, audit.why).toBe(200);
    const requestIdOf = (response: typeof client) => response.trace.integration?.event.requestContext.requestId;
    const actor = { type: 'client', clientId: admin.client.clientId, tenantId: admin.client.tenantId };
    expect(audit.json.items).toEqual([
      expect.objectContaining({
        action: 'access_key.revoked',
        tenantId: tenant,
        actor: expect.objectContaining(actor),
        target: { clientId, keyId },
        requestId: requestIdOf(revoke),
        sourceIp: SOURCE_IP,
      }),
      expect.objectContaining({ action: 'access_key.created', target: { clientId, keyId }, requestId: requestIdOf(key) }),
      expect.objectContaining({
        action: 'client.created',
        actor: expect.objectContaining(actor),
        target: { clientId },
        requestId: requestIdOf(client),
      }),
    ]);

    // KMS saw each function with its own credentials, and each call is one its role allows.
    const byCaller = new Map(deployed.functions().map((fn) => [accessKeyOf(fn), fn.logicalId]));
    const management = integrationOf('POST', '/v1/tenants/{tenantId}/clients').logicalId;
    const seen = new Map<string, Set<string>>();
    for (const kmsCall of kms.calls) {
      const caller = kmsCall.accessKeyId ? byCaller.get(kmsCall.accessKeyId) : undefined;
      if (!caller) continue; // the operator's bootstrap
      expect(kmsCall.error, `${caller} ${kmsCall.operation}`).toBeUndefined();
      const resource = kmsCall.keyArn ?? '(no key)';
      expect(
        deployed.roleAllows(caller, `kms:${kmsCall.operation}`, resource, kmsCall.encryptionContext),
        `${caller}'s role allows kms:${kmsCall.operation} on ${resource} with ${JSON.stringify(kmsCall.encryptionContext)}`,
      ).toBe(true);
      seen.set(caller, (seen.get(caller) ?? new Set()).add(kmsCall.operation));
    }
    expect([...(seen.get(management) ?? [])].sort()).toEqual(['Decrypt', 'GenerateDataKey', 'GenerateMac', 'VerifyMac']);
    // The authorizer reads the token-signing public key (to verify the access token); only the token function signs.
    expect([...(seen.get(authorizerId) ?? [])].sort()).toEqual(['GetPublicKey', 'VerifyMac']);
    const tokenFunction = integrationOf('POST', '/v1/oauth/token').logicalId;
    expect([...(seen.get(tokenFunction) ?? [])].sort()).toEqual(['GetPublicKey', 'Sign', 'VerifyMac']);
    // The check above can say no: a reader may not seal, and the audit key is only for audit contexts.
    const sealKey = loadConfig(container(authorizerId).fn.environment).sealKey;
    const auditKey = loadConfig(deployed.function(management).environment).auditKey;
    expect(sealKey?.kind === 'kms' && deployed.roleAllows(authorizerId, 'kms:GenerateMac', sealKey.keyArn)).toBe(false);
    expect(auditKey?.kind === 'kms' && deployed.roleAllows(management, 'kms:Decrypt', auditKey.keyArn, { purpose: 'x' })).toBe(
      false,
    );

    // Nothing on the way failed quietly.
    for (const running of containers.values())
      expect(running.logEntries().filter((entry) => entry.level === 'ERROR' || entry.level === 'WARN')).toEqual([]);
  });
});

describe('the KMS stand-in', () => {
  const aws = { region: REGION, credentials: { accessKeyId: 'standin', secretAccessKey: 'standin' } };
  const client = () => {
    const created = new KMSClient({ ...aws, endpoint: kms.endpoint, maxAttempts: 1 });
    clientsToClose.push(created);
    return created;
  };

  it("serves the console from the discovery function's staged asset, through the template's public methods", async () => {
    const page = await call({ method: 'GET', path: '/console' });
    expect(page.statusCode, page.why).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.trace.authorizer).toBeUndefined();
    // The deployment's own settings, and assets under its stage's path.
    expect(page.body).toContain(`<meta name="keysmith-issuer-base" content="${issuerBase}" />`);
    const stagePath = new URL(issuerBase).pathname.replace(/\/$/, '');
    const assets = [...page.body.matchAll(/(?:src|href)="([^"]+\/console\/app-\w+\.(?:js|css))"/g)].map((m) => m[1] as string);
    expect(assets).toHaveLength(2);
    for (const asset of assets) {
      expect(asset.startsWith(`${stagePath}/console/`)).toBe(true);
      const file = await call({ method: 'GET', path: asset.slice(stagePath.length) });
      expect(file.statusCode, file.why).toBe(200);
      expect(file.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(file.body.length).toBeGreaterThan(1000);
    }
  });

  it('binds the encryption context into the ciphertext and names the key in it, as KMS does', async () => {
    const kmsClient = client();
    const keyId = kms.createKey('SYMMETRIC_DEFAULT');
    const context = { purpose: 'test', tenant: 'a' };
    const { CiphertextBlob, Plaintext } = await kmsClient.send(
      new GenerateDataKeyCommand({ KeyId: keyId, NumberOfBytes: 32, EncryptionContext: context }),
    );
    const decrypted = await kmsClient.send(new DecryptCommand({ CiphertextBlob, EncryptionContext: context }));
    expect(decrypted.KeyId).toBe(keyId);
    expect(Buffer.from(decrypted.Plaintext!)).toEqual(Buffer.from(Plaintext!));
    await expect(
      kmsClient.send(new DecryptCommand({ CiphertextBlob, EncryptionContext: { ...context, tenant: 'b' } })),
    ).rejects.toMatchObject({ name: 'InvalidCiphertextException' });
    await expect(
      kmsClient.send(new DecryptCommand({ CiphertextBlob, EncryptionContext: context, KeyId: kms.createKey() })),
    ).rejects.toMatchObject({ name: 'IncorrectKeyException' });
    await expect(kmsClient.send(new GenerateDataKeyCommand({ KeyId: `${keyId}0`, NumberOfBytes: 32 }))).rejects.toMatchObject({
      name: 'NotFoundException',
    });
  });

  it("answers a MAC that does not match the way shared/seal.ts reads as 'not sealed'", async () => {
    const sealKey = new KmsSealKey({ kms: client(), keyId: kms.createKey('HMAC_256') });
    const seal = await sealKey.seal('message');
    expect(await sealKey.verify('message', seal)).toBe(true);
    expect(await sealKey.verify('another message', seal)).toBe(false);
    await expect(new KmsSealKey({ kms: client(), keyId: kms.createKey('SYMMETRIC_DEFAULT') }).seal('m')).rejects.toMatchObject({
      name: 'InvalidKeyUsageException',
    });
  });

  it('signs with an RSA key whose public key verifies the signature', async () => {
    const kmsClient = client();
    const keyId = kms.createKey('RSA_2048');
    const message = Buffer.from('header.payload');
    const { PublicKey } = await kmsClient.send(new GetPublicKeyCommand({ KeyId: keyId }));
    const publicKey = createPublicKey({ key: Buffer.from(PublicKey!), format: 'der', type: 'spki' });
    const raw = await kmsClient.send(
      new SignCommand({ KeyId: keyId, Message: message, MessageType: 'RAW', SigningAlgorithm: 'RSASSA_PKCS1_V1_5_SHA_256' }),
    );
    expect(verify('sha256', message, publicKey, Buffer.from(raw.Signature!))).toBe(true);
    const digest = await kmsClient.send(
      new SignCommand({
        KeyId: keyId,
        Message: createHash('sha256').update(message).digest(),
        MessageType: 'DIGEST',
        SigningAlgorithm: 'RSASSA_PKCS1_V1_5_SHA_256',
      }),
    );
    expect(Buffer.from(digest.Signature!)).toEqual(Buffer.from(raw.Signature!));
  });
});

describe('what must fail', () => {
  // Each variable the template sets, dropped in turn, and the cold-start error it must give.
  const lambdaOnly = (variable: string) => `ConfigError: ${variable} is required on Lambda (the stack sets it)`;
  const keyOrFile = (variable: string) =>
    new RegExp(`ConfigError: ${variable} \\(in AWS\\) or KEYSMITH_LOCAL_\\w+ \\(locally\\) is required`);
  it.each([
    ['KEYSMITH_MAIN_TABLE', lambdaOnly],
    ['KEYSMITH_AUDIT_TABLE', lambdaOnly],
    ['KEYSMITH_ISSUER_BASE', lambdaOnly],
    ['KEYSMITH_SEAL_KMS_KEY_ARN', keyOrFile],
    ['KEYSMITH_AUDIT_KMS_KEY_ARN', keyOrFile],
  ])('a function whose template no longer sets %s fails at cold start (no laptop default on Lambda)', async (variable, error) => {
    const users = deployed.functions().filter((fn) => fn.environment[variable] !== undefined);
    expect(users.length).toBeGreaterThan(0);
    await Promise.all(
      users.map(async (fn) => {
        const { [variable]: _dropped, ...variables } = fn.environment;
        await expect(LambdaContainer.start(fn, lambdaEnvironment(fn, variables))).rejects.toThrow(error(variable));
      }),
    );
  });

  it("a route the template lacks fails the walk's method lookup", async () => {
    const whoami = deployed.findMethod('GET', '/v1/whoami');
    const without = deployed.withTemplate((template) => {
      delete template.Resources[whoami.logicalId];
    });
    const lookup = new RestApiGateway(without, () => Promise.reject(new Error('nothing may be invoked')));
    await expect(lookup.request({ method: 'GET', path: '/v1/whoami' })).rejects.toThrow(
      'the template has no AWS::ApiGateway::Method GET /v1/whoami (no method on that resource)',
    );
  });

  it('a bundle that does not load, or lacks its handler, fails at cold start', async () => {
    const management = integrationOf('POST', '/v1/tenants/{tenantId}/clients');
    const broken = mkdtempSync(join(tmpdir(), 'keysmith-broken-asset-'));
    try {
      cpSync(management.codeDirectory, broken, { recursive: true });
      // A dependency left out of the bundle: Lambda has no node_modules beside it.
      writeFileSync(join(broken, 'index.mjs'), "import 'keysmith-unbundled-dependency';\nexport const handler = () => 1;\n");
      const unbundled = { ...management, codeDirectory: broken };
      await expect(LambdaContainer.start(unbundled, lambdaEnvironment(unbundled))).rejects.toThrow(
        /Runtime\.ImportModuleError: .*keysmith-unbundled-dependency/,
      );
    } finally {
      rmSync(broken, { recursive: true, force: true });
    }
    const renamed = { ...management, handler: 'index.main' };
    await expect(LambdaContainer.start(renamed, lambdaEnvironment(renamed))).rejects.toThrow(
      'Runtime.HandlerNotFound: index.main is undefined or not exported',
    );
  });
});
