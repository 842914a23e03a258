/**
 * Keysmith's Lambda authorizer (contract §3, §4). One core, three thin adapters: REST API TOKEN and
 * REQUEST authorizers (IAM policy) and HTTP API payload 2.0 authorizers (simple response).
 * It fails closed: a deny is a 401 (`Unauthorized`) or `isAuthorized: false`; its own failure is a thrown error
 * API Gateway turns into a 5xx, never an allow. Logs carry reason codes, never the token.
 *
 * It imports the core and its wiring, not the management API (no zod, no audit), so the bundle stays small.
 */

import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type {
  APIGatewayAuthorizerResult,
  APIGatewayRequestAuthorizerEvent,
  APIGatewayRequestAuthorizerEventV2,
  APIGatewayTokenAuthorizerEvent,
} from 'aws-lambda';
import { type Authorizer, AuthorizerUnavailableError, identityContext } from '#shared/authorizer.ts';
import { loadConfig } from '#shared/config.ts';
import { logger } from '#shared/logger.ts';
import { MAX_TOKEN_BYTES } from '#shared/token-policy.ts';
import { createAuthorizer } from '#shared/wiring.ts';

export type AuthorizerEvent =
  | APIGatewayTokenAuthorizerEvent
  | APIGatewayRequestAuthorizerEvent
  | APIGatewayRequestAuthorizerEventV2;

/** The HTTP API simple response. */
export interface SimpleAuthorizerResult {
  isAuthorized: boolean;
  context?: Record<string, string>;
}

const isHttpApi = (event: AuthorizerEvent): event is APIGatewayRequestAuthorizerEventV2 =>
  (event as APIGatewayRequestAuthorizerEventV2).version === '2.0';

/** `Bearer ` and a few spaces around the token: longer headers hold a token over the limit. */
const MAX_HEADER_LENGTH = MAX_TOKEN_BYTES + 64;

/** The bearer token of an `Authorization` header value, or undefined. Oversized values are returned unparsed. */
export function bearerToken(value: string | undefined): string | undefined {
  if (!value) return undefined;
  // Too long to hold an acceptable token: hand it on so the core refuses it by size, without running a regex over it.
  if (value.length > MAX_HEADER_LENGTH) return value;
  const match = /^Bearer +([^ ]+) *$/i.exec(value);
  return match?.[1];
}

function authorizationHeader(headers: Record<string, string | undefined> | null | undefined): string | undefined {
  if (!headers) return undefined;
  const direct = headers.authorization ?? headers.Authorization;
  if (direct !== undefined) return direct;
  for (const name in headers) if (name.toLowerCase() === 'authorization') return headers[name];
  return undefined;
}

/** Allows the whole stage (`.../stage/*`), so API Gateway's result cache serves every route of the API. */
function stageWildcard(methodArn: string): string {
  const [apiArn, stage] = methodArn.split('/');
  if (!apiArn || !stage) throw new Error('methodArn is not an execute-api ARN');
  return `${apiArn}/${stage}/*`;
}

/** Counts denials and failures by reason code (CloudWatch EMF): a spike of `invalid_signature` is worth a look. */
const defaultMetrics = new Metrics({ namespace: 'Keysmith', serviceName: 'keysmith-authorizer' });

function count(metrics: Metrics, name: 'Denied' | 'Unavailable', reason: string): void {
  const metric = metrics.singleMetric();
  metric.addDimension('reason', reason);
  metric.addMetric(name, MetricUnit.Count, 1);
}

/** Builds the Lambda handler around an authorizer core (tests pass their own core and metrics). */
export function createAuthorizerHandler(authorizer: Authorizer, { metrics = defaultMetrics }: { metrics?: Metrics } = {}) {
  return async function handler(event: AuthorizerEvent): Promise<APIGatewayAuthorizerResult | SimpleAuthorizerResult> {
    const header =
      event.type === 'TOKEN' ? (event as APIGatewayTokenAuthorizerEvent).authorizationToken : authorizationHeader(event.headers);
    const token = bearerToken(header);
    let result: Awaited<ReturnType<Authorizer['authorize']>>;
    try {
      result = token ? await authorizer.authorize(token) : { allow: false, reason: 'missing_token' };
    } catch (error) {
      // Fail closed: no decision can be made, so API Gateway answers with its own 5xx, never an allow.
      const reason = error instanceof AuthorizerUnavailableError ? error.reason : 'authorizer_error';
      const errorName = error instanceof AuthorizerUnavailableError ? error.causeName : (error as Error)?.name;
      logger.error('authorizer unavailable', { reason, errorName });
      count(metrics, 'Unavailable', reason);
      throw new Error('authorizer unavailable');
    }
    if (!result.allow) {
      logger.info('denied', { reason: result.reason });
      count(metrics, 'Denied', result.reason);
      if (isHttpApi(event)) return { isAuthorized: false };
      throw new Error('Unauthorized');
    }
    const context = identityContext(result.identity);
    if (isHttpApi(event)) return { isAuthorized: true, context };
    return {
      principalId: result.identity.clientId,
      policyDocument: {
        Version: '2012-10-17',
        Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: stageWildcard(event.methodArn) }],
      },
      context,
    };
  };
}

/** The authorizer on the configured table and token rules, built once per container so its caches stay warm. */
export const authorizer = createAuthorizer(loadConfig());

export const handler = createAuthorizerHandler(authorizer);
