/**
 * Builds the Lambda bundles, starts one DynamoDB Local for the whole test run, creates the tables, writes the local
 * wrapping, seal, token and digest keys, and runs the audit function on the audit table's stream for the whole run
 * (as `npm start` does): records are linked, change events appended, digests written where the tests can read them.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { type AuditPipeline, startAuditPipeline } from '../local/audit-pipeline.ts';
import { createTables, LOCAL_AWS, localClient, startDynamoDbLocal } from '../local/dynamodb-local.ts';
import { buildLambdas } from '../scripts/build-lambdas.ts';
import { LocalTokenSigner } from '../shared/token-signers.ts';
import { ensureNode24 } from './support/node24.ts';

export const TEST_TABLES = { main: 'keysmith-test-main', audit: 'keysmith-test-audit', usage: 'keysmith-test-usage' };

declare module 'vitest' {
  export interface ProvidedContext {
    dynamodbEndpoint: string;
    tables: { main: string; audit: string; usage: string };
    wrappingKeyFile: string;
    sealKeyFile: string;
    tokenSigningKeyFile: string;
    /** The run's audit digests: the folder they are written to and the key that signs them (PEM). */
    auditDigestDir: string;
    auditDigestKeyFile: string;
    /** The change events the run's audit function appends (contract §12). */
    eventsFile: string;
    /** Where the run's audit function marks the tenants to anchor (the local anchor queue). */
    auditAnchorDir: string;
  }
}

export default async function setup(project: TestProject) {
  // The CDK tests synthesize (and the artifact tests run) the same prebuilt bundles `cdk deploy` uploads.
  await buildLambdas();
  const node24 = ensureNode24();
  if (!node24.startsWith('v24.')) throw new Error(`test/node24 brought Node ${node24}, not Lambda's Node 24`);
  const dynamodb = await startDynamoDbLocal();
  const client = localClient(dynamodb.endpoint);
  await createTables(client, TEST_TABLES);
  client.destroy();
  const dir = mkdtempSync(join(tmpdir(), 'keysmith-test-'));
  const wrappingKeyFile = join(dir, 'audit-wrapping-key');
  writeFileSync(wrappingKeyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
  const sealKeyFile = join(dir, 'seal-key');
  writeFileSync(sealKeyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
  project.provide('dynamodbEndpoint', dynamodb.endpoint);
  project.provide('tables', TEST_TABLES);
  project.provide('wrappingKeyFile', wrappingKeyFile);
  project.provide('sealKeyFile', sealKeyFile);
  const tokenSigningKeyFile = join(dir, 'token-signing-key');
  writeFileSync(tokenSigningKeyFile, LocalTokenSigner.generatePem(), { mode: 0o600 });
  project.provide('tokenSigningKeyFile', tokenSigningKeyFile);
  const auditDigestKeyFile = join(dir, 'audit-digest-key');
  writeFileSync(auditDigestKeyFile, LocalTokenSigner.generatePem(), { mode: 0o600 });
  const auditDigestDir = join(dir, 'audit-digests');
  mkdirSync(auditDigestDir);
  const eventsFile = join(dir, 'events.jsonl');
  const auditAnchorDir = join(dir, 'audit-anchors');
  project.provide('auditAnchorDir', auditAnchorDir);
  project.provide('auditDigestKeyFile', auditDigestKeyFile);
  project.provide('auditDigestDir', auditDigestDir);
  project.provide('eventsFile', eventsFile);
  const pipeline = await startTestAuditPipeline(dynamodb.endpoint, {
    KEYSMITH_AUDIT_TABLE: TEST_TABLES.audit,
    KEYSMITH_LOCAL_WRAPPING_KEY_FILE: wrappingKeyFile,
    KEYSMITH_LOCAL_AUDIT_DIGEST_KEY_FILE: auditDigestKeyFile,
    KEYSMITH_LOCAL_AUDIT_DIGEST_DIR: auditDigestDir,
    KEYSMITH_LOCAL_EVENTS_FILE: eventsFile,
    KEYSMITH_LOCAL_AUDIT_ANCHOR_DIR: auditAnchorDir,
  });
  return async () => {
    await pipeline.stop();
    await dynamodb.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}

/**
 * The audit function over the run's audit table, quiet: tests tamper with tables on purpose, and what it reports is
 * checked through `audit verify`, not its log. Anchoring is left to the tests (they call the anchor when they need a
 * digest), so the schedule is off.
 */
async function startTestAuditPipeline(endpoint: string, env: Record<string, string>): Promise<AuditPipeline> {
  const { logger } = await import('../shared/logger.ts');
  logger.setLogLevel('SILENT');
  const { loadConfig } = await import('../shared/config.ts');
  const { createDocumentClient } = await import('../shared/dynamodb.ts');
  const { createAuditPipeline } = await import('../shared/audit/wiring.ts');
  const { auditHandler } = await import('../lambdas/audit/run.ts');
  const config = loadConfig({ KEYSMITH_ISSUER_BASE: 'http://keysmith.test', KEYSMITH_AUDIENCES: 'http://keysmith.test', ...env });
  const documentClient = createDocumentClient({ ...LOCAL_AWS, endpoint });
  const metrics = { addMetric() {}, publishStoredMetrics() {} } as unknown as Parameters<typeof auditHandler>[1];
  const dynamodb = localClient(endpoint);
  return startAuditPipeline({
    endpoint,
    dynamodb,
    auditTable: env.KEYSMITH_AUDIT_TABLE as string,
    handler: auditHandler(createAuditPipeline(config, { documentClient, onTamper: () => {} }), metrics),
    pollMs: 50,
    anchorMs: 24 * 3600_000,
  });
}
