/** Builds the Lambda bundles, starts one DynamoDB Local for the whole test run, creates the tables, and writes the local wrapping and seal keys. */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { createTables, localClient, startDynamoDbLocal } from '../local/dynamodb-local.ts';
import { buildLambdas } from '../scripts/build-lambdas.ts';
import { LocalTokenSigner } from '../shared/token-signers.ts';
import { ensureNode24 } from './support/node24.ts';

export const TEST_TABLES = { main: 'keysmith-test-main', audit: 'keysmith-test-audit' };

declare module 'vitest' {
  export interface ProvidedContext {
    dynamodbEndpoint: string;
    tables: { main: string; audit: string };
    wrappingKeyFile: string;
    sealKeyFile: string;
    tokenSigningKeyFile: string;
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
  return async () => {
    await dynamodb.stop();
    rmSync(dir, { recursive: true, force: true });
  };
}
