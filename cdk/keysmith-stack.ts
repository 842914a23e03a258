/** The stack `cdk deploy` creates: the Keysmith construct and the outputs operators and other stacks use. */
import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import { Certificate } from 'aws-cdk-lib/aws-certificatemanager';
import { HostedZone } from 'aws-cdk-lib/aws-route53';
import type { Construct } from 'constructs';
import { TOKEN_ENDPOINT_PATH } from '#shared/routes.ts';
import { Keysmith, type KeysmithProps } from './keysmith.ts';

/** The names of the stack's outputs; each is also exported as `{stackName}-{output}`. */
export const KEYSMITH_OUTPUTS = [
  'ApiUrl',
  'IssuerBase',
  'MainTableName',
  'AuditTableName',
  'AuditKeyArn',
  'SealKeyArn',
  'AuthorizerFunctionArn',
  'TokenEndpoint',
  'TokenSigningKeyArn',
  'EventBusName',
  'AuditDigestBucket',
  'AuditDigestKeyArn',
  'AuditAnchorQueueUrl',
] as const;

export type KeysmithOutput = (typeof KEYSMITH_OUTPUTS)[number];

/** The export name of a Keysmith stack's output, e.g. `Keysmith-AuthorizerFunctionArn`. */
export function keysmithExportName(stackName: string, output: KeysmithOutput): string {
  return `${stackName}-${output}`;
}

/** A custom domain named by plain strings (as `cdk deploy -c` gives them); the stack imports the certificate and zone. */
export interface KeysmithStackDomainProps {
  /** The domain name, e.g. `keys.example.com`; it becomes the issuer base unless `issuerBase` is set. */
  readonly domainName: string;
  /** ARN of an ACM certificate for the domain in the stack's region. */
  readonly certificateArn: string;
  /**
   * The Route 53 hosted zone whose apex is `domainName`, to create the alias record in.
   * @default - no record is created
   */
  readonly hostedZoneId?: string;
}

/** Properties of the Keysmith stack. */
export interface KeysmithStackProps extends StackProps {
  /**
   * How Keysmith itself is configured (a domain goes in `domain`).
   * @default - the defaults of each `KeysmithProps` member
   */
  readonly keysmith?: Omit<KeysmithProps, 'domain'>;
  /**
   * A custom domain for the API, by ARN and id.
   * @default - no custom domain
   */
  readonly domain?: KeysmithStackDomainProps;
}

/** Keysmith in a stack of its own, with exported outputs. */
export class KeysmithStack extends Stack {
  /** The Keysmith construct. */
  readonly keysmith: Keysmith;

  constructor(scope: Construct, id: string, props: KeysmithStackProps = {}) {
    super(scope, id, props);
    const domain = props.domain;
    this.keysmith = new Keysmith(this, 'Keysmith', {
      ...props.keysmith,
      ...(domain
        ? {
            domain: {
              domainName: domain.domainName,
              certificate: Certificate.fromCertificateArn(this, 'DomainCertificate', domain.certificateArn),
              ...(domain.hostedZoneId
                ? {
                    hostedZone: HostedZone.fromHostedZoneAttributes(this, 'DomainZone', {
                      hostedZoneId: domain.hostedZoneId,
                      zoneName: domain.domainName,
                    }),
                  }
                : {}),
            },
          }
        : {}),
    });
    const api = this.keysmith.api;
    const values: Record<KeysmithOutput, { value: string; description: string }> = {
      ApiUrl: {
        // The stage URL without the trailing slash of `api.url`, so `${ApiUrl}/v1/health` is a valid URL.
        value: `https://${api.restApiId}.execute-api.${this.region}.${this.urlSuffix}/${api.deploymentStage.stageName}`,
        description: 'Base URL of the Keysmith REST API (the stage URL, no trailing slash)',
      },
      IssuerBase: {
        value: this.keysmith.issuerBase,
        description:
          'Issuer base: client tokens use iss = {IssuerBase}/v1/clients/{clientId}; access tokens have iss = {IssuerBase}',
      },
      MainTableName: {
        value: this.keysmith.mainTable.tableName,
        description: 'DynamoDB table of service clients and access keys',
      },
      AuditTableName: { value: this.keysmith.auditTable.tableName, description: 'DynamoDB table of audit records' },
      AuditKeyArn: { value: this.keysmith.auditKey.keyArn, description: 'KMS key that encrypts audit record content' },
      SealKeyArn: {
        value: this.keysmith.sealKey.keyArn,
        description: 'KMS HMAC key that seals service clients and keys (keysmith bootstrap --seal-key-arn)',
      },
      AuthorizerFunctionArn: {
        value: this.keysmith.authorizerFunction.functionArn,
        description: 'Keysmith Lambda authorizer; attach it to other APIs with KeysmithAuthorizer',
      },
      TokenEndpoint: {
        value: `${this.keysmith.issuerBase}${TOKEN_ENDPOINT_PATH}`,
        description: 'OAuth 2.0 token endpoint: client_credentials with private_key_jwt, or the jwt-bearer grant',
      },
      TokenSigningKeyArn: {
        value: this.keysmith.tokenSigningKey.keyArn,
        description: 'KMS RSA_2048 key that signs access tokens now (see tokenSigningKeys for a rotation)',
      },
      EventBusName: {
        value: this.keysmith.eventBus.eventBusName,
        description:
          'EventBridge bus of the change events (source keysmith, one per linked audit record); add rules to consume them',
      },
      AuditDigestBucket: {
        value: this.keysmith.auditDigestBucket.bucketName,
        description: 'S3 bucket (Object Lock, compliance mode) of the signed audit chain digests, under digests/{tenantId}/',
      },
      AuditDigestKeyArn: {
        value: this.keysmith.auditDigestKey.keyArn,
        description: 'KMS RSA_2048 key that signs the audit digests (RS256); audit verify checks them with its public key',
      },
      AuditAnchorQueueUrl: {
        value: this.keysmith.auditAnchorQueue.queueUrl,
        description:
          'SQS queue of the tenants whose audit chains moved since their last digest (keysmith audit anchor --anchor-queue-url)',
      },
    };
    for (const output of KEYSMITH_OUTPUTS)
      new CfnOutput(this, output, { ...values[output], exportName: keysmithExportName(this.stackName, output) });
  }
}
