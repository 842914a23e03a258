/**
 * The Keysmith stack's security properties, read from the template the app synthesizes (bundled with the
 * local esbuild, once for the file), and cdk-nag's AwsSolutions verdict on it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, type CfnElement, Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import type { CfnRole } from 'aws-cdk-lib/aws-iam';
import { Key } from 'aws-cdk-lib/aws-kms';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ForbiddenError, ServiceUnavailableError, toProblem, UnauthorizedError } from '#shared/errors.ts';
import { ROUTES } from '#shared/routes.ts';
import { TABLE_DEFINITIONS } from '#shared/tables.ts';
import { AUDIT_ENCRYPTION_PURPOSE, type Keysmith, type KeysmithFunctionName, type KeysmithProps } from '../../cdk/keysmith.ts';
import { createKeysmithApp } from '../../cdk/keysmith-app.ts';
import { KEYSMITH_OUTPUTS, KeysmithStack } from '../../cdk/keysmith-stack.ts';

type Json = Record<string, any>;
interface Statement {
  Action: string | string[];
  Resource: unknown;
  Effect: string;
  Condition?: Json;
}

const FUNCTIONS: KeysmithFunctionName[] = ['authorizer', 'management', 'discovery', 'token', 'audit'];
/** The functions behind the REST API (and its authorizer): every one reads or writes the main table. */
const API_FUNCTIONS: KeysmithFunctionName[] = ['authorizer', 'management', 'discovery', 'token'];
const WRITE_ACTION = /^dynamodb:(PutItem|UpdateItem|DeleteItem|BatchWriteItem|ConditionCheckItem|\*)$/;

let outdir: string;
let stack: KeysmithStack;
let keysmith: Keysmith;
let template: Template;
let resources: Record<string, Json>;
let validationReport: { pluginReports: { pluginName: string; violations: { ruleName: string }[] }[] };

const logicalId = (construct: IConstruct): string => stack.getLogicalId((construct.node.defaultChild ?? construct) as CfnElement);
const ref = (construct: IConstruct) => ({ Ref: logicalId(construct) });
const arnOf = (construct: IConstruct) => ({ 'Fn::GetAtt': [logicalId(construct), 'Arn'] });
const actions = (statement: Statement): string[] => [statement.Action].flat();
const resourcesOf = (statement: Statement): unknown[] => [statement.Resource].flat();
const contains = (value: unknown, fragment: unknown): boolean => JSON.stringify(value).includes(JSON.stringify(fragment));

function fn(name: KeysmithFunctionName) {
  return keysmith.functionFor(name);
}

/** Every IAM statement attached to a function's execution role, from all its policies. */
function roleStatements(name: KeysmithFunctionName): Statement[] {
  const roleId = stack.getLogicalId(fn(name).role!.node.defaultChild as CfnRole);
  const statements: Statement[] = [];
  for (const resource of Object.values(resources)) {
    if (resource.Type === 'AWS::IAM::Policy' && contains(resource.Properties.Roles, { Ref: roleId }))
      statements.push(...resource.Properties.PolicyDocument.Statement);
  }
  const role = resources[roleId]!;
  for (const policy of role.Properties.Policies ?? []) statements.push(...policy.PolicyDocument.Statement);
  expect(role.Properties.ManagedPolicyArns ?? []).toEqual([]);
  return statements;
}

function environment(name: KeysmithFunctionName): Record<string, unknown> {
  return resources[logicalId(fn(name))]!.Properties.Environment.Variables;
}

beforeAll(() => {
  outdir = mkdtempSync(join(tmpdir(), 'keysmith-cdk-'));
  ({ stack } = createKeysmithApp({ outdir }));
  keysmith = stack.keysmith;
  const assembly = stack.node.root instanceof App ? stack.node.root.synth() : undefined;
  if (!assembly) throw new Error('the stack is not in an App');
  const json = assembly.getStackArtifact(stack.artifactId).template as Json;
  template = Template.fromJSON(json);
  resources = json.Resources;
  validationReport = JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8'));
});

afterAll(() => {
  if (outdir) rmSync(outdir, { recursive: true, force: true });
});

