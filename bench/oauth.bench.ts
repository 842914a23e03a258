/**
 * The token issuer's benchmark (`npm run bench:oauth`, contract §9): a script, not a timed test. One run prints
 *  1. the token endpoint's latency (p50/p99, sequential) on DynamoDB Local (started here), beside a baseline of
 *     the same DynamoDB work done bare (one consistent Query and one conditional Put), and KMS calls per issued
 *     token, counted by a KMS client that signs in-process;
 *  2. access-token verification throughput (RS256, fresh distinct tokens): bare node:crypto, aws-jwt-verify
 *     verifySync (JWKS cached) and Keysmith's authorizer on the same tokens, and the DynamoDB reads it makes (0).
 */
import { constants, createHash, generateKeyPairSync, privateEncrypt, randomBytes, randomUUID, verify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetPublicKeyCommand, type KMSClient, SignCommand } from '@aws-sdk/client-kms';
import { PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { JwtVerifier } from 'aws-jwt-verify';
import { SignJWT } from 'jose';
import { createTables, LOCAL_AWS, localClient, startDynamoDbLocal } from '#local/dynamodb-local.ts';
import { parseAccessKey } from '#shared/access-key.ts';
import { signAccessToken } from '#shared/access-token.ts';
import { Authorizer } from '#shared/authorizer.ts';
import { loadConfig } from '#shared/config.ts';
import { createDocumentClient } from '#shared/dynamodb.ts';
import { CLIENT_ASSERTION_TYPE, DynamoJtiStore, parseTokenRequest, TokenIssuer } from '#shared/oauth.ts';
import { KmsTokenSigner } from '#shared/token-signers.ts';
import { createManagement, createStore } from '#shared/wiring.ts';

const ISSUER_BASE = 'https://keysmith.bench';
const AUDIENCE = 'https://api.bench';
const TABLES = { main: 'keysmith-bench-oauth-main', audit: 'keysmith-bench-oauth-audit', usage: 'keysmith-bench-oauth-usage' };
const REQUESTS = 400;
const FRESH_TOKENS = 4_000;

const nf = (n: number, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

function table(title: string, header: string[], rows: (string | number)[][]): void {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(`\n${title}\n${line(header)}\n|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const r of cells.slice(1)) console.log(line(r));
}

/** The DER prefix of a SHA-256 DigestInfo: PKCS#1 v1.5 over it and a digest is what KMS's DIGEST signing does. */
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/** A KMS client that signs in-process with one RSA key and counts every call by its command. */
function countingKms() {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const calls = new Map<string, number>();
  const client = {
    async send(command: unknown) {
      const name = (command as object).constructor.name;
      calls.set(name, (calls.get(name) ?? 0) + 1);
      if (command instanceof GetPublicKeyCommand)
        return { KeySpec: 'RSA_2048', PublicKey: rsa.publicKey.export({ format: 'der', type: 'spki' }) };
      if (command instanceof SignCommand) {
        const digestInfo = Buffer.concat([SHA256_DIGEST_INFO, command.input.Message as Uint8Array]);
        return { Signature: privateEncrypt({ key: rsa.privateKey, padding: constants.RSA_PKCS1_PADDING }, digestInfo) };
      }
      throw new Error(`unexpected KMS command ${name}`);
    },
  } as unknown as KMSClient;
  return { client, calls, rsa };
}

function opsPerSecond(tokens: string[], run: (token: string) => unknown): number {
  const started = performance.now();
  for (const token of tokens) run(token);
  return tokens.length / ((performance.now() - started) / 1000);
}

async function opsPerSecondAsync(tokens: string[], run: (token: string) => Promise<unknown>): Promise<number> {
  const started = performance.now();
  for (const token of tokens) await run(token);
  return tokens.length / ((performance.now() - started) / 1000);
}

async function main(): Promise<void> {
  console.log(`bench:oauth on Node ${process.version}, ${REQUESTS} token requests, ${FRESH_TOKENS} access tokens`);
  const dynamodb = await startDynamoDbLocal();
  const dir = mkdtempSync(join(tmpdir(), 'keysmith-bench-oauth-'));
  try {
    Object.assign(process.env, {
      AWS_REGION: LOCAL_AWS.region,
      AWS_ACCESS_KEY_ID: LOCAL_AWS.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_AWS.credentials.secretAccessKey,
      AWS_ENDPOINT_URL_DYNAMODB: dynamodb.endpoint,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
    });
    const setup = localClient(dynamodb.endpoint);
    await createTables(setup, TABLES);
    setup.destroy();
    const wrappingKeyFile = join(dir, 'wrapping-key');
    const sealKeyFile = join(dir, 'seal-key');
    writeFileSync(wrappingKeyFile, randomBytes(32).toString('base64'));
    writeFileSync(sealKeyFile, randomBytes(32).toString('base64'));
    const config = loadConfig({
      ...process.env,
      KEYSMITH_ISSUER_BASE: ISSUER_BASE,
      KEYSMITH_AUDIENCES: AUDIENCE,
      KEYSMITH_MAIN_TABLE: TABLES.main,
      KEYSMITH_AUDIT_TABLE: TABLES.audit,
      KEYSMITH_LOCAL_WRAPPING_KEY_FILE: wrappingKeyFile,
      KEYSMITH_LOCAL_SEAL_KEY_FILE: sealKeyFile,
    });
    const documentClient = createDocumentClient();
    const { service } = createManagement(config, { documentClient });
    const actor = { type: 'system' as const, name: 'bench' };
    const client = await service.createClient(actor, 'bench', { name: 'bench', scopes: ['invoices:read', 'invoices:write'] });
    const { accessKey } = await service.createKey(actor, 'bench', client.clientId, {});
    const key = parseAccessKey(accessKey as string);

    // 1. The token endpoint.
    const kms = countingKms();
    const signer = new KmsTokenSigner(kms.client, 'arn:aws:kms:bench:key');
    const issuer = new TokenIssuer({
      store: createStore(config, { documentClient }),
      jti: new DynamoJtiStore(documentClient, TABLES.main),
      signer,
      issuerBase: ISSUER_BASE,
      audiences: [AUDIENCE],
      accessTokenSeconds: 300,
      clockSkewSeconds: 60,
    });
    const assertion = () =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'Ed25519', kid: key.keyId })
        .setIssuer(key.clientId)
        .setSubject(key.clientId)
        .setAudience(ISSUER_BASE)
        .setJti(randomUUID())
        .setIssuedAt()
        .setExpirationTime('60s')
        .sign(key.privateKey);
    const body = async () =>
      new URLSearchParams({
        grant_type: 'client_credentials',
        client_assertion_type: CLIENT_ASSERTION_TYPE,
        client_assertion: await assertion(),
      }).toString();
    const bodies = await Promise.all(Array.from({ length: REQUESTS + 20 }, body));
    const issuerMs: number[] = [];
    let issued = 0;
    for (const [i, form] of bodies.entries()) {
      const started = performance.now();
      const answer = await issuer.token(parseTokenRequest('application/x-www-form-urlencoded', form));
      if (i >= 20) issuerMs.push(performance.now() - started); // the first 20 warm the code and connections
      if (answer.access_token) issued += 1;
    }
    // The baseline: the same DynamoDB work, bare (a consistent Query of the client's partition, a conditional Put).
    const baselineMs: number[] = [];
    for (let i = 0; i < REQUESTS + 20; i++) {
      const started = performance.now();
      await documentClient.send(
        new QueryCommand({
          TableName: TABLES.main,
          KeyConditionExpression: 'pk = :pk',
          ExpressionAttributeValues: { ':pk': `CLIENT#${client.clientId}` },
          ConsistentRead: true,
        }),
      );
      await documentClient.send(
        new PutCommand({
          TableName: TABLES.main,
          Item: { pk: `JTI#bench#${createHash('sha256').update(String(i)).digest('base64url')}`, sk: 'JTI', expiresAtEpoch: 0 },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      if (i >= 20) baselineMs.push(performance.now() - started);
    }
    issuerMs.sort((a, b) => a - b);
    baselineMs.sort((a, b) => a - b);
    table(
      `1. Token endpoint on DynamoDB Local, sequential (${REQUESTS} requests after 20 to warm up)`,
      ['', 'p50 ms', 'p99 ms'],
      [
        [
          'baseline: consistent Query + conditional Put, bare',
          nf(percentile(baselineMs, 50), 2),
          nf(percentile(baselineMs, 99), 2),
        ],
        ['TokenIssuer.token (parse, verify, read, jti, sign)', nf(percentile(issuerMs, 50), 2), nf(percentile(issuerMs, 99), 2)],
      ],
    );
    table(
      `   KMS calls for ${issued} issued tokens (counting client)`,
      ['command', 'calls', 'per token'],
      [...kms.calls.entries()].map(([name, count]) => [name, count, nf(count / issued, 3)]),
    );

    // 2. Access-token verification: the same fresh tokens for every contender.
    const { kid, publicKey, jwk } = await signer.key();
    const now = Math.floor(Date.now() / 1000);
    const tokens = await Promise.all(
      Array.from({ length: FRESH_TOKENS }, () =>
        signAccessToken(signer, {
          iss: ISSUER_BASE,
          sub: client.clientId,
          client_id: client.clientId,
          aud: AUDIENCE,
          scope: 'invoices:read',
          tenant_id: 'bench',
          key_id: key.keyId,
          iat: now,
          exp: now + 300,
          jti: randomUUID(),
        }),
      ),
    );
    const bare = opsPerSecond(tokens, (token) => {
      const dot = token.lastIndexOf('.');
      return verify('sha256', Buffer.from(token.slice(0, dot)), publicKey, Buffer.from(token.slice(dot + 1), 'base64url'));
    });
    const aws = JwtVerifier.create({ issuer: ISSUER_BASE, audience: AUDIENCE, jwksUri: `${ISSUER_BASE}/.well-known/jwks.json` });
    aws.cacheJwks({ keys: [{ ...jwk }] });
    const awsRate = opsPerSecond(tokens, (token) => aws.verifySync(token));
    let reads = 0;
    const authorizer = new Authorizer({
      directory: {
        getClientWithKeys: async () => {
          reads += 1;
          return undefined;
        },
      },
      policy: { issuerBase: ISSUER_BASE, audiences: [AUDIENCE], maxTokenLifetimeSeconds: 86_400, clockSkewSeconds: 60 },
      revocationSeconds: 60,
      issuerKeys: async () => [{ kid, publicKey, jwk }],
    });
    await authorizer.authorize(tokens[0]!); // loads the issuer keys once
    const keysmithRate = await opsPerSecondAsync(tokens.slice(1), async (token) => {
      const result = await authorizer.authorize(token);
      if (!result.allow) throw new Error(`bench token denied: ${result.reason}`);
    });
    table(
      `2. Access tokens (RS256), ${FRESH_TOKENS} fresh distinct tokens, single thread`,
      ['verifier', 'tokens/s', 'vs aws-jwt-verify'],
      [
        ['bare node:crypto verify (signature only)', nf(bare), nf(bare / awsRate, 2)],
        ['aws-jwt-verify verifySync, JWKS cached (baseline)', nf(awsRate), '1.00'],
        ["Keysmith's authorizer (Authorizer.authorize)", nf(keysmithRate), nf(keysmithRate / awsRate, 2)],
      ],
    );
    console.log(`   DynamoDB reads by the authorizer for access tokens: ${reads} (target 0); target ratio >= 1.00`);
  } finally {
    await dynamodb.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
