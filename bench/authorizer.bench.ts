/**
 * The authorizer's benchmark (`npm run bench:authorizer`): a script, not a timed test. One run, one machine, the
 * same tokens for every contender. Prints five tables:
 *  1. fresh distinct tokens: bare node:crypto verify, aws-jwt-verify verifySync (JWKS cached), Keysmith's handler;
 *  2. one repeated token through Keysmith's handler;
 *  3. DynamoDB requests and seal verifications (a KMS VerifyMac each in AWS), counted around a real ClientStore
 *     on DynamoDB Local (started here);
 *  4. bundle size and module load time of the authorizer and of a minimal aws-jwt-verify authorizer (esbuild);
 *  5. time from a key's revocation to the first 401 on a warm handler, against the configured bound;
 *  6. Keysmith access tokens (RS256, contract §9): bare verify, aws-jwt-verify and Keysmith's handler on the same
 *     tokens, and the DynamoDB reads they cost (none);
 *  7. last used (contract §11): DynamoDB writes per 10,000 authorizations of one key on one warm container, on
 *     DynamoDB Local's usage table, against the target of one per KEYSMITH_LAST_USED_SECONDS window.
 * Table 1 measures the handler as deployed, recording key uses, beside the same handler without the recorder.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject, randomBytes, randomUUID, sign, verify } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { DynamoDBDocumentClient, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { JwtVerifier } from 'aws-jwt-verify';
import { build } from 'esbuild';
import { createTables, LOCAL_AWS, localClient, startDynamoDbLocal } from '#local/dynamodb-local.ts';
import { toPublicJwk } from '#shared/access-key.ts';
import { type AccessTokenClaims, signAccessToken } from '#shared/access-token.ts';
import { Authorizer, type KeyDirectory } from '#shared/authorizer.ts';
import { newClientId, newEventId, newKeyId, randomBase62 } from '#shared/ids.ts';
import type { AccessKey, Algorithm, ClientWithKeys, ServiceClient } from '#shared/model.ts';
import { LocalSealKey, type SealKey } from '#shared/seal.ts';
import { ClientStore } from '#shared/store.ts';
import { issuerOf, type TokenPolicy } from '#shared/token-policy.ts';
import { LocalTokenSigner } from '#shared/token-signers.ts';
import { UsageRecorder } from '#shared/usage.ts';
import { LAMBDA_ENTRY_FILE } from '../cdk/lambda-code.ts';
import { buildLambdas, LAMBDA_NODE_TARGET } from '../scripts/build-lambdas.ts';
import { generateTestKey } from '../test/authorizer/support.ts';
import { NODE24 } from '../test/support/node24.ts';

const ISSUER_BASE = 'https://keysmith.bench';
const AUDIENCE = 'https://api.bench';
const TABLES = { main: 'keysmith-bench-main', audit: 'keysmith-bench-audit', usage: 'keysmith-bench-usage' };
const POLICY: TokenPolicy = {
  issuerBase: ISSUER_BASE,
  audiences: [AUDIENCE],
  maxTokenLifetimeSeconds: 86_400,
  clockSkewSeconds: 60,
};
const FRESH_TOKENS = 4_000;
const REVOCATION_SECONDS = 2;
const METHOD_ARN = 'arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/prod/GET/v1/invoices';

const nf = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const b64url = (value: string | Buffer) => Buffer.from(value).toString('base64url');

function table(title: string, header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(
    `\n${title}\n${line(header)}\n|${widths.map((w, i) => (i === 0 ? `${'-'.repeat(w + 1)}-` : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
  );
  for (const r of cells.slice(1)) console.log(line(r));
}

// ---------------------------------------------------------------------------------------------------------------
// Clients, keys and tokens
// ---------------------------------------------------------------------------------------------------------------

interface BenchClient {
  client: ServiceClient;
  key: AccessKey;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

function makeClient(algorithm: Algorithm): BenchClient {
  const pair = generateTestKey(algorithm);
  const clientId = newClientId();
  const tenantId = 'bench';
  const now = new Date().toISOString();
  return {
    client: {
      clientId,
      tenantId,
      name: 'bench',
      scopes: ['invoices:read'],
      tags: {},
      enabled: true,
      createdAt: now,
      updatedAt: now,
      version: 1,
      auditEventId: newEventId(),
    },
    key: {
      keyId: newKeyId(),
      clientId,
      tenantId,
      algorithm,
      publicKey: toPublicJwk(pair.publicKey),
      origin: 'generated',
      status: 'active',
      createdAt: now,
      sealedVersion: 1,
    },
    ...pair,
  };
}

const record = (c: BenchClient): ClientWithKeys => ({ client: c.client, keys: [c.key] });

function tokenOf(c: BenchClient, options: { kid?: string; signWith?: KeyObject; iat?: number; exp?: number } = {}): string {
  const iat = options.iat ?? Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: c.key.algorithm, kid: options.kid ?? c.key.keyId, typ: 'JWT' }));
  const payload = b64url(
    JSON.stringify({
      iss: issuerOf(ISSUER_BASE, c.client.clientId),
      sub: c.client.clientId,
      aud: AUDIENCE,
      iat,
      exp: options.exp ?? iat + 900,
      jti: randomUUID(),
    }),
  );
  const input = `${header}.${payload}`;
  const key = options.signWith ?? c.privateKey;
  const signature =
    c.key.algorithm === 'ES256'
      ? sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' })
      : sign(c.key.algorithm === 'EdDSA' ? null : 'sha256', Buffer.from(input), key);
  return `${input}.${b64url(signature)}`;
}

/** A KeyDirectory that counts reads, over a real store or an in-memory map. */
class CountingDirectory implements KeyDirectory {
  reads = 0;
  constructor(private readonly inner: KeyDirectory) {}
  getClientWithKeys(clientId: string): Promise<ClientWithKeys | undefined> {
    this.reads += 1;
    return this.inner.getClientWithKeys(clientId);
  }
}

