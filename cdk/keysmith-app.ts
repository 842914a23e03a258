/**
 * Builds the CDK app that `cdk synth` and `cdk deploy` run, from context values (`-c name=value`).
 * Kept apart from cdk/app.ts so tests can build the same app in-process without synthesizing it twice.
 */
import { App, type AppProps, Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { KeysmithProps } from './keysmith.ts';
import { KeysmithStack, type KeysmithStackDomainProps } from './keysmith-stack.ts';
import { acknowledgeNagFindings } from './nag.ts';

/** The context values the app reads; every one is optional. */
export const CONTEXT_KEYS = [
  'stackName',
  'issuerBase',
  'audiences',
  'domainName',
  'certificateArn',
  'hostedZoneId',
  'maxTokenLifetime',
  'revocationSeconds',
  'authorizerCacheTtl',
  'lastUsedSeconds',
  'auditRetentionDays',
  'auditAnchorMinutes',
  'auditDigestRetentionDays',
  'removalPolicy',
] as const;

type ContextKey = (typeof CONTEXT_KEYS)[number];

function positiveInteger(name: string, raw: string | undefined, min = 1): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`context ${name} must be a whole number >= ${min}, got "${raw}"`);
  return value;
}

const REMOVAL_POLICIES: Record<string, RemovalPolicy> = {
  retain: RemovalPolicy.RETAIN,
  destroy: RemovalPolicy.DESTROY,
  snapshot: RemovalPolicy.SNAPSHOT,
};

/** Builds the Keysmith app: one `KeysmithStack` in the default (or us-east-1) region, checked by cdk-nag. */
export function createKeysmithApp(appProps: AppProps = {}): { app: App; stack: KeysmithStack } {
  const app = new App(appProps);
  const context = (key: ContextKey): string | undefined => {
    const value: unknown = app.node.tryGetContext(key);
    return value === undefined || value === null || value === '' ? undefined : String(value);
  };
  const stackName = context('stackName') ?? 'Keysmith';
  const region = process.env.CDK_DEFAULT_REGION ?? 'us-east-1';

  const stack = new KeysmithStack(app, stackName, {
    stackName,
    description: 'Keysmith: self-hosted API keys (service clients, Lambda authorizer, KMS-encrypted audit trail)',
    // An explicit region: TableV2 with a customer-managed key cannot render its replica without one.
    env: { account: process.env.CDK_DEFAULT_ACCOUNT, region },
    keysmith: keysmithProps(context),
    domain: domainProps(context),
  });
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  acknowledgeNagFindings(stack.keysmith);
  return { app, stack };
}

function domainProps(context: (key: ContextKey) => string | undefined): KeysmithStackDomainProps | undefined {
  const domainName = context('domainName');
  const certificateArn = context('certificateArn');
  if (!domainName && !certificateArn) return undefined;
  if (!domainName || !certificateArn) throw new Error('context domainName and certificateArn go together');
  const hostedZoneId = context('hostedZoneId');
  return { domainName, certificateArn, ...(hostedZoneId ? { hostedZoneId } : {}) };
}

function keysmithProps(context: (key: ContextKey) => string | undefined): Omit<KeysmithProps, 'domain'> {
  const props: { -readonly [K in keyof KeysmithProps]: KeysmithProps[K] } = {};
  const issuerBase = context('issuerBase');
  if (issuerBase) props.issuerBase = issuerBase;
  const audiences = context('audiences');
  if (audiences) props.audiences = audiences.split(',').map((audience) => audience.trim());
  const maxTokenLifetime = positiveInteger('maxTokenLifetime', context('maxTokenLifetime'));
  if (maxTokenLifetime) props.maxTokenLifetime = Duration.seconds(maxTokenLifetime);
  const revocationSeconds = positiveInteger('revocationSeconds', context('revocationSeconds'));
  if (revocationSeconds) props.revocationBound = Duration.seconds(revocationSeconds);
  const cacheTtl = positiveInteger('authorizerCacheTtl', context('authorizerCacheTtl'), 0);
  if (cacheTtl !== undefined) props.authorizerCacheTtl = Duration.seconds(cacheTtl);
  const lastUsedSeconds = positiveInteger('lastUsedSeconds', context('lastUsedSeconds'));
  if (lastUsedSeconds) props.lastUsedWindow = Duration.seconds(lastUsedSeconds);
  const retention = positiveInteger('auditRetentionDays', context('auditRetentionDays'));
  if (retention) props.auditRetentionDays = retention;
  const anchorMinutes = positiveInteger('auditAnchorMinutes', context('auditAnchorMinutes'));
  if (anchorMinutes) props.auditAnchorInterval = Duration.minutes(anchorMinutes);
  const digestRetention = positiveInteger('auditDigestRetentionDays', context('auditDigestRetentionDays'));
  if (digestRetention) props.auditDigestRetentionDays = digestRetention;
  const removal = context('removalPolicy');
  if (removal) {
    const policy = REMOVAL_POLICIES[removal];
    if (!policy) throw new Error(`context removalPolicy must be one of ${Object.keys(REMOVAL_POLICIES).join(', ')}`);
    props.removalPolicy = policy;
  }
  return props;
}
