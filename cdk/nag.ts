/**
 * The cdk-nag (AwsSolutions) findings Keysmith accepts, each acknowledged on the narrowest construct
 * with the reason it is acceptable. Anything not listed here fails `cdk synth` and the test suite.
 */
import { type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import { ROUTES } from '#shared/routes.ts';
import type { Keysmith } from './keysmith.ts';

/** Acknowledges the findings Keysmith accepts on its own resources. */
export function acknowledgeNagFindings(keysmith: Keysmith): void {
  Validations.of(keysmith.api).acknowledge({
    id: 'AwsSolutions-COG4',
    reason:
      'Keysmith is an API-key service for machine clients: its routes are protected by its own Lambda (TOKEN) authorizer, which verifies client tokens against the keys Keysmith issues. Cognito user pools do not apply.',
  });
  Validations.of(keysmith.api).acknowledge({
    id: 'AwsSolutions-APIG2',
    reason:
      'Path parameters are validated by API Gateway (a parameters validator on every method); bodies are validated by the handlers with zod schemas and answered as problem+json, which API Gateway body models cannot express.',
  });
  Validations.of(keysmith.api).acknowledge({
    id: 'AwsSolutions-APIG3',
    reason:
      'WAF is left to the operator (it is billed per web ACL and rule); the stage is throttled, the authorizer refuses non-bearer headers before invoking Lambda, and a web ACL can be associated with the stage without changing Keysmith.',
  });
  const cloudWatchRole = keysmith.api.node.tryFindChild('CloudWatchRole');
  if (cloudWatchRole)
    Validations.of(cloudWatchRole).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
      reason:
        "API Gateway's account-wide logging role needs exactly this AWS managed policy (it writes any API's execution and access logs); it is used by the API Gateway service, never by Keysmith's code.",
    });
  for (const route of ROUTES) {
    if (route.auth !== 'none') continue;
    const method = keysmith.routeMethods.get(route.id);
    if (method)
      Validations.of(method).acknowledge({
        id: 'AwsSolutions-APIG4',
        reason:
          route.id === 'token'
            ? `${route.method} ${route.path} is the OAuth 2.0 token endpoint (§9): the request authenticates itself with a signed client assertion (RFC 7523), which the token function verifies against the client's stored key.`
            : `${route.method} ${route.path} is public by design: liveness (§5), the OpenAPI document (it describes the routes and holds no data) and OpenID discovery documents (issuer, public JWKS) must be readable without a token.`,
      });
  }
  for (const fn of [
    keysmith.authorizerFunction,
    keysmith.managementFunction,
    keysmith.discoveryFunction,
    keysmith.tokenFunction,
    keysmith.auditFunction,
  ]) {
    if (fn.role)
      Validations.of(fn.role).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'X-Ray tracing (Tracing.ACTIVE): xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level permissions, so their resource must be "*". Every other statement names its table, index, stream, key, queue, bus, bucket or log group.',
      });
  }
  const auditRole = keysmith.auditFunction.role;
  if (auditRole) {
    const bucket = keysmith.auditDigestBucket;
    const bucketId = Stack.of(bucket).getLogicalId(bucket.node.defaultChild as CfnElement);
    Validations.of(auditRole).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${bucketId}.Arn>/digests/*]`,
      reason:
        'The audit function writes one digest object per tenant and anchoring (digests/{tenantId}/{seq}-{time}.jws, keys it cannot know in advance) and reads them back: s3:PutObject and s3:GetObject on the digests/ prefix of its own bucket only, never delete or retention calls; Object Lock (compliance) keeps each digest from being overwritten.',
    });
  }
  Validations.of(keysmith.auditDigestBucket).acknowledge({
    id: 'AwsSolutions-S1',
    reason:
      'The digest bucket holds only signed digests, written by the audit function and kept by Object Lock in compliance mode: a write cannot change or remove one, and a forged one fails its RS256 signature in audit verify. Server access logs would need a second, itself unlogged, bucket; for an access trail enable CloudTrail S3 data events on this bucket.',
  });
  Validations.of(keysmith.auditDeadLetterQueue).acknowledge({
    id: 'AwsSolutions-SQS3',
    reason:
      "The queue is itself a dead-letter queue: the on-failure destination of the audit function's DynamoDB stream event source mapping, which cdk-nag does not recognise (it looks only at redrive policies and function DLQs). It is encrypted, TLS-only and alarmed on any message.",
  });
}
