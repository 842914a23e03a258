/**
 * `npm start`: the whole Keysmith stack on this machine, no AWS account needed.
 * DynamoDB Local (in memory unless KEYSMITH_DATA_DIR is set), the local audit wrapping key, the tables, a
 * bootstrapped platform admin, the HTTP server on PORT serving every route through the Lambda handlers, and the
 * audit function polling the audit table's stream (chain links, `.keysmith/events.jsonl`, `.keysmith/audit-digests/`).
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { ConfigError, loadConfig, loadLocalConfig } from '#shared/config.ts';
import { LocalTokenSigner } from '#shared/token-signers.ts';
import { buildConsole } from '../console/build.ts';
import { type AuditPipeline, startAuditPipeline } from './audit-pipeline.ts';
import { createTables, type DynamoDbLocal, LOCAL_AWS, localClient, startDynamoDbLocal } from './dynamodb-local.ts';

const stateDir = resolve('.keysmith');
const stateFile = resolve(stateDir, 'local.json');
const pidFile = resolve(stateDir, 'local.pid');
const wrappingKeyFile = resolve(stateDir, 'audit-wrapping-key');
const sealKeyFile = resolve(stateDir, 'seal-key');
const tokenSigningKeyFile = resolve(stateDir, 'token-signing-key');
const auditDigestKeyFile = resolve(stateDir, 'audit-digest-key');
const auditDigestDir = resolve(stateDir, 'audit-digests');
const auditAnchorDir = resolve(stateDir, 'audit-anchors');
const eventsFile = resolve(stateDir, 'events.jsonl');
const streamCheckpointFile = resolve(stateDir, 'audit-stream.json');
const consoleDir = resolve(stateDir, 'console');

function portInUse(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}

function runningPid(): number | undefined {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8'));
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

/** The base URL the running instance wrote to .keysmith/local.json. */
function runningBaseUrl(): string | undefined {
  try {
    return (JSON.parse(readFileSync(stateFile, 'utf8')) as { baseUrl?: string }).baseUrl;
  } catch {
    return undefined;
  }
}

/** Writes a file of .keysmith/ readable by its owner only, on every write (a mode given to writeFileSync applies only on creation). */
function writeSecretFile(file: string, content: string): void {
  writeFileSync(file, content, { mode: 0o600 });
  chmodSync(file, 0o600);
}

/** A local stand-in for a KMS key, made once (32 random bytes, mode 0600, under .keysmith/ which git ignores). */
function ensureLocalKey(file: string): string {
  if (!existsSync(file)) writeSecretFile(file, `${randomBytes(32).toString('base64')}\n`);
  chmodSync(file, 0o600);
  return file;
}

/** A local stand-in for a KMS RSA signing key (access tokens, audit digests): an RSA 2048 key, made once, 0600. */
function ensureTokenSigningKey(file: string): string {
  if (!existsSync(file)) writeSecretFile(file, LocalTokenSigner.generatePem());
  chmodSync(file, 0o600);
  return file;
}