/** Counts seal verifications: in AWS each is one KMS VerifyMac (less the ones KmsSealKey remembers). */
class CountingSealKey implements SealKey {
  verifies = 0;
  constructor(private readonly inner: SealKey) {}
  seal(message: string): Promise<Uint8Array> {
    return this.inner.seal(message);
  }
  verify(message: string, seal: Uint8Array): Promise<boolean> {
    this.verifies += 1;
    return this.inner.verify(message, seal);
  }
}

const memoryDirectory = (...clients: BenchClient[]): KeyDirectory => {
  const byId = new Map(clients.map((c) => [c.client.clientId, record(c)]));
  return { getClientWithKeys: async (clientId) => byId.get(clientId) };
};

// ---------------------------------------------------------------------------------------------------------------
// Timing
// ---------------------------------------------------------------------------------------------------------------

function opsPerSecondSync(tokens: string[], run: (token: string) => unknown): number {
  const start = process.hrtime.bigint();
  for (const token of tokens) run(token);
  return tokens.length / (Number(process.hrtime.bigint() - start) / 1e9);
}

async function opsPerSecondAsync(tokens: string[], run: (token: string) => Promise<unknown>): Promise<number> {
  const start = process.hrtime.bigint();
  for (const token of tokens) await run(token);
  return tokens.length / (Number(process.hrtime.bigint() - start) / 1e9);
}

type Handler = (event: { type: 'TOKEN'; authorizationToken: string; methodArn: string }) => Promise<unknown>;

// Lambda runs Node 24; the AWS SDK's notice about Node 20 says nothing about these figures.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