describe('cdk-nag AwsSolutions', () => {
  it('reports no unacknowledged finding, error or warning', () => {
    const violations = validationReport.pluginReports.flatMap((report) =>
      report.violations.map((violation) => `${report.pluginName}: ${violation.ruleName}`),
    );
    expect(violations).toEqual([]);
  });

  it('is really checking: an unrotated key in another app is reported', () => {
    const dir = mkdtempSync(join(tmpdir(), 'keysmith-nag-'));
    try {
      const app = new App({ outdir: dir });
      const probe = new Stack(app, 'Probe', { env: { region: 'us-east-1' } });
      new Key(probe, 'Unrotated', { enableKeyRotation: false });
      Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
      let failure: unknown;
      try {
        app.synth();
      } catch (error) {
        failure = error;
      }
      const report = readFileSync(join(dir, 'validation-report.json'), 'utf8');
      expect(report).toContain('AwsSolutions-KMS5');
      expect(failure).toBeDefined();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('encryption and data protection', () => {
  it('rotates both KMS keys', () => {
    for (const key of [keysmith.tableKey, keysmith.auditKey])
      expect(resources[logicalId(key)]!.Properties.EnableKeyRotation).toBe(true);
  });

  it('creates every table of shared/tables.ts on demand, with PITR, deletion protection and SSE under the table key', () => {
    for (const definition of TABLE_DEFINITIONS) {
      const table = { main: keysmith.mainTable, audit: keysmith.auditTable, usage: keysmith.usageTable }[definition.role];
      const properties = resources[logicalId(table)]!.Properties;
      expect(properties.BillingMode).toBe('PAY_PER_REQUEST');
      expect(properties.KeySchema).toEqual([
        { AttributeName: definition.partitionKey, KeyType: 'HASH' },
        { AttributeName: definition.sortKey, KeyType: 'RANGE' },
      ]);
      expect((properties.GlobalSecondaryIndexes ?? []).map((index: Json) => index.IndexName)).toEqual(
        definition.globalIndexes.map((index) => index.name),
      );
      expect(properties.SSESpecification).toEqual({ SSEEnabled: true, SSEType: 'KMS' });
      const [replica] = properties.Replicas;
      expect(replica.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
      expect(replica.DeletionProtectionEnabled).toBe(true);
      expect(replica.SSESpecification).toEqual({ KMSMasterKeyId: arnOf(keysmith.tableKey) });
      if (definition.timeToLiveAttribute)
        expect(properties.TimeToLiveSpecification).toEqual({ AttributeName: definition.timeToLiveAttribute, Enabled: true });
      else expect(properties.TimeToLiveSpecification).toBeUndefined();
    }
  });

  it('retains tables, keys and the digest bucket when they leave the stack', () => {
    for (const construct of [
      keysmith.mainTable,
      keysmith.auditTable,
      keysmith.tableKey,
      keysmith.auditKey,
      keysmith.auditDigestKey,
      keysmith.auditDigestBucket,
    ])
      expect(resources[logicalId(construct)]!.DeletionPolicy).toBe('Retain');
  });
});

describe('least privilege', () => {
  it('gives no function a wildcard resource except for X-Ray, which has no resource-level permissions', () => {
    for (const name of FUNCTIONS)
      for (const statement of roleStatements(name)) {
        if (resourcesOf(statement).includes('*'))
          expect(actions(statement).every((action) => action.startsWith('xray:'))).toBe(true);
        expect(actions(statement).some((action) => action.endsWith('*'))).toBe(false);
      }
  });

  for (const name of ['authorizer', 'discovery'] as const) {
    it(`lets the ${name} only query the main table, decrypt through DynamoDB, verify seals (never make one) and read the token-signing public keys`, () => {
      const statements = roleStatements(name);
      const all = statements.flatMap(actions);
      // The authorizer records key uses (contract §11): one UpdateItem, on the usage table alone.
      const writes = statements.filter((s) => actions(s).some((action) => WRITE_ACTION.test(action)));
      if (name === 'authorizer') {
        expect(writes.flatMap(actions)).toEqual(['dynamodb:UpdateItem']);
        expect(writes.flatMap(resourcesOf)).toEqual([arnOf(keysmith.usageTable)]);
        // Confined to client usage items and their key_* attributes.
        for (const s of writes)
          expect(s.Condition).toEqual({
            'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['CLIENT#*'], 'dynamodb:Attributes': ['pk', 'sk', 'key_*'] },
          });
      } else expect(writes).toEqual([]);
      // Writing through DynamoDB to its own table needs the table key's encrypt side, through DynamoDB only.
      const tableKeyWrites = name === 'authorizer' ? ['kms:Encrypt', 'kms:GenerateDataKey'] : [];
      expect([...new Set(all.filter((action) => action.startsWith('kms:')))].sort()).toEqual(
        ['kms:Decrypt', 'kms:DescribeKey', 'kms:GetPublicKey', 'kms:VerifyMac', ...tableKeyWrites].sort(),
      );
      const publicKeys = statements.filter((s) => actions(s).includes('kms:GetPublicKey'));
      expect(publicKeys.flatMap(actions)).toEqual(['kms:GetPublicKey']);
      expect(publicKeys.flatMap(resourcesOf)).toEqual([arnOf(keysmith.tokenSigningKey)]);
      if (name === 'discovery') expect(all).not.toContain('kms:GenerateDataKey');
      expect(all).not.toContain('kms:GenerateMac');
      for (const statement of statements.filter((s) => actions(s).some((a) => a.startsWith('dynamodb:')))) {
        const usage = JSON.stringify(resourcesOf(statement)) === JSON.stringify([arnOf(keysmith.usageTable)]);
        expect(actions(statement)).toEqual([usage ? 'dynamodb:UpdateItem' : 'dynamodb:Query']);
        if (!usage) expect(resourcesOf(statement)).toEqual([arnOf(keysmith.mainTable)]);
      }
      for (const kms of statements.filter((s) => actions(s).includes('kms:Decrypt'))) {
        expect(resourcesOf(kms)).toEqual([arnOf(keysmith.tableKey)]);
        expect(JSON.stringify(kms.Condition?.StringEquals?.['kms:ViaService'])).toContain('dynamodb.us-east-1.');
      }
      const seals = statements.filter((s) => actions(s).includes('kms:VerifyMac'));
      expect(seals.flatMap(resourcesOf)).toEqual([arnOf(keysmith.sealKey)]);
      expect(contains(statements, arnOf(keysmith.auditKey))).toBe(false);
      expect(contains(statements, arnOf(keysmith.auditTable))).toBe(false);
    });
  }

  it('lets no function that reads tokens write anything that grants access: the authorizer and the token function write uses to the usage table, and nothing of a client or key', () => {
    for (const name of ['authorizer', 'token'] as const) {
      const statements = roleStatements(name);
      const onMain = statements.filter((s) => contains(resourcesOf(s), arnOf(keysmith.mainTable)));
      const mainWrites = onMain.filter((s) => actions(s).some((action) => WRITE_ACTION.test(action)));
      // The token function's one write there is a jti record, confined by IAM to the JTI# partitions (test below).
      for (const statement of mainWrites) {
        expect(name).toBe('token');
        expect(statement.Condition?.['ForAllValues:StringLike']?.['dynamodb:LeadingKeys']).toEqual(['JTI#*']);
      }
      const usage = statements.filter((s) => contains(resourcesOf(s), arnOf(keysmith.usageTable)));
      expect(usage.flatMap(actions)).toEqual(['dynamodb:UpdateItem']);
      expect(environment(name)).toMatchObject({
        KEYSMITH_USAGE_TABLE: ref(keysmith.usageTable),
        KEYSMITH_LAST_USED_SECONDS: '300',
      });
      expect(statements.flatMap(actions)).not.toContain('kms:GenerateMac');
    }
    // What grants access is in the main table under the seal key; the usage table is not sealed and holds no key.
    expect(
      roleStatements('management')
        .filter((s) => contains(resourcesOf(s), arnOf(keysmith.usageTable)))
        .flatMap(actions)
        .sort(),
    ).toEqual(['dynamodb:BatchGetItem', 'dynamodb:DeleteItem', 'dynamodb:GetItem']);
    expect(roleStatements('discovery').some((s) => contains(resourcesOf(s), arnOf(keysmith.usageTable)))).toBe(false);
    expect(roleStatements('audit').some((s) => contains(resourcesOf(s), arnOf(keysmith.usageTable)))).toBe(false);
  });

  it('lets the management function call exactly the table actions its code uses, and make and check seals', () => {
    const statements = roleStatements('management');
    const onResource = (resource: unknown) =>
      [
        ...new Set(
          statements
            .filter((s) => resourcesOf(s).some((r) => JSON.stringify(r) === JSON.stringify(resource)))
            .flatMap(actions)
            .filter((action) => action.startsWith('dynamodb:')),
        ),
      ].sort();
    expect(onResource(arnOf(keysmith.mainTable))).toEqual([
      'dynamodb:BatchWriteItem',
      'dynamodb:ConditionCheckItem',
      'dynamodb:DeleteItem',
      'dynamodb:GetItem',
      'dynamodb:PutItem',
      'dynamodb:Query',
    ]);
    // Audit records and heads are only ever put, never updated or deleted by Keysmith.
    expect(onResource(arnOf(keysmith.auditTable))).toEqual(['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:Query']);
    for (const index of ['byTenant', 'byRole'])
      expect(onResource({ 'Fn::Join': ['', [arnOf(keysmith.mainTable), `/index/${index}`]] }), index).toEqual(['dynamodb:Query']);
    expect(statements.flatMap(actions)).not.toContain('dynamodb:Scan');
    expect(statements.flatMap(actions)).not.toContain('dynamodb:UpdateItem');
    const seals = statements.filter((s) => contains(resourcesOf(s), arnOf(keysmith.sealKey)));
    expect(seals.flatMap(actions).sort()).toEqual(['kms:GenerateMac', 'kms:VerifyMac']);
  });

  it('makes the seal key an HMAC_256 key for GENERATE_VERIFY_MAC, named to each function of the main table by its variable', () => {
    const properties = resources[logicalId(keysmith.sealKey)]!.Properties;
    expect(properties.KeySpec).toBe('HMAC_256');
    expect(properties.KeyUsage).toBe('GENERATE_VERIFY_MAC');
    for (const name of API_FUNCTIONS) expect(environment(name).KEYSMITH_SEAL_KMS_KEY_ARN).toEqual(arnOf(keysmith.sealKey));
    expect(environment('audit')).not.toHaveProperty('KEYSMITH_SEAL_KMS_KEY_ARN');
  });

  it('alarms on any tampered item each function refuses', () => {
    const alarms = Object.values(resources).filter(
      (r) => r.Type === 'AWS::CloudWatch::Alarm' && r.Properties.MetricName === 'TamperDetected',
    );
    expect(alarms.map((a) => a.Properties.Dimensions[0].Value).sort()).toEqual([
      'keysmith-audit',
      'keysmith-authorizer',
      'keysmith-discovery',
      'keysmith-management',
      'keysmith-token',
    ]);
    for (const alarm of alarms) expect(alarm.Properties.Threshold).toBe(1);
  });

  it('lets the management function use the audit key only under the audit encryption context', () => {
    const statements = roleStatements('management').filter((s) => contains(resourcesOf(s), arnOf(keysmith.auditKey)));
    expect(statements.flatMap(actions).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
    for (const statement of statements) {
      expect(resourcesOf(statement)).toEqual([arnOf(keysmith.auditKey)]);
      expect(statement.Condition).toEqual({ StringEquals: { 'kms:EncryptionContext:purpose': AUDIT_ENCRYPTION_PURPOSE } });
    }
    // The table key is only ever used through DynamoDB.
    for (const statement of roleStatements('management').filter((s) => contains(resourcesOf(s), arnOf(keysmith.tableKey))))
      expect(statement.Condition?.StringEquals?.['kms:ViaService']).toBeDefined();
  });

  it('lets each function write logs only to its own log group', () => {
    for (const name of FUNCTIONS) {
      const logs = roleStatements(name).filter((s) => actions(s).some((a) => a.startsWith('logs:')));
      expect(logs.flatMap(resourcesOf)).toEqual([arnOf(fn(name).logGroup)]);
    }
  });
});

describe('the token issuer (contract §9)', () => {
  it('signs with an RSA_2048 SIGN_VERIFY KMS key, retained, that only the token function may use to sign', () => {
    const properties = resources[logicalId(keysmith.tokenSigningKey)]!.Properties;
    expect(properties).toMatchObject({ KeySpec: 'RSA_2048', KeyUsage: 'SIGN_VERIFY' });
    expect(resources[logicalId(keysmith.tokenSigningKey)]!.DeletionPolicy).toBe('Retain');
    for (const name of FUNCTIONS) {
      const signs = roleStatements(name).filter(
        (s) => actions(s).includes('kms:Sign') || contains(resourcesOf(s), arnOf(keysmith.tokenSigningKey)),
      );
      if (name === 'audit') expect(signs.flatMap(resourcesOf)).toEqual([arnOf(keysmith.auditDigestKey)]);
      else if (name !== 'token')
        expect(
          signs.filter((s) => actions(s).includes('kms:Sign')),
          name,
        ).toEqual([]);
      else {
        expect(signs.flatMap(actions).sort()).toEqual(['kms:GetPublicKey', 'kms:Sign']);
        expect(signs.flatMap(resourcesOf)).toEqual([arnOf(keysmith.tokenSigningKey)]);
      }
    }
  });

  it('lets the token function read a client consistently and write jti records only, never a client or key', () => {
    const statements = roleStatements('token');
    const dynamodb = statements.filter((s) => actions(s).some((a) => a.startsWith('dynamodb:')));
    expect(dynamodb).toEqual([
      { Action: 'dynamodb:Query', Effect: 'Allow', Resource: arnOf(keysmith.mainTable) },
      {
        Action: 'dynamodb:PutItem',
        Effect: 'Allow',
        Resource: arnOf(keysmith.mainTable),
        Condition: {
          'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['JTI#*'] },
          'ForAllValues:StringEquals': { 'dynamodb:Attributes': ['pk', 'sk', 'expiresAtEpoch'] },
        },
      },
      // Key uses (contract §11), in a table of their own.
      {
        Action: 'dynamodb:UpdateItem',
        Effect: 'Allow',
        Resource: arnOf(keysmith.usageTable),
        Condition: {
          'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['CLIENT#*'], 'dynamodb:Attributes': ['pk', 'sk', 'key_*'] },
        },
      },
    ]);
    const all = statements.flatMap(actions);
    expect(all).not.toContain('kms:GenerateMac');
    expect(all).toContain('kms:VerifyMac');
    expect(contains(statements, arnOf(keysmith.auditKey))).toBe(false);
    expect(contains(statements, arnOf(keysmith.auditTable))).toBe(false);
    const env = environment('token');
    expect(env).toMatchObject({
      KEYSMITH_TOKEN_SIGNING_KEY_ARN: arnOf(keysmith.tokenSigningKey),
      KEYSMITH_ACCESS_TOKEN_SECONDS: '300',
      KEYSMITH_MAIN_TABLE: ref(keysmith.mainTable),
    });
    expect(env).not.toHaveProperty('KEYSMITH_AUDIT_TABLE');
  });

  it('serves the token route from the token function, without the authorizer', () => {
    const method = resources[logicalId(keysmith.routeMethods.get('token')!)]!.Properties;
    expect(method).toMatchObject({ HttpMethod: 'POST', AuthorizationType: 'NONE' });
    expect(contains(method.Integration.Uri, arnOf(fn('token')))).toBe(true);
    template.hasOutput('TokenEndpoint', { Export: { Name: 'Keysmith-TokenEndpoint' } });
  });
});

describe('the audit pipeline (issue 12)', () => {
  const auditStatements = () => roleStatements('audit');
  const allRoles = () => FUNCTIONS.map((name) => [name, roleStatements(name)] as const);
  const streamArn = () => ({ 'Fn::GetAtt': [logicalId(keysmith.auditTable), 'StreamArn'] });
  const digestObjects = () => ({ 'Fn::Join': ['', [arnOf(keysmith.auditDigestBucket), '/digests/*']] });

  it('gives the audit table a KEYS_ONLY stream, and the main table none', () => {
    expect(resources[logicalId(keysmith.auditTable)]!.Properties.StreamSpecification).toEqual({ StreamViewType: 'KEYS_ONLY' });
    expect(resources[logicalId(keysmith.mainTable)]!.Properties.StreamSpecification).toBeUndefined();
  });

  it('runs the audit function on the stream: inserted records only, in order, whole batches retried, then dead-lettered', () => {
    const mappings = Object.values(resources).filter((r) => r.Type === 'AWS::Lambda::EventSourceMapping');
    expect(mappings).toHaveLength(1);
    const mapping = mappings[0]!.Properties;
    expect(mapping).toMatchObject({
      EventSourceArn: streamArn(),
      FunctionName: ref(fn('audit')),
      StartingPosition: 'TRIM_HORIZON',
      BatchSize: 100,
      MaximumBatchingWindowInSeconds: 1,
      FunctionResponseTypes: ['ReportBatchItemFailures'],
      MaximumRetryAttempts: 10,
      BisectBatchOnFunctionError: false,
      ParallelizationFactor: 1,
      DestinationConfig: { OnFailure: { Destination: arnOf(keysmith.auditDeadLetterQueue) } },
    });
    expect(mapping.FilterCriteria.Filters.map((filter: Json) => JSON.parse(filter.Pattern))).toEqual([
      { eventName: ['INSERT'], dynamodb: { Keys: { sk: { S: [{ prefix: 'EVENT#' }] } } } },
    ]);
    const queue = resources[logicalId(keysmith.auditDeadLetterQueue)]!.Properties;
    expect(queue.SqsManagedSseEnabled).toBe(true);
    const queuePolicy = Object.values(resources).find(
      (r) => r.Type === 'AWS::SQS::QueuePolicy' && contains(r.Properties.Queues, ref(keysmith.auditDeadLetterQueue)),
    )!;
    expect(queuePolicy.Properties.PolicyDocument.Statement).toContainEqual(
      expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    );
  });

  it('sizes the audit function like the others, with a 60 s timeout', () => {
    const properties = resources[logicalId(fn('audit'))]!.Properties;
    expect(properties).toMatchObject({ MemorySize: 512, Timeout: 60, Runtime: 'nodejs24.x', Architectures: ['arm64'] });
  });

  it('lets the audit function call exactly the audit-table actions its code uses, and never delete anything there', () => {
    const statements = auditStatements();
    const table = statements.filter((s) => contains(resourcesOf(s), arnOf(keysmith.auditTable)));
    expect(table).toEqual([
      {
        Action: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
        Effect: 'Allow',
        Resource: arnOf(keysmith.auditTable),
      },
    ]);
    expect(statements.flatMap(actions)).not.toContain('dynamodb:DeleteItem');
    // The tenants to anchor are marked in a queue of the audit function's own, outside the table (review finding F2).
    const queue = statements.filter((s) => contains(resourcesOf(s), arnOf(keysmith.auditAnchorQueue)));
    expect(queue.flatMap(actions).sort()).toEqual(['sqs:DeleteMessage', 'sqs:ReceiveMessage', 'sqs:SendMessage']);
    expect(environment('audit').KEYSMITH_AUDIT_ANCHOR_QUEUE_URL).toEqual(ref(keysmith.auditAnchorQueue));
    for (const name of ['authorizer', 'management', 'discovery', 'token'] as const)
      expect(contains(roleStatements(name), arnOf(keysmith.auditAnchorQueue))).toBe(false);
    const properties = resources[logicalId(keysmith.auditAnchorQueue)]!.Properties;
    expect(properties.RedrivePolicy).toEqual({
      deadLetterTargetArn: arnOf(keysmith.auditDeadLetterQueue),
      maxReceiveCount: 10,
    });
    expect(properties.SqsManagedSseEnabled).toBe(true);
    // The stream: what the event source mapping reads with, on the stream only.
    const stream = statements.filter((s) => contains(resourcesOf(s), streamArn()));
    expect(stream.flatMap(actions).sort()).toEqual([
      'dynamodb:DescribeStream',
      'dynamodb:GetRecords',
      'dynamodb:GetShardIterator',
      'dynamodb:ListStreams',
    ]);
    for (const statement of stream) expect(resourcesOf(statement)).toEqual([streamArn()]);
    const dynamodb = statements.flatMap(actions).filter((action) => action.startsWith('dynamodb:'));
    expect(dynamodb).not.toContain('dynamodb:Scan');
    expect(dynamodb).not.toContain('dynamodb:BatchWriteItem');
  });

  it('gives the audit function no access to the main table, the seal key or the token-signing keys', () => {
    const statements = auditStatements();
    expect(contains(statements, arnOf(keysmith.mainTable))).toBe(false);
    expect(contains(statements, arnOf(keysmith.sealKey))).toBe(false);
    for (const key of keysmith.tokenSigningKeys.values()) expect(contains(statements, arnOf(key))).toBe(false);
    const all = statements.flatMap(actions);
    for (const action of ['kms:GenerateMac', 'kms:VerifyMac']) expect(all).not.toContain(action);
    // Every DynamoDB action names the audit table or its stream.
    for (const statement of statements.filter((s) => actions(s).some((a) => a.startsWith('dynamodb:'))))
      for (const resource of resourcesOf(statement)) expect([arnOf(keysmith.auditTable), streamArn()]).toContainEqual(resource);
  });

  it('lets the audit function use the audit key only under the audit encryption context (it seals chain heads)', () => {
    const statements = auditStatements().filter((s) => contains(resourcesOf(s), arnOf(keysmith.auditKey)));
    expect(statements).toEqual([
      {
        Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
        Effect: 'Allow',
        Resource: arnOf(keysmith.auditKey),
        Condition: { StringEquals: { 'kms:EncryptionContext:purpose': AUDIT_ENCRYPTION_PURPOSE } },
      },
    ]);
  });

  it('signs digests with an RSA_2048 SIGN_VERIFY key that only the audit function may sign with, and only RS256', () => {
    const key = resources[logicalId(keysmith.auditDigestKey)]!;
    expect(key.Properties).toMatchObject({ KeySpec: 'RSA_2048', KeyUsage: 'SIGN_VERIFY' });
    template.hasResourceProperties('AWS::KMS::Alias', { TargetKeyId: arnOf(keysmith.auditDigestKey) });
    for (const [name, statements] of allRoles()) {
      const onKey = statements.filter((s) => contains(resourcesOf(s), arnOf(keysmith.auditDigestKey)));
      if (name !== 'audit') {
        expect(onKey, name).toEqual([]);
        continue;
      }
      expect(onKey).toEqual([
        {
          Action: 'kms:Sign',
          Effect: 'Allow',
          Resource: arnOf(keysmith.auditDigestKey),
          Condition: { StringEquals: { 'kms:SigningAlgorithm': 'RSASSA_PKCS1_V1_5_SHA_256' } },
        },
        { Action: 'kms:GetPublicKey', Effect: 'Allow', Resource: arnOf(keysmith.auditDigestKey) },
      ]);
    }
  });

  it('keeps digests in a private, TLS-only, versioned bucket under Object Lock (compliance, 365 days by default)', () => {
    const bucket = resources[logicalId(keysmith.auditDigestBucket)]!;
    expect(bucket.Properties.ObjectLockEnabled).toBe(true);
    expect(bucket.Properties.ObjectLockConfiguration).toEqual({
      ObjectLockEnabled: 'Enabled',
      Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 365 } },
    });
    expect(bucket.Properties.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket.Properties.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(bucket.Properties.BucketEncryption.ServerSideEncryptionConfiguration).toEqual([
      { ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } },
    ]);
    // Only versions someone deleted expire, after the lock; current digests are kept.
    const [rule] = bucket.Properties.LifecycleConfiguration.Rules;
    expect(rule).toMatchObject({ Status: 'Enabled', NoncurrentVersionExpiration: { NoncurrentDays: 395 } });
    expect(rule.ExpirationInDays).toBeUndefined();
    const policy = Object.values(resources).find(
      (r) => r.Type === 'AWS::S3::BucketPolicy' && contains(r.Properties.Bucket, ref(keysmith.auditDigestBucket)),
    )!;
    const statements: Statement[] = policy.Properties.PolicyDocument.Statement;
    expect(statements).toContainEqual(
      expect.objectContaining({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    );
    expect(statements).toContainEqual(
      expect.objectContaining({
        Effect: 'Deny',
        Action: 's3:PutObject',
        Principal: { AWS: '*' },
        Condition: { Null: { 's3:if-none-match': 'true' } },
      }),
    );
    expect(statements).toContainEqual(
      expect.objectContaining({ Effect: 'Deny', Action: ['s3:DeleteObject', 's3:DeleteObjectVersion'], Principal: { AWS: '*' } }),
    );
    expect(statements.filter((s) => s.Effect === 'Allow')).toEqual([]);
  });

  it('lets the audit function put, read and list digests under digests/, and never delete one or touch its retention', () => {
    const statements = auditStatements();
    const s3 = statements.filter((s) => actions(s).some((a) => a.startsWith('s3:')));
    expect(s3).toEqual([
      { Action: ['s3:PutObject', 's3:GetObject'], Effect: 'Allow', Resource: digestObjects() },
      { Action: 's3:ListBucket', Effect: 'Allow', Resource: arnOf(keysmith.auditDigestBucket) },
    ]);
    const all = statements.flatMap(actions);
    for (const forbidden of [
      /^s3:DeleteObject/,
      /^s3:PutObjectRetention$/,
      /^s3:BypassGovernanceRetention$/,
      /^s3:PutObjectLegalHold$/,
      /^s3:PutBucket/,
      /^s3:PutLifecycleConfiguration$/,
      /^s3:\*$/,
    ])
      expect(
        all.filter((action) => forbidden.test(action)),
        String(forbidden),
      ).toEqual([]);
  });

  it('gives no other function the digest bucket, the digest key or the event bus', () => {
    for (const [name, statements] of allRoles()) {
      if (name === 'audit') continue;
      for (const construct of [
        keysmith.auditDigestBucket,
        keysmith.auditDigestKey,
        keysmith.eventBus,
        keysmith.auditDeadLetterQueue,
      ])
        expect(contains(statements, arnOf(construct)), `${name} ${construct.node.id}`).toBe(false);
      expect(
        statements.flatMap(actions).filter((a) => a.startsWith('s3:') || a.startsWith('events:')),
        name,
      ).toEqual([]);
    }
    // Specifically: the management role cannot write a digest or sign one.
    const management = roleStatements('management').flatMap(actions);
    expect(management).not.toContain('s3:PutObject');
    expect(management).not.toContain('kms:Sign');
  });

  it('lets the audit function put change events on its bus and nowhere else', () => {
    const events = auditStatements().filter((s) => actions(s).some((a) => a.startsWith('events:')));
    expect(events).toEqual([{ Action: 'events:PutEvents', Effect: 'Allow', Resource: arnOf(keysmith.eventBus) }]);
  });

  it('anchors on a schedule: rate(5 minutes), the audit function with {"keysmith":"anchor-pending"}', () => {
    const rules = Object.values(resources).filter((r) => r.Type === 'AWS::Events::Rule');
    expect(rules).toHaveLength(1);
    const rule = rules[0]!.Properties;
    expect(rule.ScheduleExpression).toBe('rate(5 minutes)');
    expect(rule.State).toBe('ENABLED');
    expect(rule.Targets).toHaveLength(1);
    expect(rule.Targets[0].Arn).toEqual(arnOf(fn('audit')));
    expect(JSON.parse(rule.Targets[0].Input)).toEqual({ keysmith: 'anchor-pending' });
  });

  it('alarms on the stream falling behind, late links, audit errors and throttles, tampering and dead letters', () => {
    const alarmOf = (metricName: string, extra: Json = {}) =>
      template.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: metricName, ...extra });
    alarmOf('IteratorAge', {
      Namespace: 'AWS/Lambda',
      Statistic: 'Maximum',
      Threshold: 60_000,
      ComparisonOperator: 'GreaterThanThreshold',
      Dimensions: [{ Name: 'FunctionName', Value: ref(fn('audit')) }],
    });
    alarmOf('AuditLinkLag', {
      Namespace: 'Keysmith',
      Statistic: 'Maximum',
      Threshold: 60_000,
      ComparisonOperator: 'GreaterThanThreshold',
      Dimensions: [{ Name: 'service', Value: 'keysmith-audit' }],
    });
    for (const metricName of ['Errors', 'Throttles'])
      alarmOf(metricName, {
        Namespace: 'AWS/Lambda',
        Threshold: 1,
        Dimensions: [{ Name: 'FunctionName', Value: ref(fn('audit')) }],
      });
    alarmOf('TamperDetected', { Namespace: 'Keysmith', Dimensions: [{ Name: 'service', Value: 'keysmith-audit' }] });
    alarmOf('ApproximateNumberOfMessagesVisible', {
      Namespace: 'AWS/SQS',
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [logicalId(keysmith.auditDeadLetterQueue), 'QueueName'] } }],
    });
  });

  it('exports the event bus, the digest bucket and the digest key', () => {
    template.hasOutput('EventBusName', { Value: ref(keysmith.eventBus), Export: { Name: 'Keysmith-EventBusName' } });
    template.hasOutput('AuditDigestBucket', {
      Value: ref(keysmith.auditDigestBucket),
      Export: { Name: 'Keysmith-AuditDigestBucket' },
    });
    template.hasOutput('AuditDigestKeyArn', {
      Value: arnOf(keysmith.auditDigestKey),
      Export: { Name: 'Keysmith-AuditDigestKeyArn' },
    });
    const descriptions = Object.fromEntries(
      Object.entries(template.toJSON().Outputs as Record<string, Json>).map(([name, output]) => [name, output.Description]),
    );
    expect(descriptions.EventBusName).toMatch(/change events/);
    expect(descriptions.AuditDigestBucket).toMatch(/Object Lock/);
    expect(descriptions.AuditDigestKeyArn).toMatch(/signs the audit digests/);
    expect(keysmith.functionFor('audit')).toBe(keysmith.auditFunction);
  });
});

describe('functions', () => {
  it('run nodejs24.x on arm64 with X-Ray, source maps and a log group with explicit retention', () => {
    for (const name of FUNCTIONS) {
      const properties = resources[logicalId(fn(name))]!.Properties;
      expect(properties.Runtime).toBe('nodejs24.x');
      expect(properties.Architectures).toEqual(['arm64']);
      expect(properties.TracingConfig).toEqual({ Mode: 'Active' });
      expect(properties.Handler).toBe('index.handler');
      expect(properties.Environment.Variables.NODE_OPTIONS).toBe('--enable-source-maps');
      expect(properties.Environment.Variables.POWERTOOLS_SERVICE_NAME).toBe('keysmith');
      const logGroupId = properties.LoggingConfig.LogGroup.Ref;
      expect(resources[logGroupId]!.Type).toBe('AWS::Logs::LogGroup');
      expect(resources[logGroupId]!.Properties.RetentionInDays).toBe(90);
    }
  });

  it('tells each function only about the tables and keys it may use', () => {
    const main = ref(keysmith.mainTable);
    const audit = ref(keysmith.auditTable);
    for (const name of ['authorizer', 'discovery'] as const) {
      const env = environment(name);
      expect(env.KEYSMITH_MAIN_TABLE).toEqual(main);
      expect(env).not.toHaveProperty('KEYSMITH_AUDIT_TABLE');
      expect(env).not.toHaveProperty('KEYSMITH_AUDIT_KMS_KEY_ARN');
    }
    const management = environment('management');
    expect(management.KEYSMITH_MAIN_TABLE).toEqual(main);
    expect(management.KEYSMITH_AUDIT_TABLE).toEqual(audit);
    expect(management.KEYSMITH_AUDIT_KMS_KEY_ARN).toEqual(arnOf(keysmith.auditKey));
    expect(management).not.toHaveProperty('KEYSMITH_AUDIT_RETENTION_DAYS');
    expect(management).not.toHaveProperty('KEYSMITH_AUDIT_DIGEST_KEY_ARN');
    expect(management).not.toHaveProperty('KEYSMITH_EVENT_BUS_NAME');
    const auditEnv = environment('audit');
    expect(auditEnv).toMatchObject({
      KEYSMITH_AUDIT_TABLE: audit,
      KEYSMITH_AUDIT_KMS_KEY_ARN: arnOf(keysmith.auditKey),
      KEYSMITH_AUDIT_DIGEST_KEY_ARN: arnOf(keysmith.auditDigestKey),
      KEYSMITH_AUDIT_DIGEST_BUCKET: ref(keysmith.auditDigestBucket),
      KEYSMITH_EVENT_BUS_NAME: ref(keysmith.eventBus),
      KEYSMITH_AUDIT_ANCHOR_SECONDS: '300',
    });
    for (const name of [
      'KEYSMITH_MAIN_TABLE',
      'KEYSMITH_SEAL_KMS_KEY_ARN',
      'KEYSMITH_TOKEN_SIGNING_KEY_ARN',
      'KEYSMITH_TOKEN_PUBLISHED_KEY_ARNS',
      'KEYSMITH_AUDIT_RETENTION_DAYS',
    ])
      expect(auditEnv, name).not.toHaveProperty(name);
  });

  it('gives every function the same token rules and an issuer base built from the API id and stage name', () => {
    for (const name of FUNCTIONS) {
      const env = environment(name);
      expect(env.KEYSMITH_MAX_TOKEN_LIFETIME).toBe('86400');
      expect(env.KEYSMITH_REVOCATION_SECONDS).toBe('60');
      expect(env.KEYSMITH_ISSUER_BASE).toEqual({
        'Fn::Join': ['', ['https://', ref(keysmith.api), '.execute-api.us-east-1.', { Ref: 'AWS::URLSuffix' }, '/prod']],
      });
      expect(env.KEYSMITH_AUDIENCES).toEqual(env.KEYSMITH_ISSUER_BASE);
      // A reference to the Stage here would make a cycle Function -> Stage -> Deployment -> Method -> Function.
      expect(contains(env, ref(keysmith.api.deploymentStage))).toBe(false);
    }
  });
});

describe('REST API from the route table', () => {
  it('has a method for every route, integrated with its function', () => {
    const methods = Object.values(resources).filter((resource) => resource.Type === 'AWS::ApiGateway::Method');
    expect(methods).toHaveLength(ROUTES.length);
    for (const route of ROUTES) {
      const method = keysmith.routeMethods.get(route.id)!;
      expect(method.resource.path).toBe(route.path);
      const properties = resources[logicalId(method)]!.Properties;
      expect(properties.HttpMethod).toBe(route.method);
      expect(properties.Integration.Type).toBe('AWS_PROXY');
      expect(contains(properties.Integration.Uri, arnOf(fn(route.function)))).toBe(true);
      for (const [, name] of route.path.matchAll(/\{(\w+)\}/g))
        expect(properties.RequestParameters[`method.request.path.${name}`]).toBe(true);
    }
  });

  it('puts the Keysmith TOKEN authorizer on every non-public route and on no public one', () => {
    const authorizerId = logicalId(keysmith.authorizer);
    for (const route of ROUTES) {
      const properties = resources[logicalId(keysmith.routeMethods.get(route.id)!)]!.Properties;
      if (route.auth === 'none') {
        expect(properties.AuthorizationType, route.id).toBe('NONE');
        expect(properties.AuthorizerId, route.id).toBeUndefined();
      } else {
        expect(properties.AuthorizationType, route.id).toBe('CUSTOM');
        expect(properties.AuthorizerId, route.id).toEqual({ Ref: authorizerId });
      }
    }
    const authorizer = resources[authorizerId]!.Properties;
    expect(authorizer.Type).toBe('TOKEN');
    expect(authorizer.IdentitySource).toBe('method.request.header.Authorization');
    expect(authorizer.AuthorizerResultTtlInSeconds).toBe(0);
    expect(contains(authorizer.AuthorizerUri, arnOf(fn('authorizer')))).toBe(true);
  });

  it('lets API Gateway invoke each function only from this API, and EventBridge only the audit function from its schedule', () => {
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      FunctionName: arnOf(fn('authorizer')),
      Principal: 'apigateway.amazonaws.com',
      SourceArn: Match.objectLike({ 'Fn::Join': ['', Match.arrayWith([ref(keysmith.api)])] }),
    });
    const [schedule] = Object.entries(resources).filter(([, r]) => r.Type === 'AWS::Events::Rule');
    for (const resource of Object.values(resources))
      if (resource.Type === 'AWS::Lambda::Permission') {
        if (contains(resource.Properties.FunctionName, arnOf(fn('audit')))) {
          expect(resource.Properties.Principal).toBe('events.amazonaws.com');
          expect(resource.Properties.SourceArn).toEqual({ 'Fn::GetAtt': [schedule![0], 'Arn'] });
          continue;
        }
        expect(resource.Properties.Principal).toBe('apigateway.amazonaws.com');
        expect(contains(resource.Properties.SourceArn, ref(keysmith.api))).toBe(true);
      }
  });

  it('throttles the stage, traces it and writes access logs to a retained log group', () => {
    const stage = resources[logicalId(keysmith.api.deploymentStage)]!.Properties;
    expect(stage.StageName).toBe('prod');
    expect(stage.TracingEnabled).toBe(true);
    expect(stage.MethodSettings).toEqual([
      expect.objectContaining({ HttpMethod: '*', ResourcePath: '/*', ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 }),
    ]);
    const accessLogs = stage.AccessLogSetting.DestinationArn['Fn::GetAtt'][0];
    expect(resources[accessLogs]!.Properties.RetentionInDays).toBe(90);
    expect(JSON.parse(stage.AccessLogSetting.Format)).toMatchObject({
      requestId: '$context.requestId',
      status: '$context.status',
      authorizerError: '$context.authorizer.error',
    });
  });

  it("answers API Gateway's own errors with the local server's problem+json", () => {
    const responses = new Map<string, Json>();
    for (const resource of Object.values(resources))
      if (resource.Type === 'AWS::ApiGateway::GatewayResponse')
        responses.set(resource.Properties.ResponseType, resource.Properties);
    const expectations: [string, number, unknown][] = [
      ['UNAUTHORIZED', 401, toProblem(new UnauthorizedError())],
      ['ACCESS_DENIED', 403, toProblem(new ForbiddenError('access_denied', 'The client token does not allow this request.'))],
      [
        'AUTHORIZER_FAILURE',
        503,
        toProblem(new ServiceUnavailableError('authorizer_unavailable', 'The authorizer could not decide; retry later.')),
      ],
      [
        'AUTHORIZER_CONFIGURATION_ERROR',
        503,
        toProblem(new ServiceUnavailableError('authorizer_unavailable', 'The authorizer could not decide; retry later.')),
      ],
    ];
    for (const [type, status, problem] of expectations) {
      const response = responses.get(type)!;
      expect(response.StatusCode, type).toBe(String(status));
      expect(JSON.parse(response.ResponseTemplates['application/json']), type).toEqual(problem);
    }
    const notFound = JSON.parse(responses.get('MISSING_AUTHENTICATION_TOKEN')!.ResponseTemplates['application/json']);
    expect(notFound).toMatchObject({ status: 404, code: 'route_not_found', type: 'urn:keysmith:problem:route_not_found' });
    expect(responses.get('MISSING_AUTHENTICATION_TOKEN')!.StatusCode).toBe('404');
    for (const type of ['DEFAULT_4XX', 'DEFAULT_5XX', 'THROTTLED']) expect(responses.has(type), type).toBe(true);
    for (const [type, response] of responses) {
      expect(response.ResponseParameters['gatewayresponse.header.Content-Type'], type).toBe("'application/problem+json'");
      expect(response.ResponseParameters['gatewayresponse.header.X-Content-Type-Options'], type).toBe("'nosniff'");
      // API Gateway substitutes $context.error.messageString with a quoted JSON string.
      const body = JSON.parse(response.ResponseTemplates['application/json'].replaceAll('$context.error.messageString', '"msg"'));
      expect(body.type, type).toBe(`urn:keysmith:problem:${body.code}`);
      expect(String(body.status), type).toBe(response.StatusCode);
      expect(typeof body.title === 'string' && typeof body.detail === 'string', type).toBe(true);
    }
  });
});

