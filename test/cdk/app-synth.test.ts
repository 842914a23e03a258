/** `npx cdk synth` of the real app, as an operator runs it: offline, bundling with the local esbuild, cdk-nag on. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const output = mkdtempSync(join(tmpdir(), 'keysmith-synth-'));

afterAll(() => rmSync(output, { recursive: true, force: true }));

it('npx cdk synth --quiet exits 0 offline and writes the Keysmith template', () => {
  const env: NodeJS.ProcessEnv = { ...process.env, CI: 'true', CDK_DEFAULT_REGION: 'us-east-1' };
  // No credentials and no account: synth must not need AWS.
  for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE', 'CDK_DEFAULT_ACCOUNT'])
    delete env[name];
  const result = spawnSync(
    'npx',
    ['cdk', 'synth', '--quiet', '--output', output, '-c', 'auditAnchorMinutes=10', '-c', 'auditDigestRetentionDays=730'],
    { cwd: root, env, encoding: 'utf8' },
  );
  expect(result.stderr + result.stdout).not.toMatch(/AwsSolutions-/);
  expect(result.status, result.stderr).toBe(0);
  const templateFile = join(output, 'Keysmith.template.json');
  expect(existsSync(templateFile)).toBe(true);
  const template = JSON.parse(readFileSync(templateFile, 'utf8'));
  expect(Object.keys(template.Outputs)).toEqual(
    expect.arrayContaining(['AuthorizerFunctionArn', 'MainTableName', 'EventBusName', 'AuditDigestBucket', 'AuditDigestKeyArn']),
  );
  // The audit context values reach the schedule and the bucket's Object Lock.
  const resources = Object.values(template.Resources) as { Type: string; Properties: any }[];
  expect(resources.find((r) => r.Type === 'AWS::Events::Rule')?.Properties.ScheduleExpression).toBe('rate(10 minutes)');
  const bucket = resources.find((r) => r.Type === 'AWS::S3::Bucket' && r.Properties.ObjectLockEnabled);
  expect(bucket?.Properties.ObjectLockConfiguration.Rule.DefaultRetention).toEqual({ Mode: 'COMPLIANCE', Days: 730 });
}, 180_000);
