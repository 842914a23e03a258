/**
 * Keysmith as one reusable construct: the DynamoDB tables, the KMS keys, the five functions, the REST API
 * built from the route table, the audit pipeline (the audit table's stream, the change-event bus, the digest bucket)
 * and the alarms. `KeysmithStack` wraps it; a user may put it in their own stack.
 */
import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import {
  AccessLogField,
  AccessLogFormat,
  AuthorizationType,
  EndpointType,
  IdentitySource,
  LambdaIntegration,
  LogGroupLogDestination,
  type Method,
  MethodLoggingLevel,
  RestApi,
  SecurityPolicy,
  TokenAuthorizer,
} from 'aws-cdk-lib/aws-apigateway';
import type { ICertificate } from 'aws-cdk-lib/aws-certificatemanager';
import { Alarm, ComparisonOperator, type IAlarmAction, type IMetric, Metric, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { AttributeType, Billing, StreamViewType, TableEncryptionV2, TableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { EventBus, Rule, RuleTargetInput, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction as LambdaTarget } from 'aws-cdk-lib/aws-events-targets';
import {
  AccountRootPrincipal,
  AnyPrincipal,
  Effect,
  PolicyDocument,
  PolicyStatement,
  Role,
  ServicePrincipal,
} from 'aws-cdk-lib/aws-iam';
import { type IKey, Key, KeySpec, KeyUsage } from 'aws-cdk-lib/aws-kms';
import {
  Architecture,
  FilterCriteria,
  FilterRule,
  Function as LambdaFunction,
  Runtime,
  StartingPosition,
  Tracing,
} from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { ARecord, type IHostedZone, RecordTarget } from 'aws-cdk-lib/aws-route53';
import { ApiGateway } from 'aws-cdk-lib/aws-route53-targets';
import { BlockPublicAccess, Bucket, BucketEncryption, ObjectLockRetention, ObjectOwnership } from 'aws-cdk-lib/aws-s3';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { ACCESS_TOKEN_LIFETIME, LAST_USED_WINDOW, TABLE_VARIABLES } from '#shared/config.ts';
import {
  AUDIT_ENCRYPTION_PURPOSE,
  AUDIT_LINK_LAG_METRIC,
  JTI_ATTRIBUTES,
  JTI_PARTITION_PREFIX,
  METRICS_NAMESPACE,
  metricsServiceName,
  TAMPER_METRIC,
} from '#shared/names.ts';
import { ROUTES, type RouteFunction, type RouteId } from '#shared/routes.ts';
import { TABLE_DEFINITIONS, type TableDefinition, type TableRole } from '#shared/tables.ts';
import { KEYSMITH_FUNCTIONS, type KeysmithFunctionName, LAMBDA_HANDLER, lambdaCode } from './lambda-code.ts';
import { addProblemResponses } from './problem-responses.ts';

export type { KeysmithFunctionName };
// The audit code's own encryption-context `purpose`: the IAM condition below cannot drift from it.
export { AUDIT_ENCRYPTION_PURPOSE };

/** A custom domain for the API, which then also is the issuer base. */
export interface KeysmithDomainProps {
  /** The domain name, e.g. `keys.example.com`. */
  readonly domainName: string;
  /** An ACM certificate for the domain, in the stack's region (the API is regional). */
  readonly certificate: ICertificate;
  /**
   * A Route 53 zone in which to create the alias record for the domain.
   * @default - no record; point the domain at the API's regional domain name yourself
   */
  readonly hostedZone?: IHostedZone;
}

/** The token-signing keys of a deployment: the one that signs, and the others its JWKS publishes. */
export interface KeysmithTokenSigningKeys {
  /** The name of the key that signs access tokens (letters and digits). */
  readonly signing: string;
  /**
   * Keys published beside it and accepted by the authorizer: the next one before it signs, the retiring one until
   * its last token has expired.
   * @default []
   */
  readonly published?: string[];
}

/** How to deploy Keysmith. */
export interface KeysmithProps {
  /**
   * The public base URL of the deployment, without a trailing slash; issuers are `{issuerBase}/v1/clients/{clientId}`.
   * @default - `https://{domainName}` with a custom domain, else the API's execute-api URL with the stage name
   */
  readonly issuerBase?: string;
  /**
   * A custom domain for the REST API (regional endpoint, TLS 1.2), mapped at its root.
   * @default - no custom domain
   */
  readonly domain?: KeysmithDomainProps;
  /**
   * The audiences a client token may name in `aud`.
   * @default - [issuerBase]
   */
  readonly audiences?: string[];
  /**
   * The longest allowed `exp - iat` of a client token.
   * @default Duration.days(1)
   */
  readonly maxTokenLifetime?: Duration;
  /**
   * How long a revoked key or disabled client may keep authorizing on a warm authorizer (its in-memory cache).
   * @default Duration.seconds(60)
   */
  readonly revocationBound?: Duration;
  /**
   * How long API Gateway caches an authorizer decision per token; it adds to the revocation bound.
   * @default Duration.seconds(0) - no cache, so the revocation bound is the end-to-end bound
   */
  readonly authorizerCacheTtl?: Duration;
  /**
   * The lifetime of the access tokens the token endpoint issues (contract §9); nothing can revoke one before it
   * expires, so it is also their revocation bound.
   * @default Duration.minutes(5)
   */
  readonly accessTokenLifetime?: Duration;
  /**
   * How accurate `lastUsedAt` is (contract §11): a warm authorizer or token function writes a key's use at most once
   * per this window (whole seconds, 1 second to 1 day), to the usage table, the only table it may write.
   * @default Duration.minutes(5)
   */
  readonly lastUsedWindow?: Duration;
  /**
   * The KMS keys (RSA_2048) that sign access tokens, by a name of your choosing, and which one signs. Rotate with
   * overlap in three deploys (docs/token-issuer.md): publish the next key (`{ signing: 'v1', published: ['v2'] }`),
   * after the JWKS cache time (5 minutes) let it sign (`{ signing: 'v2', published: ['v1'] }`), after the access
   * token lifetime drop the retiring one (`{ signing: 'v2' }`). A key keeps its name's construct id, so it
   * survives the steps; a dropped key is retained or destroyed by `removalPolicy`.
   * @default { signing: 'v1' }
   */
  readonly tokenSigningKeys?: KeysmithTokenSigningKeys;
  /**
   * Days after which audit records expire through DynamoDB TTL.
   * @default - audit records are kept forever
   */
  readonly auditRetentionDays?: number;
  /**
   * How often the audit function writes a signed digest of each tenant's chain that moved since its last one (an
   * EventBridge schedule, whole minutes); `audit verify` counts a chain anchored later than this as anchored late.
   * @default Duration.minutes(5)
   */
  readonly auditAnchorInterval?: Duration;
  /**
   * Days S3 Object Lock (compliance mode) keeps each audit digest from being overwritten or deleted by anyone, the
   * account root included; the retention cannot be shortened once a digest is written. The digest bucket, and the key
   * whose public half verifies the digests, are retained when they leave the stack whatever `removalPolicy` says
   * (CloudFormation could not delete a bucket of locked objects anyway). Digests are not expired: a tenant's latest
   * digest anchors its whole chain however old it is. A digest someone deletes is only hidden (a delete marker); its
   * version is removed for good this many days plus 30 after the delete, when its lock has surely ended.
   * @default 365
   */
  readonly auditDigestRetentionDays?: number;
  /**
   * What happens to the tables, keys and log groups when they leave the stack. Anything but DESTROY keeps
   * DynamoDB deletion protection on.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * The API Gateway stage name; it is part of the default issuer base.
   * @default 'prod'
   */
  readonly stageName?: string;
  /**
   * Steady-state requests per second the stage accepts before answering 429.
   * @default 100
   */
  readonly throttlingRateLimit?: number;
  /**
   * Burst of requests the stage accepts above the rate limit.
   * @default 200
   */
  readonly throttlingBurstLimit?: number;
  /**
   * How long the functions' and the API's log groups keep their logs.
   * @default RetentionDays.THREE_MONTHS
   */
  readonly logRetention?: RetentionDays;
  /**
   * Where the alarms (authorizer and audit errors, API 5xx, Lambda throttles, tampering, audit lag) send their
   * notifications.
   * @default - the alarms exist but notify nobody
   */
  readonly alarmAction?: IAlarmAction;
}

/**
 * What each function does with a table: exactly the DynamoDB actions its code calls (TransactWriteItems has no IAM
 * action of its own; DynamoDB checks each item's). `indexes`: it also queries the table's global indexes.
 */
const TABLE_ACCESS = {
  // The authorizer and the discovery routes read a client's partition with one Query, and nothing else.
  reader: { actions: ['dynamodb:Query'], indexes: false },
  // Clients and keys: Get/Query to read, Put and Delete in transactions, ConditionCheck for the lock-out guard,
  // BatchWriteItem for the inert keys that follow a deleted client.
  mainWriter: {
    actions: [
      'dynamodb:GetItem',
      'dynamodb:Query',
      'dynamodb:PutItem',
      'dynamodb:DeleteItem',
      'dynamodb:ConditionCheckItem',
      'dynamodb:BatchWriteItem',
    ],
    indexes: true,
  },
  // Audit records and heads are only ever put (in the change's transaction), read and queried.
  auditWriter: { actions: ['dynamodb:GetItem', 'dynamodb:Query', 'dynamodb:PutItem'], indexes: false },
  // The token endpoint reads a client's partition (consistently) and puts jti records, and no other item.
  tokenIssuer: {
    actions: ['dynamodb:Query'],
    indexes: false,
    partitionWrites: { actions: ['dynamodb:PutItem'], leadingKeys: [`${JTI_PARTITION_PREFIX}*`], attributes: JTI_ATTRIBUTES },
  },
  // The authorizer and the token endpoint record key uses (shared/usage.ts): one UpdateItem on the usage table, which
  // holds nothing that grants access; they write no other table.
  // Confined by IAM to client usage items and their `key_*` attributes (review of #13).
  usageRecorder: {
    actions: [],
    indexes: false,
    partitionWrites: { actions: ['dynamodb:UpdateItem'], leadingKeys: ['CLIENT#*'], attributePatterns: ['pk', 'sk', 'key_*'] },
  },
  // The management API reads uses for its views, and removes a deleted client's item in its deletion transaction.
  usageReader: { actions: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:DeleteItem'], indexes: false },
  // The linker and the anchor (shared/audit/chain.ts, digests.ts): heads and pointers read (Get), records read again
  // (BatchGet) and found (Query), links written (Update) with the head (Put) in one transaction, the digest pointer
  // put. Nothing is ever deleted (the tenants to anchor are marked in the anchor queue, not in the table).
  auditLinker: {
    actions: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
    indexes: false,
  },
} as const satisfies Record<string, TableGrant>;
type TableAccess = keyof typeof TABLE_ACCESS;

/** One access level: its actions on the table, and writes confined by IAM to some partitions (and attributes). */
interface TableGrant {
  readonly actions: readonly string[];
  readonly indexes: boolean;
  readonly partitionWrites?: {
    readonly actions: readonly string[];
    readonly leadingKeys: readonly string[];
    readonly attributes?: readonly string[];
    /** Attribute names as `StringLike` patterns (`key_*`). */
    readonly attributePatterns?: readonly string[];
  };
}

// DynamoDB asks KMS on the caller's behalf: decrypt to read, encrypt and generate data keys to write.
// DescribeKey (metadata only) is what CDK's own table grants add too; without it a read can be refused.
const TABLE_KEY_READ_ACTIONS = ['kms:Decrypt', 'kms:DescribeKey'];
const TABLE_KEY_WRITE_ACTIONS = ['kms:Decrypt', 'kms:DescribeKey', 'kms:Encrypt', 'kms:GenerateDataKey'];

const MEMORY_MB: Record<KeysmithFunctionName, number> = {
  authorizer: 512,
  management: 512,
  discovery: 256,
  token: 512,
  audit: 512,
};
const TIMEOUT: Record<KeysmithFunctionName, Duration> = {
  authorizer: Duration.seconds(5),
  management: Duration.seconds(15),
  discovery: Duration.seconds(10),
  token: Duration.seconds(10),
  audit: Duration.seconds(60),
};

/** The signing algorithm of RS256, the only one the digest key may sign with (shared/token-signers.ts). */
const DIGEST_SIGNING_ALGORITHM = 'RSASSA_PKCS1_V1_5_SHA_256';
/** Where digests are written in their bucket (shared/audit/digests.ts `digestKey`). */
const DIGEST_PREFIX = 'digests/';
/** A stream batch older than this, or a record linked later than this after its commit, is alarmed on (in ms). */
const AUDIT_LAG_ALARM_MS = 60_000;

/** Fails synth early, with the prop's name, on a value Keysmith's config would refuse at cold start. */
function wholeSeconds(name: string, value: Duration, min: number, max: number): number {
  const seconds = value.toSeconds({ integral: false });
  if (!Number.isInteger(seconds) || seconds < min || seconds > max)
    throw new Error(`Keysmith: ${name} must be a whole number of seconds from ${min} to ${max}, got ${seconds}`);
  return seconds;
}

/** Fails synth early, with the prop's name, on a schedule EventBridge cannot express (`rate(N minutes)`). */
function wholeMinutes(name: string, value: Duration, min: number, max: number): number {
  const minutes = value.toMinutes({ integral: false });
  if (!Number.isInteger(minutes) || minutes < min || minutes > max)
    throw new Error(`Keysmith: ${name} must be a whole number of minutes from ${min} to ${max}, got ${minutes}`);
  return minutes;
}

/** Fails synth early, with the prop's name, on a count of days that is not a whole number in range. */
function wholeDays(name: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 1 || value > max)
    throw new Error(`Keysmith: ${name} must be a whole number of days from 1 to ${max}, got ${value}`);
  return value;
}

/** Keysmith's tables, keys, functions and REST API. */
export class Keysmith extends Construct {
  /** Service clients and access keys. */
  readonly mainTable: TableV2;
  /** Audit records and each tenant's chain head. */
  readonly auditTable: TableV2;
  /** When each key was last used (contract §11): written by the authorizer and token functions, granting nothing. */
  readonly usageTable: TableV2;
  /** Encrypts the tables at rest (DynamoDB server-side encryption). */
  readonly tableKey: Key;
  /** Encrypts the content of audit records (AWS Encryption SDK, encryption context `purpose=keysmith-audit`). */
  readonly auditKey: Key;
  /**
   * Seals service clients and keys (HMAC_256): only the management function may make seals (`kms:GenerateMac`);
   * the authorizer and discovery functions may only check them (`kms:VerifyMac`).
   */
  readonly sealKey: Key;
  /** The Lambda authorizer; attach it to other APIs with `KeysmithAuthorizer` (cdk/attach.ts). */
  readonly authorizerFunction: LambdaFunction;
  /** The management API's function. */
  readonly managementFunction: LambdaFunction;
  /** The public and read-only routes' function. */
  readonly discoveryFunction: LambdaFunction;
  /** The token endpoint's function: the only one that may sign access tokens (`kms:Sign`). */
  readonly tokenFunction: LambdaFunction;
  /**
   * The audit function: links audit records from the audit table's stream into each tenant's hash chain, publishes
   * change events and writes signed digests. It may use the audit table only: it cannot change a client or a key.
   */
  readonly auditFunction: LambdaFunction;
  /** Change events (contract §12): one per linked audit record, `source: keysmith`, put only by the audit function. */
  readonly eventBus: EventBus;
  /** Signed digests of the audit chains (S3 Object Lock, compliance mode), written only by the audit function. */
  readonly auditDigestBucket: Bucket;
  /** Signs the audit digests (RSA_2048, RS256): only the audit function may sign with it; auditors use its public key. */
  readonly auditDigestKey: Key;
  /**
   * Where the audit stream's batches go after their last retry (the records stay in the table, unlinked), and marks
   * of the anchor queue that failed ten runs.
   */
  readonly auditDeadLetterQueue: Queue;
  /**
   * The tenants to anchor: the linker marks each tenant it links, the scheduled anchor takes the marks. Only the audit
   * function may send, receive or delete, so a writer of the audit table cannot hide a tenant from the next digest.
   */
  readonly auditAnchorQueue: Queue;
  /** The KMS key that signs access tokens now (RSA_2048, RSASSA_PKCS1_V1_5_SHA_256). */
  readonly tokenSigningKey: Key;
  /** Every token-signing key of the deployment by its name: the signing one and the published ones. */
  readonly tokenSigningKeys: ReadonlyMap<string, Key>;
  /** The REST API built from the route table. */
  readonly api: RestApi;
  /** The TOKEN authorizer protecting every non-public route. */
  readonly authorizer: TokenAuthorizer;
  /** The public base URL; issuers are `{issuerBase}/v1/clients/{clientId}`. */
  readonly issuerBase: string;
  /** The audiences a client token may name. */
  readonly audiences: string[];
  /** The API Gateway method of each route of the route table. */
  readonly routeMethods = new Map<RouteId, Method>();
  /** The alarms on errors, API 5xx, Lambda throttles, tampering and the audit pipeline's lag and failures. */
  readonly alarms: Alarm[] = [];
  private readonly tables = new Map<TableRole, TableV2>();

  constructor(scope: Construct, id: string, props: KeysmithProps = {}) {
    super(scope, id);
    const stack = Stack.of(this);
    const removalPolicy = props.removalPolicy ?? RemovalPolicy.RETAIN;
    const logRetention = props.logRetention ?? RetentionDays.THREE_MONTHS;
    const stageName = props.stageName ?? 'prod';
    const maxTokenLifetime = wholeSeconds('maxTokenLifetime', props.maxTokenLifetime ?? Duration.days(1), 1, 31_536_000);
    const revocationSeconds = wholeSeconds('revocationBound', props.revocationBound ?? Duration.seconds(60), 1, 86_400);
    const cacheTtl = wholeSeconds('authorizerCacheTtl', props.authorizerCacheTtl ?? Duration.seconds(0), 0, 3600);
    const accessTokenSeconds = wholeSeconds(
      'accessTokenLifetime',
      props.accessTokenLifetime ?? Duration.seconds(ACCESS_TOKEN_LIFETIME.default),
      ACCESS_TOKEN_LIFETIME.min,
      ACCESS_TOKEN_LIFETIME.max,
    );
    const lastUsedSeconds = wholeSeconds(
      'lastUsedWindow',
      props.lastUsedWindow ?? Duration.seconds(LAST_USED_WINDOW.default),
      LAST_USED_WINDOW.min,
      LAST_USED_WINDOW.max,
    );
    if (props.auditRetentionDays !== undefined && (!Number.isInteger(props.auditRetentionDays) || props.auditRetentionDays < 1))
      throw new Error(`Keysmith: auditRetentionDays must be a positive whole number, got ${props.auditRetentionDays}`);
    const anchorMinutes = wholeMinutes('auditAnchorInterval', props.auditAnchorInterval ?? Duration.minutes(5), 1, 1440);
    // Object Lock's own limit is 100 years.
    const digestRetentionDays = wholeDays('auditDigestRetentionDays', props.auditDigestRetentionDays ?? 365, 36_500);

    this.tableKey = this.createKey(
      'TableKey',
      'Keysmith: DynamoDB encryption at rest of the main, audit and usage tables',
      removalPolicy,
    );
    this.auditKey = this.createKey(
      'AuditKey',
      'Keysmith: audit record content (encryption context purpose=keysmith-audit)',
      removalPolicy,
    );

    this.sealKey = new Key(this, 'SealKey', {
      description: 'Keysmith: seals of service clients and access keys (HMAC; storage is untrusted)',
      keySpec: KeySpec.HMAC_256,
      keyUsage: KeyUsage.GENERATE_VERIFY_MAC,
      removalPolicy,
      policy: new PolicyDocument({
        statements: [new PolicyStatement({ actions: ['kms:*'], principals: [new AccountRootPrincipal()], resources: ['*'] })],
      }),
    });

    const signingKeys = tokenSigningKeyNames(props.tokenSigningKeys ?? { signing: 'v1' });
    this.tokenSigningKeys = new Map(
      signingKeys.all.map((name) => [
        name,
        new Key(this, `TokenSigningKey${pascal(name)}`, {
          description: `Keysmith: signs access tokens (contract §9), key ${name}`,
          keySpec: KeySpec.RSA_2048,
          keyUsage: KeyUsage.SIGN_VERIFY,
          removalPolicy,
          policy: new PolicyDocument({
            statements: [new PolicyStatement({ actions: ['kms:*'], principals: [new AccountRootPrincipal()], resources: ['*'] })],
          }),
        }),
      ]),
    );
    this.tokenSigningKey = this.tokenSigningKeys.get(signingKeys.signing)!;

    this.auditDigestKey = new Key(this, 'AuditDigestKey', {
      description: 'Keysmith: signs the audit chain digests (RS256); auditors verify them with its public key',
      alias: `${stack.stackName}/keysmith-audit-digest`,
      keySpec: KeySpec.RSA_2048,
      keyUsage: KeyUsage.SIGN_VERIFY,
      // Retained like the digests it signs: its public half is what proves them, for as long as they are kept.
      removalPolicy: RemovalPolicy.RETAIN,
      policy: new PolicyDocument({
        statements: [new PolicyStatement({ actions: ['kms:*'], principals: [new AccountRootPrincipal()], resources: ['*'] })],
      }),
    });
    this.auditDigestBucket = new Bucket(this, 'AuditDigestBucket', {
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      encryption: BucketEncryption.S3_MANAGED,
      versioned: true,
      objectLockEnabled: true,
      objectLockDefaultRetention: ObjectLockRetention.compliance(Duration.days(digestRetentionDays)),
      lifecycleRules: [
        {
          id: 'deleted-digests',
          // Only a version someone deleted becomes noncurrent (digests are never overwritten). Counted from then, so it
          // is always past its lock; a tenant's current digests are kept (the latest one anchors the whole chain).
          noncurrentVersionExpiration: Duration.days(digestRetentionDays + 30),
          expiredObjectDeleteMarker: true,
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
      // Whatever removalPolicy says: CloudFormation cannot delete a bucket holding locked objects.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // Object Lock keeps an overwritten digest's version, but readers see the newest: so no one writes over a digest
    // (the store puts with If-None-Match: *; a put without it, or a multipart upload, is refused).
    this.auditDigestBucket.addToResourcePolicy(
      new PolicyStatement({
        sid: 'DigestsAreWrittenOnce',
        effect: Effect.DENY,
        principals: [new AnyPrincipal()],
        actions: ['s3:PutObject'],
        resources: [this.auditDigestBucket.arnForObjects('*')],
        conditions: { Null: { 's3:if-none-match': 'true' } },
      }),
    );
    // Compliance mode keeps every version, but a delete marker would hide a digest from a reader listing current
    // objects: nobody deletes one (lifting this takes a change to the bucket policy, itself in CloudTrail).
    this.auditDigestBucket.addToResourcePolicy(
      new PolicyStatement({
        sid: 'DigestsAreNeverDeleted',
        effect: Effect.DENY,
        principals: [new AnyPrincipal()],
        actions: ['s3:DeleteObject', 's3:DeleteObjectVersion'],
        resources: [this.auditDigestBucket.arnForObjects('*')],
      }),
    );
    this.eventBus = new EventBus(this, 'EventBus', {
      description: 'Keysmith change events (contract §12): one per linked audit record, in order per tenant',
    });
    this.auditDeadLetterQueue = new Queue(this, 'AuditDeadLetterQueue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy,
    });
    this.auditAnchorQueue = new Queue(this, 'AuditAnchorQueue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      // Longer than an anchor run (the audit function's timeout): marks taken and not yet acknowledged stay hidden.
      visibilityTimeout: Duration.minutes(5),
      deadLetterQueue: { queue: this.auditDeadLetterQueue, maxReceiveCount: 10 },
      removalPolicy,
    });

    for (const definition of TABLE_DEFINITIONS) this.tables.set(definition.role, this.createTable(definition, removalPolicy));
    this.mainTable = this.tables.get('main')!;
    this.auditTable = this.tables.get('audit')!;
    this.usageTable = this.tables.get('usage')!;

    this.api = new RestApi(this, 'Api', {
      restApiName: `${stack.stackName}-keysmith`,
      description: 'Keysmith: service clients, access keys and their discovery documents',
      endpointTypes: [EndpointType.REGIONAL],
      cloudWatchRole: true,
      deployOptions: {
        stageName,
        throttlingRateLimit: props.throttlingRateLimit ?? 100,
        throttlingBurstLimit: props.throttlingBurstLimit ?? 200,
        tracingEnabled: true,
        metricsEnabled: true,
        loggingLevel: MethodLoggingLevel.ERROR,
        dataTraceEnabled: false,
        accessLogDestination: new LogGroupLogDestination(
          new LogGroup(this, 'AccessLogs', { retention: logRetention, removalPolicy }),
        ),
        accessLogFormat: AccessLogFormat.custom(
          JSON.stringify({
            requestId: AccessLogField.contextRequestId(),
            requestTime: AccessLogField.contextRequestTime(),
            sourceIp: AccessLogField.contextIdentitySourceIp(),
            httpMethod: AccessLogField.contextHttpMethod(),
            resourcePath: AccessLogField.contextResourcePath(),
            status: AccessLogField.contextStatus(),
            responseLatency: AccessLogField.contextResponseLatency(),
            clientId: AccessLogField.contextAuthorizerPrincipalId(),
            authorizerStatus: AccessLogField.contextAuthorizerStatus(),
            authorizerLatency: AccessLogField.contextAuthorizerLatency(),
            authorizerError: AccessLogField.contextAuthorizerError(),
            errorType: AccessLogField.contextErrorResponseType(),
            integrationError: AccessLogField.contextIntegrationErrorMessage(),
          }),
        ),
      },
      ...(props.domain
        ? {
            domainName: {
              domainName: props.domain.domainName,
              certificate: props.domain.certificate,
              endpointType: EndpointType.REGIONAL,
              securityPolicy: SecurityPolicy.TLS_1_2,
            },
          }
        : {}),
    });
    if (props.domain?.hostedZone && this.api.domainName)
      new ARecord(this, 'DomainRecord', {
        zone: props.domain.hostedZone,
        recordName: props.domain.domainName,
        target: RecordTarget.fromAlias(new ApiGateway(this.api)),
      });

    // From the API's id and the stage's name, not `api.url`: that references the Stage, and the Stage
    // depends (through the Deployment and the Methods) on the functions that would read this variable.
    const defaultIssuerBase = props.domain
      ? `https://${props.domain.domainName}`
      : `https://${this.api.restApiId}.execute-api.${stack.region}.${stack.urlSuffix}/${stageName}`;
    this.issuerBase = (props.issuerBase ?? defaultIssuerBase).replace(/\/+$/, '');
    this.audiences = props.audiences ?? [this.issuerBase];
    if (this.audiences.length === 0) throw new Error('Keysmith: audiences must name at least one audience');

    const common: Record<string, string> = {
      KEYSMITH_ISSUER_BASE: this.issuerBase,
      KEYSMITH_AUDIENCES: this.audiences.join(','),
      KEYSMITH_MAX_TOKEN_LIFETIME: String(maxTokenLifetime),
      KEYSMITH_REVOCATION_SECONDS: String(revocationSeconds),
      POWERTOOLS_SERVICE_NAME: 'keysmith',
      NODE_OPTIONS: '--enable-source-maps',
    };
    this.authorizerFunction = this.createFunction('authorizer', common, logRetention, removalPolicy);
    this.managementFunction = this.createFunction('management', common, logRetention, removalPolicy);
    this.discoveryFunction = this.createFunction('discovery', common, logRetention, removalPolicy);
    this.tokenFunction = this.createFunction('token', common, logRetention, removalPolicy);
    this.auditFunction = this.createFunction('audit', common, logRetention, removalPolicy);

    this.bindTable(this.authorizerFunction, 'main', 'reader');
    this.bindTable(this.discoveryFunction, 'main', 'reader');
    this.bindTable(this.managementFunction, 'main', 'mainWriter');
    this.bindTable(this.managementFunction, 'audit', 'auditWriter');
    this.bindAuditKey(this.managementFunction, this.auditKey);
    this.bindSealKey(this.authorizerFunction, 'verify');
    this.bindSealKey(this.discoveryFunction, 'verify');
    this.bindSealKey(this.managementFunction, 'seal');
    this.bindTable(this.tokenFunction, 'main', 'tokenIssuer');
    this.bindSealKey(this.tokenFunction, 'verify');
    this.bindTokenSigningKeys(this.tokenFunction, 'sign', signingKeys);
    this.bindTokenSigningKeys(this.authorizerFunction, 'publish', signingKeys);
    this.bindTokenSigningKeys(this.discoveryFunction, 'publish', signingKeys);
    for (const fn of [this.tokenFunction, this.authorizerFunction]) {
      fn.addEnvironment('KEYSMITH_ACCESS_TOKEN_SECONDS', String(accessTokenSeconds));
      this.bindTable(fn, 'usage', 'usageRecorder');
      fn.addEnvironment('KEYSMITH_LAST_USED_SECONDS', String(lastUsedSeconds));
    }
    this.bindTable(this.managementFunction, 'usage', 'usageReader');
    if (props.auditRetentionDays !== undefined)
      for (const fn of [this.managementFunction, this.auditFunction])
        fn.addEnvironment('KEYSMITH_AUDIT_RETENTION_DAYS', String(props.auditRetentionDays));
    this.addAuditPipeline(anchorMinutes);

    this.authorizer = new TokenAuthorizer(this, 'TokenAuthorizer', {
      handler: this.authorizerFunction,
      identitySource: IdentitySource.header('Authorization'),
      resultsCacheTtl: Duration.seconds(cacheTtl),
      // A header that is not a bearer token is refused by API Gateway (401) without invoking the function.
      validationRegex: '^[Bb][Ee][Aa][Rr][Ee][Rr] +[^ ]+ *$',
    });
    this.addRoutes();
    addProblemResponses(this.api);
    this.addAlarms(props.alarmAction);
  }

  /** The function of each route-table name. */
  functionFor(name: KeysmithFunctionName): LambdaFunction {
    return {
      authorizer: this.authorizerFunction,
      management: this.managementFunction,
      discovery: this.discoveryFunction,
      token: this.tokenFunction,
      audit: this.auditFunction,
    }[name];
  }

  /**
   * The audit function's grants, variables and triggers: the audit table (no main table, no seal key, no token key),
   * the audit key, its stream, the digest bucket and key, the event bus, and the anchoring schedule.
   */
  private addAuditPipeline(anchorMinutes: number): void {
    const fn = this.auditFunction;
    this.bindTable(fn, 'audit', 'auditLinker');
    // GenerateDataKey too: the linker seals each new chain head with the audit key.
    this.bindAuditKey(fn, this.auditKey);
    this.bindDigests(fn);
    this.eventBus.grantPutEventsTo(fn);
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['sqs:SendMessage', 'sqs:ReceiveMessage', 'sqs:DeleteMessage'],
        resources: [this.auditAnchorQueue.queueArn],
      }),
    );
    fn.addEnvironment('KEYSMITH_AUDIT_ANCHOR_QUEUE_URL', this.auditAnchorQueue.queueUrl);
    fn.addEnvironment('KEYSMITH_EVENT_BUS_NAME', this.eventBus.eventBusName);
    fn.addEnvironment('KEYSMITH_AUDIT_ANCHOR_SECONDS', String(anchorMinutes * 60));
    fn.addEventSource(
      new DynamoEventSource(this.auditTable, {
        startingPosition: StartingPosition.TRIM_HORIZON,
        batchSize: 100,
        maxBatchingWindow: Duration.seconds(1),
        reportBatchItemFailures: true,
        retryAttempts: 10,
        // A tenant's records are linked in stream order: a batch is retried whole, from its first record, never split.
        bisectBatchOnError: false,
        parallelizationFactor: 1,
        filters: [
          FilterCriteria.filter({
            eventName: FilterRule.isEqual('INSERT'),
            dynamodb: { Keys: { sk: { S: FilterRule.beginsWith('EVENT#') } } },
          }),
        ],
        onFailure: new SqsDlq(this.auditDeadLetterQueue),
      }),
    );
    new Rule(this, 'AuditAnchorSchedule', {
      description: 'Keysmith: writes the signed digests of the audit chains that moved',
      schedule: Schedule.rate(Duration.minutes(anchorMinutes)),
      targets: [new LambdaTarget(fn, { event: RuleTargetInput.fromObject({ keysmith: 'anchor-pending' }) })],
    });
  }

  private createKey(id: string, description: string, removalPolicy: RemovalPolicy): Key {
    return new Key(this, id, {
      description,
      enableKeyRotation: true,
      removalPolicy,
      // The account administers the key and IAM policies decide who uses it, each with its own conditions.
      policy: new PolicyDocument({
        statements: [new PolicyStatement({ actions: ['kms:*'], principals: [new AccountRootPrincipal()], resources: ['*'] })],
      }),
    });
  }

  private createTable(definition: TableDefinition, removalPolicy: RemovalPolicy): TableV2 {
    const id = `${definition.role[0]!.toUpperCase()}${definition.role.slice(1)}Table`;
    return new TableV2(this, id, {
      partitionKey: { name: definition.partitionKey, type: AttributeType.STRING },
      sortKey: { name: definition.sortKey, type: AttributeType.STRING },
      globalSecondaryIndexes: definition.globalIndexes.map((index) => ({
        indexName: index.name,
        partitionKey: { name: index.partitionKey, type: AttributeType.STRING },
        sortKey: { name: index.sortKey, type: AttributeType.STRING },
      })),
      billing: Billing.onDemand(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: removalPolicy !== RemovalPolicy.DESTROY,
      encryption: TableEncryptionV2.customerManagedKey(this.tableKey),
      removalPolicy,
      ...(definition.timeToLiveAttribute ? { timeToLiveAttribute: definition.timeToLiveAttribute } : {}),
      ...(definition.stream ? { dynamoStream: StreamViewType[definition.stream] } : {}),
    });
  }

  private createFunction(
    name: KeysmithFunctionName,
    environment: Record<string, string>,
    retention: RetentionDays,
    removalPolicy: RemovalPolicy,
  ): LambdaFunction {
    const logGroup = new LogGroup(this, `${pascal(name)}Logs`, { retention, removalPolicy });
    // An own role instead of AWSLambdaBasicExecutionRole: it may write only to its own log group.
    const role = new Role(this, `${pascal(name)}Role`, { assumedBy: new ServicePrincipal('lambda.amazonaws.com') });
    role.addToPrincipalPolicy(
      new PolicyStatement({ actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: [logGroup.logGroupArn] }),
    );
    return new LambdaFunction(this, `${pascal(name)}Function`, {
      description: `Keysmith ${name}`,
      // Prebuilt (scripts/build-lambdas.ts): bundled for Node 24, minified, with source maps.
      code: lambdaCode(name),
      handler: LAMBDA_HANDLER,
      runtime: Runtime.NODEJS_24_X,
      architecture: Architecture.ARM_64,
      memorySize: MEMORY_MB[name],
      timeout: TIMEOUT[name],
      tracing: Tracing.ACTIVE,
      logGroup,
      role,
      environment,
    });
  }

  /**
   * Grants a function its access to a table and sets the variable naming it, in one step, so a function
   * is never told about a table it may not use.
   */
  private bindTable(fn: LambdaFunction, role: TableRole, access: TableAccess): void {
    const table = this.tables.get(role);
    const definition = TABLE_DEFINITIONS.find((candidate) => candidate.role === role);
    if (!table || !definition) throw new Error(`Keysmith: no ${role} table`);
    const { actions, indexes, partitionWrites }: TableGrant = TABLE_ACCESS[access];
    const indexArns = indexes ? definition.globalIndexes.map((index) => `${table.tableArn}/index/${index.name}`) : [];
    if (actions.length > 0) fn.addToRolePolicy(new PolicyStatement({ actions: [...actions], resources: [table.tableArn] }));
    if (indexArns.length > 0) fn.addToRolePolicy(new PolicyStatement({ actions: ['dynamodb:Query'], resources: indexArns }));
    // Writes confined by partition key: the token function writes jti records only (never a client or key), the audit
    // function deletes to-anchor markers only (never a record).
    if (partitionWrites)
      fn.addToRolePolicy(
        new PolicyStatement({
          actions: [...partitionWrites.actions],
          resources: [table.tableArn],
          conditions: {
            'ForAllValues:StringLike': {
              'dynamodb:LeadingKeys': [...partitionWrites.leadingKeys],
              ...(partitionWrites.attributePatterns ? { 'dynamodb:Attributes': [...partitionWrites.attributePatterns] } : {}),
            },
            // Nor an index attribute: a jti record can never show up among a tenant's clients or the admins.
            ...(partitionWrites.attributes
              ? { 'ForAllValues:StringEquals': { 'dynamodb:Attributes': [...partitionWrites.attributes] } }
              : {}),
          },
        }),
      );
    const reads = new Set(['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query']);
    const writes = partitionWrites !== undefined || actions.some((action) => !reads.has(action));
    const stack = Stack.of(this);
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: writes ? TABLE_KEY_WRITE_ACTIONS : TABLE_KEY_READ_ACTIONS,
        resources: [this.tableKey.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `dynamodb.${stack.region}.${stack.urlSuffix}` } },
      }),
    );
    fn.addEnvironment(TABLE_VARIABLES[role], table.tableName);
  }

  /** Grants the Encryption SDK's use of the audit key, for audit records only, and sets the variable naming it. */
  private bindAuditKey(fn: LambdaFunction, key: IKey): void {
    fn.addToRolePolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
        resources: [key.keyArn],
        conditions: { StringEquals: { 'kms:EncryptionContext:purpose': AUDIT_ENCRYPTION_PURPOSE } },
      }),
    );
    fn.addEnvironment('KEYSMITH_AUDIT_KMS_KEY_ARN', key.keyArn);
  }

  /**
   * Grants the audit function what the digests need and sets the variables naming them: signing (RS256 only) and
   * reading the public half of the digest key; writing and reading digests, and listing them, under `digests/`. No
   * delete and no retention call: a digest, once written, stays for its Object Lock retention.
   */
  private bindDigests(fn: LambdaFunction): void {
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['kms:Sign'],
        resources: [this.auditDigestKey.keyArn],
        conditions: { StringEquals: { 'kms:SigningAlgorithm': DIGEST_SIGNING_ALGORITHM } },
      }),
    );
    fn.addToRolePolicy(new PolicyStatement({ actions: ['kms:GetPublicKey'], resources: [this.auditDigestKey.keyArn] }));
    const bucket = this.auditDigestBucket;
    fn.addToRolePolicy(
      new PolicyStatement({ actions: ['s3:PutObject', 's3:GetObject'], resources: [bucket.arnForObjects(`${DIGEST_PREFIX}*`)] }),
    );
    // Not confined by s3:prefix: a GetObject carries no prefix, so S3 would answer a missing digest 403 instead of
    // 404 (the bucket holds digests only).
    fn.addToRolePolicy(new PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn] }));
    fn.addEnvironment('KEYSMITH_AUDIT_DIGEST_KEY_ARN', this.auditDigestKey.keyArn);
    fn.addEnvironment('KEYSMITH_AUDIT_DIGEST_BUCKET', bucket.bucketName);
  }

  /**
   * Grants the use of the seal key and sets the variable naming it: `seal` (the management function) may make and
   * check seals; `verify` (the readers) may only check them, so a compromised reader cannot forge a client or key.
   */
  private bindSealKey(fn: LambdaFunction, use: 'seal' | 'verify'): void {
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: use === 'seal' ? ['kms:GenerateMac', 'kms:VerifyMac'] : ['kms:VerifyMac'],
        resources: [this.sealKey.keyArn],
      }),
    );
    fn.addEnvironment('KEYSMITH_SEAL_KMS_KEY_ARN', this.sealKey.keyArn);
  }

  /**
   * Grants the use of the token-signing keys and sets the variables naming them: `sign` (the token function) may
   * sign with the signing key and read its public key; `publish` (the authorizer, the discovery function) may only
   * read the public keys of all of them.
   */
  private bindTokenSigningKeys(fn: LambdaFunction, use: 'sign' | 'publish', names: { signing: string; published: string[] }) {
    const arn = (name: string) => this.tokenSigningKeys.get(name)!.keyArn;
    if (use === 'sign')
      fn.addToRolePolicy(new PolicyStatement({ actions: ['kms:Sign', 'kms:GetPublicKey'], resources: [arn(names.signing)] }));
    else {
      fn.addToRolePolicy(
        new PolicyStatement({
          actions: ['kms:GetPublicKey'],
          resources: [names.signing, ...names.published].map(arn),
        }),
      );
      if (names.published.length > 0) fn.addEnvironment('KEYSMITH_TOKEN_PUBLISHED_KEY_ARNS', names.published.map(arn).join(','));
    }
    fn.addEnvironment('KEYSMITH_TOKEN_SIGNING_KEY_ARN', arn(names.signing));
  }

  /** Builds the API's resources and methods from the route table. */
  private addRoutes(): void {
    const validator = this.api.addRequestValidator('PathValidator', {
      validateRequestParameters: true,
      validateRequestBody: false,
    });
    const integrations = new Map<RouteFunction, LambdaIntegration>();
    for (const route of ROUTES) {
      let integration = integrations.get(route.function);
      if (!integration) {
        integration = new LambdaIntegration(this.functionFor(route.function), { proxy: true, allowTestInvoke: false });
        integrations.set(route.function, integration);
      }
      const requestParameters: Record<string, boolean> = {};
      for (const [, name] of route.path.matchAll(/\{(\w+)\}/g)) requestParameters[`method.request.path.${name}`] = true;
      const resource = this.api.root.resourceForPath(route.path);
      const method = resource.addMethod(
        route.method,
        integration,
        route.auth === 'none'
          ? { authorizationType: AuthorizationType.NONE, requestValidator: validator, requestParameters }
          : {
              authorizationType: AuthorizationType.CUSTOM,
              authorizer: this.authorizer,
              requestValidator: validator,
              requestParameters,
            },
      );
      this.routeMethods.set(route.id, method);
    }
  }

  private addAlarms(action: IAlarmAction | undefined): void {
    const period = Duration.minutes(5);
    const definitions: {
      id: string;
      description: string;
      metric: IMetric;
      threshold: number;
      comparison?: ComparisonOperator;
    }[] = [
      {
        id: 'AuthorizerErrors',
        description: 'The authorizer failed (not denied): callers got 503 authorizer_unavailable.',
        metric: this.authorizerFunction.metricErrors({ period, statistic: 'Sum' }),
        threshold: 1,
      },
      {
        id: 'Api5xx',
        description: 'The Keysmith API answered with 5xx.',
        metric: this.api.metricServerError({ period, statistic: 'Sum' }),
        threshold: 5,
      },
      ...KEYSMITH_FUNCTIONS.map((name) => ({
        id: `${pascal(name)}Tamper`,
        description: `The ${name} function refused a stored item that failed its integrity check (seal, audit record or head): someone wrote the tables around Keysmith. See its log for the reason and ids.`,
        metric: new Metric({
          namespace: METRICS_NAMESPACE,
          metricName: TAMPER_METRIC,
          dimensionsMap: { service: metricsServiceName(name) },
          period,
          statistic: 'Sum',
        }),
        threshold: 1,
      })),
      ...KEYSMITH_FUNCTIONS.map((name) => ({
        id: `${pascal(name)}Throttles`,
        description: `Lambda throttled the ${name} function.`,
        metric: this.functionFor(name).metricThrottles({ period, statistic: 'Sum' }),
        threshold: 1,
      })),
      {
        id: 'AuditErrors',
        description:
          'The audit function failed: a stream batch is being retried (records wait unlinked) or digests were not written.',
        metric: this.auditFunction.metricErrors({ period, statistic: 'Sum' }),
        threshold: 1,
      },
      {
        id: 'AuditIteratorAge',
        description:
          'The audit stream is behind: committed audit records wait to be linked and their change events to be published.',
        metric: this.auditFunction.metric('IteratorAge', { period, statistic: 'Maximum' }),
        threshold: AUDIT_LAG_ALARM_MS,
        comparison: ComparisonOperator.GREATER_THAN_THRESHOLD,
      },
      {
        id: 'AuditLinkLag',
        // `audit verify` reports a record unlinked past its link bound (KEYSMITH_AUDIT_LINK_BOUND_SECONDS, 60 by default).
        description: 'An audit record was linked into its chain more than 60 s after its commit.',
        metric: new Metric({
          namespace: METRICS_NAMESPACE,
          metricName: AUDIT_LINK_LAG_METRIC,
          dimensionsMap: { service: metricsServiceName('audit') },
          period,
          statistic: 'Maximum',
        }),
        threshold: AUDIT_LAG_ALARM_MS,
        comparison: ComparisonOperator.GREATER_THAN_THRESHOLD,
      },
      {
        id: 'AuditDeadLetters',
        description:
          'A stream batch failed every retry and was set aside: its records stay unlinked until replayed. See the dead-letter queue and the audit function log.',
        metric: this.auditDeadLetterQueue.metricApproximateNumberOfMessagesVisible({ period, statistic: 'Maximum' }),
        threshold: 0,
        comparison: ComparisonOperator.GREATER_THAN_THRESHOLD,
      },
    ];
    for (const definition of definitions) {
      const created = new Alarm(this, `${definition.id}Alarm`, {
        alarmDescription: `Keysmith: ${definition.description}`,
        metric: definition.metric,
        threshold: definition.threshold,
        evaluationPeriods: 1,
        comparisonOperator: definition.comparison ?? ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      });
      if (action) created.addAlarmAction(action);
      this.alarms.push(created);
    }
  }
}

/** Checks the token-signing key names: letters and digits, each once, the signing one not among the published. */
function tokenSigningKeyNames(keys: KeysmithTokenSigningKeys): { signing: string; published: string[]; all: string[] } {
  const published = keys.published ?? [];
  const all = [keys.signing, ...published];
  for (const name of all)
    if (!/^[A-Za-z0-9]{1,32}$/.test(name))
      throw new Error(`Keysmith: tokenSigningKeys names are 1 to 32 letters and digits, got ${JSON.stringify(name)}`);
  if (new Set(all).size !== all.length)
    throw new Error('Keysmith: tokenSigningKeys names each key once (the signing key is not also published)');
  return { signing: keys.signing, published, all };
}

function pascal(name: string): string {
  return `${name[0]!.toUpperCase()}${name.slice(1)}`;
}