describe('alarms and outputs', () => {
  it('alarms on authorizer errors, API 5xx and throttling of every function', () => {
    template.hasResourceProperties('AWS::CloudWatch::Alarm', {
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: [{ Name: 'FunctionName', Value: ref(fn('authorizer')) }],
    });
    template.hasResourceProperties('AWS::CloudWatch::Alarm', { Namespace: 'AWS/ApiGateway', MetricName: '5XXError' });
    for (const name of FUNCTIONS)
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/Lambda',
        MetricName: 'Throttles',
        Dimensions: [{ Name: 'FunctionName', Value: ref(fn(name)) }],
      });
  });

  it('exports every output the CLI bootstrap and consumer stacks need', () => {
    for (const output of KEYSMITH_OUTPUTS) template.hasOutput(output, { Export: { Name: `Keysmith-${output}` } });
    template.hasOutput('AuthorizerFunctionArn', { Value: arnOf(fn('authorizer')) });
    template.hasOutput('AuditKeyArn', { Value: arnOf(keysmith.auditKey) });
    template.hasOutput('ApiUrl', {
      Value: {
        'Fn::Join': [
          '',
          [
            'https://',
            ref(keysmith.api),
            '.execute-api.us-east-1.',
            { Ref: 'AWS::URLSuffix' },
            '/',
            ref(keysmith.api.deploymentStage),
          ],
        ],
      },
    });
  });
});

