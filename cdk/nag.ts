/**
 * The cdk-nag (AwsSolutions) findings Keysmith accepts, each acknowledged on the narrowest construct
 * with the reason it is acceptable. Anything not listed here fails `cdk synth` and the test suite.
 */
import { Validations } from 'aws-cdk-lib';
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
  ]) {
    if (fn.role)
      Validations.of(fn.role).acknowledge({
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          'X-Ray tracing (Tracing.ACTIVE): xray:PutTraceSegments and xray:PutTelemetryRecords support no resource-level permissions, so their resource must be "*". Every other statement names its table, index, key or log group.',
      });
  }
}