async function main(): Promise<void> {
  let local: ReturnType<typeof loadLocalConfig>;
  try {
    local = loadLocalConfig();
  } catch (error) {
    console.error(error instanceof ConfigError ? error.message : error);
    process.exitCode = 1;
    return;
  }
  const { port } = local;
  const pid = runningPid();
  if (pid !== undefined || (await portInUse(port))) {
    console.error(
      pid !== undefined
        ? `Keysmith is already running here (pid ${pid}) on ${runningBaseUrl() ?? 'another port'}. Stop it with Ctrl-C in its terminal first.`
        : `Port ${port} is already in use. Stop what is using it, or start Keysmith on another port: PORT=3001 npm start`,
    );
    process.exitCode = 1;
    return;
  }
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  chmodSync(stateDir, 0o700);
  // The audit wrapping key stands in for the audit KMS key, the seal key for the HMAC key that seals clients and keys.
  process.env.KEYSMITH_LOCAL_WRAPPING_KEY_FILE ??= ensureLocalKey(wrappingKeyFile);
  process.env.KEYSMITH_LOCAL_SEAL_KEY_FILE ??= ensureLocalKey(sealKeyFile);
  // The token-signing key stands in for the KMS RSA key of access tokens; the local authorizer accepts them with it.
  process.env.KEYSMITH_LOCAL_TOKEN_SIGNING_KEY_FILE ??= ensureTokenSigningKey(tokenSigningKeyFile);
  // The audit chain's digests: signed with a key of their own (the KMS RSA key in AWS), kept in a folder (the bucket).
  process.env.KEYSMITH_LOCAL_AUDIT_DIGEST_KEY_FILE ??= ensureTokenSigningKey(auditDigestKeyFile);
  process.env.KEYSMITH_LOCAL_AUDIT_DIGEST_DIR ??= auditDigestDir;
  process.env.KEYSMITH_LOCAL_AUDIT_ANCHOR_DIR ??= auditAnchorDir;
  process.env.KEYSMITH_LOCAL_EVENTS_FILE ??= eventsFile;
  process.env.POWERTOOLS_LOG_LEVEL ??= 'WARN';
  process.env.POWERTOOLS_DEV ??= 'true';
  // Lambda runs Node 24; the SDK's notice about Node 20 says nothing about Keysmith locally.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

  const dataDir = local.dataDir ? resolve(local.dataDir) : undefined;
  // DynamoDB Local's files hold the tables: readable by their owner only when Keysmith makes the folder.
  if (dataDir) mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  else {
    // In memory, the last run's tables are gone: so is what their digests and events described.
    // Only Keysmith's own defaults are cleared, never a folder or file the variables point elsewhere.
    for (const stale of [auditDigestDir, auditAnchorDir, eventsFile, streamCheckpointFile])
      if (
        [
          process.env.KEYSMITH_LOCAL_AUDIT_DIGEST_DIR,
          process.env.KEYSMITH_LOCAL_AUDIT_ANCHOR_DIR,
          process.env.KEYSMITH_LOCAL_EVENTS_FILE,
          streamCheckpointFile,
        ].includes(stale)
      )
        rmSync(stale, { recursive: true, force: true });
  }
  mkdirSync(process.env.KEYSMITH_LOCAL_AUDIT_DIGEST_DIR, { recursive: true, mode: 0o700 });
  // Kept from an earlier run (KEYSMITH_DATA_DIR): owner-only again, as every other file in .keysmith/.
  if (process.env.KEYSMITH_LOCAL_AUDIT_DIGEST_DIR === auditDigestDir) chmodSync(auditDigestDir, 0o700);
  for (const file of [eventsFile, streamCheckpointFile]) if (existsSync(file)) chmodSync(file, 0o600);
  // The console, built from console/src as the package build builds it for the discovery function.
  if (!process.env.KEYSMITH_CONSOLE_DIR) {
    const built = await buildConsole(consoleDir);
    // Nothing in it is secret, but everything in .keysmith/ is owner-only.
    chmodSync(consoleDir, 0o700);
    for (const file of built.files) chmodSync(resolve(consoleDir, file), 0o600);
    process.env.KEYSMITH_CONSOLE_DIR = consoleDir;
    console.log(`Built the console (${(built.gzipBytes / 1024).toFixed(0)} KiB gzipped).`);
  }
  console.log(`Starting DynamoDB Local (${dataDir ? `data in ${dataDir}` : 'in memory'})...`);
  const dynamodb: DynamoDbLocal = await startDynamoDbLocal(dataDir ? { dataDir } : {});
  let stopping = false;
  let pipeline: AuditPipeline | undefined;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    rmSync(pidFile, { force: true });
    await pipeline?.stop();
    await dynamodb.stop();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop(0));
  process.on('SIGTERM', () => void stop(0));
  dynamodb.process.once('exit', () => {
    if (!stopping) {
      console.error('DynamoDB Local stopped unexpectedly; stopping Keysmith.');
      void stop(1);
    }
  });

  try {
    // The handlers read the same variables in AWS; here they point at DynamoDB Local.
    process.env.AWS_ENDPOINT_URL_DYNAMODB = dynamodb.endpoint;
    process.env.AWS_REGION ??= LOCAL_AWS.region;
    process.env.AWS_ACCESS_KEY_ID ??= LOCAL_AWS.credentials.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY ??= LOCAL_AWS.credentials.secretAccessKey;
    const config = loadConfig();
    const client = localClient(dynamodb.endpoint);
    await createTables(client, config.tables);

    // The audit function, as Lambda's event source mapping and schedule would run it.
    const { auditHandler } = await import('../lambdas/audit/run.ts');
    const { createAuditPipeline } = await import('#shared/audit/wiring.ts');
    pipeline = await startAuditPipeline({
      endpoint: dynamodb.endpoint,
      dynamodb: client,
      auditTable: config.tables.audit,
      handler: auditHandler(createAuditPipeline(config)),
      anchorMs: config.auditAnchorSeconds * 1000,
      checkpointFile: streamCheckpointFile,
      onError: (error) => console.error(`audit linking: ${(error as Error).message ?? String(error)} (retrying)`),
    });
    client.destroy();

    const { createLocalServer } = await import('./server.ts');
    const { bootstrapLocalAdmin } = await import('./local-admin.ts');
    const admin = await bootstrapLocalAdmin(config, stateFile, local.adminTenant);
    const server = await createLocalServer({ onRequest: (line) => console.log(line) });
    await new Promise<void>((listening, failed) => {
      server.once('error', failed);
      // Loopback only unless KEYSMITH_HOST says otherwise: the local admin key must not be reachable from the network.
      server.listen(port, local.host, listening);
    });
    writeSecretFile(pidFile, String(process.pid));
    const baseUrl = `http://localhost:${port}`;
    writeSecretFile(
      stateFile,
      `${JSON.stringify(
        {
          baseUrl,
          issuerBase: config.issuerBase,
          audiences: config.audiences,
          dynamodbEndpoint: dynamodb.endpoint,
          tables: config.tables,
          adminAccessKey: admin.accessKey,
        },
        null,
        2,
      )}\n`,
    );
    const audience = config.audiences[0];
    console.log(`
Keysmith is running on ${baseUrl}  (DynamoDB Local at ${dynamodb.endpoint})
${admin.reused ? 'Reusing the platform admin' : 'Bootstrapped a platform admin'} in tenant "${admin.tenantId}" (${admin.clientId}).
Its access key (a secret: shown once, also saved in .keysmith/local.json, mode 0600):

  ${admin.accessKey}

Try it:
  In a browser: ${baseUrl}/console/  (sign in with the access key above; it never leaves the tab)

  ADMIN_TOKEN=$(npx keysmith token --access-key "$(node -p "require('./.keysmith/local.json').adminAccessKey")" --issuer-base ${config.issuerBase} --audience ${audience})
  curl -s ${baseUrl}/v1/whoami -H "Authorization: Bearer $ADMIN_TOKEN"

The audit function links every change into its tenant's chain as it commits: change events go to
${process.env.KEYSMITH_LOCAL_EVENTS_FILE}, signed digests every ${config.auditAnchorSeconds} s to ${process.env.KEYSMITH_LOCAL_AUDIT_DIGEST_DIR}
(now: npx keysmith audit anchor; check: npx keysmith audit verify --tenant ${admin.tenantId}).

The README's quickstart goes on from there. Ctrl-C stops Keysmith and DynamoDB Local.
`);
  } catch (error) {
    console.error(error instanceof ConfigError ? error.message : error);
    await stop(1);
  }
}

await main();