async function main(): Promise<void> {
  console.log(
    `Keysmith authorizer benchmark: Node ${process.version}, ${cpus()[0]?.model ?? 'cpu'}, ${availableParallelism()} cores, ` +
      `${nf(FRESH_TOKENS)} fresh tokens per run`,
  );

  const dynamodb = await startDynamoDbLocal();
  const sealKeyBytes = randomBytes(32);
  const sealKeyFile = join(mkdtempSync(join(tmpdir(), 'keysmith-bench-')), 'seal-key');
  writeFileSync(sealKeyFile, sealKeyBytes.toString('base64'), { mode: 0o600 });
  Object.assign(process.env, {
    KEYSMITH_LOCAL_SEAL_KEY_FILE: sealKeyFile,
    AWS_ENDPOINT_URL_DYNAMODB: dynamodb.endpoint,
    AWS_REGION: LOCAL_AWS.region,
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    KEYSMITH_MAIN_TABLE: TABLES.main,
    KEYSMITH_AUDIT_TABLE: TABLES.audit,
    KEYSMITH_ISSUER_BASE: ISSUER_BASE,
    KEYSMITH_AUDIENCES: AUDIENCE,
    KEYSMITH_REVOCATION_SECONDS: String(REVOCATION_SECONDS),
    POWERTOOLS_LOG_LEVEL: 'SILENT',
    // Denials emit one EMF line each in Lambda; here they would bury the tables (allows emit none).
    POWERTOOLS_METRICS_DISABLED: 'true',
  });
  const raw = localClient(dynamodb.endpoint);
  try {
    await createTables(raw, TABLES);
    const documentClient = DynamoDBDocumentClient.from(raw, { marshallOptions: { removeUndefinedValues: true } });
    const sealKey = new CountingSealKey(new LocalSealKey(sealKeyBytes));
    const store = new ClientStore({ documentClient, tableName: TABLES.main, sealKey });
    const put = async (c: BenchClient) =>
      documentClient.send(
        new TransactWriteCommand({
          TransactItems: await store.writeState({
            client: c.client,
            keys: [c.key],
            expectedVersion: undefined,
            newKeyIds: [c.key.keyId],
          }),
        }),
      );
    // The deployed composition: this module reads the environment above at load, as a Lambda cold start does.
    const lambda = await import('#lambdas/authorizer/handler.ts');
    const handlerOn = (authorizer: Authorizer) => lambda.createAuthorizerHandler(authorizer) as unknown as Handler;
    const event = (token: string) => ({ type: 'TOKEN' as const, authorizationToken: `Bearer ${token}`, methodArn: METHOD_ARN });

    // ---- 1. fresh distinct tokens -----------------------------------------------------------------------------
    const rows: (string | number)[][] = [];
    for (const algorithm of ['EdDSA', 'ES256'] as const) {
      const c = makeClient(algorithm);
      const tokens = Array.from({ length: FRESH_TOKENS }, () => tokenOf(c));
      const bare = (token: string) => {
        const dot = token.lastIndexOf('.');
        const data = Buffer.from(token.slice(0, dot));
        const signature = Buffer.from(token.slice(dot + 1), 'base64url');
        const ok =
          algorithm === 'EdDSA'
            ? verify(null, data, c.publicKey, signature)
            : verify('sha256', data, { key: c.publicKey, dsaEncoding: 'ieee-p1363' }, signature);
        if (!ok) throw new Error('bare verify failed');
      };
      const issuer = issuerOf(ISSUER_BASE, c.client.clientId);
      const peer = JwtVerifier.create({ issuer, audience: AUDIENCE, jwksUri: `${issuer}/.well-known/openid-configuration/jwks` });
      peer.cacheJwks({ keys: [{ ...c.key.publicKey, kid: c.key.keyId, alg: algorithm, use: 'sig' }] });

      let best = { bare: 0, peer: 0, keysmith: 0, unrecorded: 0 };
      const measure = async (usage: UsageRecorder | undefined) => {
        const authorizer = new Authorizer({
          directory: memoryDirectory(c),
          policy: POLICY,
          revocationSeconds: 60,
          ...(usage ? { onKeyUsed: (clientId: string, keyId: string) => usage.record(clientId, keyId) } : {}),
        });
        const handler = handlerOn(authorizer);
        await handler(event(tokenOf(c))); // keys cached; the measured tokens are all new to it
        const ops = await opsPerSecondAsync(tokens, async (token) => {
          const result = (await handler(event(token))) as { principalId?: string };
          if (result.principalId !== c.client.clientId) throw new Error('not allowed');
        });
        await usage?.flush();
        return ops;
      };
      for (let round = 0; round < 5; round++) {
        const b = opsPerSecondSync(tokens, bare);
        const p = opsPerSecondSync(tokens, (token) => peer.verifySync(token));
        // As deployed: the warm container's recorder writes the key's use once, to DynamoDB Local.
        const k = await measure(new UsageRecorder({ documentClient, tableName: TABLES.usage, windowSeconds: 300 }));
        const u = await measure(undefined);
        best = {
          bare: Math.max(best.bare, b),
          peer: Math.max(best.peer, p),
          keysmith: Math.max(best.keysmith, k),
          unrecorded: Math.max(best.unrecorded, u),
        };
      }
      rows.push(
        [`${algorithm} bare node:crypto verify`, nf(best.bare), '', ''],
        [`${algorithm} aws-jwt-verify verifySync (peer)`, nf(best.peer), '', nf(best.peer / best.bare, 2)],
        [
          `${algorithm} Keysmith handler (keys cached, last used recorded)`,
          nf(best.keysmith),
          nf(best.keysmith / best.peer, 2),
          nf(best.keysmith / best.bare, 2),
        ],
        [
          `${algorithm} Keysmith handler without the last-used recorder`,
          nf(best.unrecorded),
          nf(best.unrecorded / best.peer, 2),
          nf(best.unrecorded / best.bare, 2),
        ],
      );
    }
    table(
      '1. Fresh distinct tokens (best of 5 interleaved runs each, one core)',
      ['contender', 'ops/s', 'vs peer', 'vs bare'],
      rows,
    );

    // ---- 2. repeated token ------------------------------------------------------------------------------------
    {
      const repeatedRows: (string | number)[][] = [];
      for (const algorithm of ['EdDSA', 'ES256'] as const) {
        const c = makeClient(algorithm);
        const handler = handlerOn(new Authorizer({ directory: memoryDirectory(c), policy: POLICY, revocationSeconds: 60 }));
        const token = tokenOf(c);
        const runs = Array.from({ length: 200_000 }, () => token);
        await handler(event(token));
        let best = 0;
        for (let round = 0; round < 3; round++) best = Math.max(best, await opsPerSecondAsync(runs, (t) => handler(event(t))));
        repeatedRows.push([`${algorithm}, 200,000 calls`, nf(best), best >= 100_000 ? 'met' : 'missed']);
      }
      table(
        '2. One repeated token through the handler (verified-token cache)',
        ['case', 'ops/s', 'target ≥100,000/s'],
        repeatedRows,
      );
    }

    // ---- 3. DynamoDB requests ---------------------------------------------------------------------------------
    {
      const clients = Array.from({ length: 100 }, () => makeClient('EdDSA'));
      for (const c of clients) await put(c);
      const counting = new CountingDirectory(store);
      sealKey.verifies = 0;
      const handler = handlerOn(new Authorizer({ directory: counting, policy: POLICY, revocationSeconds: 60 }));
      const tokens = Array.from({ length: 10_000 }, (_, i) => tokenOf(clients[i % 100]!));
      for (const token of tokens.slice(0, 100)) await handler(event(token)); // cold: one read per client
      const cold = counting.reads;
      const coldSeals = sealKey.verifies;
      counting.reads = 0;
      sealKey.verifies = 0;
      for (const token of tokens) await handler(event(token));
      const warm = counting.reads;
      const warmSeals = sealKey.verifies;

      const target = clients[0]!;
      const attacker = generateKeyPairSync('ed25519').privateKey;
      const forged = Array.from({ length: 10_000 }, () => tokenOf(target, { kid: randomBase62(12), signWith: attacker }));
      counting.reads = 0;
      const startedAt = performance.now();
      for (const token of forged) await handler(event(token)).catch(() => undefined);
      const unknownKidsRealTime = counting.reads;
      const realSeconds = (performance.now() - startedAt) / 1000;

      // The same flood spread over 100 s (one token per 10 ms) on an injected clock, fresh authorizer.
      let clock = Date.now();
      const spreadCounting = new CountingDirectory(store);
      const spread = handlerOn(
        new Authorizer({ directory: spreadCounting, policy: POLICY, revocationSeconds: 60, now: () => clock }),
      );
      for (const token of forged) {
        await spread(event(token)).catch(() => undefined);
        clock += 10;
      }

      const ghosts = Array.from({ length: 1_000 }, () => tokenOf(makeClient('EdDSA')));
      counting.reads = 0;
      for (const token of ghosts) await handler(event(token)).catch(() => undefined);
      const unknownClients = counting.reads;
      for (const token of ghosts) await handler(event(token)).catch(() => undefined);
      const unknownClientsAgain = counting.reads - unknownClients;

      table(
        '3. DynamoDB requests (CountingDirectory around the real ClientStore on DynamoDB Local; revocation window 60 s)',
        ['workload', 'requests', 'target'],
        [
          ['first token of each of 100 clients (cold caches)', cold, '100 (one per client)'],
          ['  seal verifications (KMS VerifyMac in AWS) for them', coldSeals, '≤ 1 per read'],
          ['10,000 authorizations over the 100 clients, warm caches', warm, '≤ 100 per window'],
          ['  seal verifications for them', warmSeals, '≤ 1 per read'],
          [`10,000 random unknown kids for one client, real time (${nf(realSeconds, 1)} s)`, unknownKidsRealTime, '≤ 100'],
          ['10,000 random unknown kids for one client, spread over 100 s', spreadCounting.reads, '≤ 100'],
          ['1,000 tokens of 1,000 unknown clientIds (first time)', unknownClients, 'one each (unavoidable)'],
          ['the same 1,000 again (negative cache)', unknownClientsAgain, '0'],
        ],
      );
    }

    // ---- 4. bundle size and module load time ------------------------------------------------------------------
    {
      const outDir = join('node_modules', '.cache', 'keysmith-bench');
      mkdirSync(outDir, { recursive: true });
      // Lambda's Node major when test/node24 is installed (npm test installs it), else this machine's Node.
      const node = existsSync(NODE24) ? NODE24 : process.execPath;
      const nodeVersion = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim();
      const loadMs = (file: string): string => {
        const loads: number[] = [];
        for (let i = 0; i < 7; i++) {
          const ms = execFileSync(
            node,
            [
              '--input-type=module',
              '-e',
              `const t=performance.now();await import(${JSON.stringify(pathToFileURL(file).href)});console.log(performance.now()-t)`,
            ],
            { env: { ...process.env }, encoding: 'utf8' },
          );
          loads.push(Number(ms.trim()));
        }
        loads.sort((a, b) => a - b);
        return nf(loads[3]!, 1);
      };
      const bundle = async (entry: string, name: string, external: string[]) => {
        const outfile = join(outDir, `${name}.mjs`);
        const result = await build({
          entryPoints: [entry],
          bundle: true,
          minify: true,
          platform: 'node',
          format: 'esm',
          target: LAMBDA_NODE_TARGET,
          external,
          outfile,
          metafile: true,
          logLevel: 'error',
          // esbuild's ESM output of CommonJS dependencies needs a require.
          banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
        });
        return [nf(Object.values(result.metafile.outputs)[0]!.bytes / 1024, 1), loadMs(outfile)];
      };
      const shipped = join(outDir, 'shipped');
      const sizes = await buildLambdas((name) => join(shipped, name));
      const sdk = ['@aws-sdk/*', '@smithy/*'];
      table(
        `4. Bundle (esbuild: bundle, minify, platform node, format esm, target ${LAMBDA_NODE_TARGET}) and module load time on Node ${nodeVersion} (median of 7)`,
        ['bundle', 'KiB', 'load ms'],
        [
          [
            'Keysmith authorizer as shipped (scripts/build-lambdas.ts, what the stack deploys)',
            nf(sizes.authorizer! / 1024, 1),
            loadMs(join(shipped, 'authorizer', LAMBDA_ENTRY_FILE)),
          ],
          [
            'Keysmith authorizer, AWS SDK external (nodejs24.x provides it)',
            ...(await bundle('lambdas/authorizer/handler.ts', 'keysmith-sdk-external', sdk)),
          ],
          [
            'minimal aws-jwt-verify authorizer (no DynamoDB)',
            ...(await bundle('bench/minimal-aws-jwt-verify-authorizer.ts', 'aws-jwt-verify-minimal', [])),
          ],
        ],
      );
    }

    // ---- 5. revocation ----------------------------------------------------------------------------------------
    {
      const c = makeClient('EdDSA');
      await put(c);
      // The module's own handler: its authorizer was built from KEYSMITH_REVOCATION_SECONDS=2 at import.
      const handler = lambda.handler as unknown as Handler;
      const repeated = tokenOf(c);
      await handler(event(repeated));
      await new Promise((resolve) => setTimeout(resolve, Math.random() * REVOCATION_SECONDS * 1000));
      await handler(event(repeated));
      const revokedAt = performance.now();
      const revoked = { ...c.client, version: 2 };
      await documentClient.send(
        new TransactWriteCommand({
          TransactItems: await store.writeState({
            client: revoked,
            keys: [{ ...c.key, status: 'revoked', revokedAt: new Date().toISOString(), sealedVersion: 2 }],
            expectedVersion: 1,
          }),
        }),
      );
      let calls = 0;
      let deniedAfter = Number.NaN;
      while (performance.now() - revokedAt < REVOCATION_SECONDS * 3000) {
        calls += 1;
        try {
          await handler(event(calls % 2 === 0 ? repeated : tokenOf(c)));
        } catch (error) {
          if ((error as Error).message === 'Unauthorized') {
            deniedAfter = performance.now() - revokedAt;
            break;
          }
          throw error;
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      table(
        '5. Revocation on a warm authorizer (lambdas/authorizer/handler.ts, KEYSMITH_REVOCATION_SECONDS=2, DynamoDB Local)',
        ['measure', 'ms'],
        [
          ['revoke → first 401 (cached token and fresh tokens, a call every ~5 ms)', nf(deniedAfter)],
          ['configured bound', nf(REVOCATION_SECONDS * 1000)],
          ['calls allowed after the revoke', calls - 1],
        ],
      );
    }

    // ---- 6. access tokens ---------------------------------------------------------------------------------------
    {
      const signer = new LocalTokenSigner(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey);
      const issuerKey = await signer.key();
      const now = Math.floor(Date.now() / 1000);
      const claims = (jti: string): AccessTokenClaims => ({
        iss: ISSUER_BASE,
        sub: 'sc_AAAAAAAAAAAAAAAAAAAAAA',
        client_id: 'sc_AAAAAAAAAAAAAAAAAAAAAA',
        aud: AUDIENCE,
        scope: 'invoices:read',
        tenant_id: 'acme',
        key_id: 'k1234567',
        iat: now,
        exp: now + 3000,
        jti,
      });
      const tokens = await Promise.all(Array.from({ length: FRESH_TOKENS }, () => signAccessToken(signer, claims(randomUUID()))));
      let reads = 0;
      const counting: KeyDirectory = {
        getClientWithKeys: async () => {
          reads += 1;
          return undefined;
        },
      };
      const peer = JwtVerifier.create({
        issuer: ISSUER_BASE,
        audience: AUDIENCE,
        jwksUri: `${ISSUER_BASE}/.well-known/jwks.json`,
      });
      peer.cacheJwks({ keys: [{ ...issuerKey.jwk }] });
      const bare = (token: string) => {
        const dot = token.lastIndexOf('.');
        if (
          !verify('sha256', Buffer.from(token.slice(0, dot)), issuerKey.publicKey, Buffer.from(token.slice(dot + 1), 'base64url'))
        )
          throw new Error('bare verify failed');
      };
      let best = { bare: 0, peer: 0, keysmith: 0 };
      for (let round = 0; round < 5; round++) {
        const authorizer = new Authorizer({
          directory: counting,
          policy: POLICY,
          revocationSeconds: 60,
          issuerKeys: async () => [issuerKey],
        });
        const handler = handlerOn(authorizer);
        await handler(event(await signAccessToken(signer, claims('warm-up')))); // the issuer keys loaded
        const b = opsPerSecondSync(tokens, bare);
        const p = opsPerSecondSync(tokens, (token) => peer.verifySync(token));
        const k = await opsPerSecondAsync(tokens, async (token) => {
          const result = (await handler(event(token))) as { principalId?: string };
          if (result.principalId !== 'sc_AAAAAAAAAAAAAAAAAAAAAA') throw new Error('not allowed');
        });
        best = { bare: Math.max(best.bare, b), peer: Math.max(best.peer, p), keysmith: Math.max(best.keysmith, k) };
      }
      table(
        `6. Keysmith access tokens, RS256 2048 (best of 5 interleaved runs each, one core; the same ${nf(FRESH_TOKENS)} tokens for all three)`,
        ['contender', 'ops/s', 'vs peer', 'vs bare'],
        [
          ['RS256 bare node:crypto verify', nf(best.bare), '', ''],
          ['RS256 aws-jwt-verify verifySync (peer)', nf(best.peer), '', nf(best.peer / best.bare, 2)],
          [
            'RS256 Keysmith handler (issuer keys cached)',
            nf(best.keysmith),
            nf(best.keysmith / best.peer, 2),
            nf(best.keysmith / best.bare, 2),
          ],
          [`DynamoDB reads for the ${nf(5 * (FRESH_TOKENS + 1))} authorizations`, reads, '', ''],
        ],
      );
    }

    // ---- 7. last used -----------------------------------------------------------------------------------------
    {
      const windowSeconds = 300;
      const lastUsedRows: (string | number)[][] = [];
      const c = makeClient('EdDSA');
      for (const [label, spacingMs] of [
        ['within one window (real clock)', 0],
        ['spread over 1 hour (one per 360 ms, injected clock)', 360],
      ] as const) {
        let updates = 0;
        const countingClient = {
          send: (command: unknown) => {
            if (command instanceof UpdateCommand) updates++;
            return documentClient.send(command as UpdateCommand);
          },
        } as unknown as DynamoDBDocumentClient;
        const start = Date.now();
        let clock = start;
        const now = () => (spacingMs === 0 ? Date.now() : clock);
        const usage = new UsageRecorder({ documentClient: countingClient, tableName: TABLES.usage, windowSeconds, now });
        const handler = handlerOn(
          new Authorizer({
            directory: memoryDirectory(c),
            policy: POLICY,
            revocationSeconds: 60,
            now,
            onKeyUsed: (clientId, keyId) => usage.record(clientId, keyId),
          }),
        );
        const issuedAt = Math.floor(start / 1000);
        for (let i = 0; i < 10_000; i++) {
          const result = (await handler(event(tokenOf(c, { iat: issuedAt, exp: issuedAt + 7200 })))) as { principalId?: string };
          if (result.principalId !== c.client.clientId) throw new Error('not allowed');
          clock += spacingMs;
        }
        await usage.flush();
        const spanSeconds = ((spacingMs === 0 ? Date.now() : clock) - start) / 1000;
        const windows = Math.max(1, Math.ceil(spanSeconds / windowSeconds));
        lastUsedRows.push([label, nf(spanSeconds, 1), windows, updates, updates <= windows ? 'met' : 'missed']);
      }
      table(
        `7. Last used: DynamoDB writes per 10,000 authorizations of one key on one warm container (window ${windowSeconds} s, DynamoDB Local)`,
        ['case', 'span (s)', 'windows', 'UpdateItem calls', 'target ≤1 per window'],
        lastUsedRows,
      );
    }
  } finally {
    raw.destroy();
    await dynamodb.stop();
  }
}

await main();