describe('props', () => {
  /** A Keysmith in its own app, without bundling (the assets do not matter here). */
  function configured(props: KeysmithProps): { stack: KeysmithStack; resources: Record<string, Json> } {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const variant = new KeysmithStack(app, 'Variant', { env: { region: 'eu-west-1' }, keysmith: props });
    return { stack: variant, resources: Template.fromStack(variant).toJSON().Resources };
  }

  it('passes issuer, audiences, lifetimes, cache TTL and audit retention to the right places', () => {
    const { stack: variant, resources: variantResources } = configured({
      issuerBase: 'https://keys.example.com/',
      audiences: ['https://api.example.com', 'https://keys.example.com'],
      maxTokenLifetime: Duration.hours(1),
      revocationBound: Duration.seconds(30),
      authorizerCacheTtl: Duration.seconds(15),
      auditRetentionDays: 400,
    });
    const env = (name: KeysmithFunctionName) =>
      variantResources[variant.getLogicalId(variant.keysmith.functionFor(name).node.defaultChild as CfnElement)]!.Properties
        .Environment.Variables;
    for (const name of FUNCTIONS) {
      expect(env(name)).toMatchObject({
        KEYSMITH_ISSUER_BASE: 'https://keys.example.com',
        KEYSMITH_AUDIENCES: 'https://api.example.com,https://keys.example.com',
        KEYSMITH_MAX_TOKEN_LIFETIME: '3600',
        KEYSMITH_REVOCATION_SECONDS: '30',
      });
    }
    expect(env('management').KEYSMITH_AUDIT_RETENTION_DAYS).toBe('400');
    expect(env('authorizer')).not.toHaveProperty('KEYSMITH_AUDIT_RETENTION_DAYS');
    const authorizer = variantResources[variant.getLogicalId(variant.keysmith.authorizer.node.defaultChild as CfnElement)]!;
    expect(authorizer.Properties.AuthorizerResultTtlInSeconds).toBe(15);
  });

  it('rotates the token-signing key with overlap in three deploys, each key keeping its resource', () => {
    const step = (tokenSigningKeys: KeysmithProps['tokenSigningKeys']) => {
      const { stack: variant, resources: variantResources } = configured({
        tokenSigningKeys,
        accessTokenLifetime: Duration.minutes(10),
      });
      const id = (construct: IConstruct) => variant.getLogicalId(construct.node.defaultChild as CfnElement);
      const env = (name: KeysmithFunctionName) =>
        variantResources[id(variant.keysmith.functionFor(name))]!.Properties.Environment.Variables;
      const arn = (name: string) => ({ 'Fn::GetAtt': [id(variant.keysmith.tokenSigningKeys.get(name)!), 'Arn'] });
      const keys = Object.entries(variantResources)
        .filter(([, r]) => r.Type === 'AWS::KMS::Key' && r.Properties.KeySpec === 'RSA_2048')
        .map(([logical]) => logical)
        // The digest key is RSA_2048 too, and outside the token keys' rotation.
        .filter((logical) => logical !== id(variant.keysmith.auditDigestKey))
        .sort();
      return { env, arn, keys, id, variant };
    };
    // 1. The next key is published (JWKS, authorizer) while the current one still signs.
    const first = step({ signing: 'v1', published: ['v2'] });
    expect(first.keys).toHaveLength(2);
    expect(first.env('token').KEYSMITH_TOKEN_SIGNING_KEY_ARN).toEqual(first.arn('v1'));
    expect(first.env('token')).not.toHaveProperty('KEYSMITH_TOKEN_PUBLISHED_KEY_ARNS');
    for (const name of ['authorizer', 'discovery'] as const)
      expect(first.env(name)).toMatchObject({
        KEYSMITH_TOKEN_SIGNING_KEY_ARN: first.arn('v1'),
        KEYSMITH_TOKEN_PUBLISHED_KEY_ARNS: {
          'Fn::GetAtt': [first.id(first.variant.keysmith.tokenSigningKeys.get('v2')!), 'Arn'],
        },
      });
    // 2. The next key signs; the retiring one stays published until its last token has expired.
    const second = step({ signing: 'v2', published: ['v1'] });
    expect(second.keys).toEqual(first.keys);
    expect(second.env('token').KEYSMITH_TOKEN_SIGNING_KEY_ARN).toEqual(second.arn('v2'));
    expect(second.env('authorizer').KEYSMITH_TOKEN_PUBLISHED_KEY_ARNS).toEqual(second.arn('v1'));
    expect(second.env('authorizer').KEYSMITH_ACCESS_TOKEN_SECONDS).toBe('600');
    // 3. The retiring key leaves the deployment; the signing key is the same resource as in step 1.
    const third = step({ signing: 'v2' });
    expect(third.keys).toEqual([first.id(first.variant.keysmith.tokenSigningKeys.get('v2')!)]);
    expect(third.env('discovery')).not.toHaveProperty('KEYSMITH_TOKEN_PUBLISHED_KEY_ARNS');

    expect(() => configured({ tokenSigningKeys: { signing: 'v1', published: ['v1'] } })).toThrow(/once/);
    expect(() => configured({ tokenSigningKeys: { signing: 'key-1' } })).toThrow(/letters and digits/);
  });

  it('passes the anchor interval, digest retention and audit retention to the audit pipeline', () => {
    const { stack: variant, resources: variantResources } = configured({
      auditAnchorInterval: Duration.minutes(15),
      auditDigestRetentionDays: 30,
      auditRetentionDays: 400,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const id = (construct: IConstruct) => variant.getLogicalId(construct.node.defaultChild as CfnElement);
    const audit = variant.keysmith.auditFunction;
    expect(variantResources[id(audit)]!.Properties.Environment.Variables).toMatchObject({
      KEYSMITH_AUDIT_ANCHOR_SECONDS: '900',
      KEYSMITH_AUDIT_RETENTION_DAYS: '400',
    });
    const [rule] = Object.values(variantResources).filter((r) => r.Type === 'AWS::Events::Rule');
    expect(rule!.Properties.ScheduleExpression).toBe('rate(15 minutes)');
    const bucket = variantResources[id(variant.keysmith.auditDigestBucket)]!;
    expect(bucket.Properties.ObjectLockConfiguration.Rule.DefaultRetention).toEqual({ Mode: 'COMPLIANCE', Days: 30 });
    expect(bucket.Properties.LifecycleConfiguration.Rules[0].NoncurrentVersionExpiration).toEqual({ NoncurrentDays: 60 });
    // Whatever removalPolicy says: locked digests cannot be deleted, and their key's public half proves them.
    expect(bucket.DeletionPolicy).toBe('Retain');
    expect(variantResources[id(variant.keysmith.auditDigestKey)]!.DeletionPolicy).toBe('Retain');
    expect(variantResources[id(variant.keysmith.auditKey)]!.DeletionPolicy).toBe('Delete');
  });

  it('refuses values the functions would refuse at cold start', () => {
    expect(() => configured({ accessTokenLifetime: Duration.hours(2) })).toThrow(/accessTokenLifetime/);
    expect(() => configured({ accessTokenLifetime: Duration.seconds(30) })).toThrow(/accessTokenLifetime/);
    expect(() => configured({ revocationBound: Duration.millis(1500) })).toThrow(/revocationBound/);
    expect(() => configured({ authorizerCacheTtl: Duration.hours(2) })).toThrow(/authorizerCacheTtl/);
    expect(() => configured({ auditRetentionDays: 0 })).toThrow(/auditRetentionDays/);
    expect(() => configured({ audiences: [] })).toThrow(/audiences/);
    expect(() => configured({ auditAnchorInterval: Duration.seconds(30) })).toThrow(
      /auditAnchorInterval must be a whole number of minutes from 1 to 1440, got 0.5/,
    );
    expect(() => configured({ auditAnchorInterval: Duration.seconds(90) })).toThrow(/auditAnchorInterval/);
    expect(() => configured({ auditAnchorInterval: Duration.days(2) })).toThrow(/auditAnchorInterval/);
    expect(() => configured({ auditDigestRetentionDays: 0 })).toThrow(
      /auditDigestRetentionDays must be a whole number of days from 1 to 36500, got 0/,
    );
    expect(() => configured({ auditDigestRetentionDays: 1.5 })).toThrow(/auditDigestRetentionDays/);
  });
});
