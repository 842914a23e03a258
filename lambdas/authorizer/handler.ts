/**
 * Keysmith's Lambda authorizer (contract §3, §4). One core, three thin adapters: REST API TOKEN and
 * REQUEST authorizers (IAM policy) and HTTP API payload 2.0 authorizers (simple response).
 * It fails closed: a deny is a 401 (`Unauthorized`) or `isAuthorized: false`; its own failure is a thrown error
 * API Gateway turns into a 5xx, never an allow. Logs carry reason codes, never the token.
 *
 * It imports the core and its wiring, not the management API (no zod, no audit), so the bundle stays small.
 */

import { type Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type {
  APIGatewayAuthorizerResult,
  APIGatewayRequestAuthorizerEvent,
  APIGatewayRequestAuthorizerEventV2,
  APIGatewayTokenAuthorizerEvent,
} from 'aws-lambda';
import { functionMetrics, tamperReporter, usageFailureReporter } from '#lambdas/metrics.ts';
import { type Authorizer, AuthorizerUnavailableError, identityContext } from '#shared/authorizer.ts';
import { loadConfig } from '#shared/config.ts';
import { logger } from '#shared/logger.ts';
import { MAX_TOKEN_BYTES } from '#shared/token-policy.ts';
import { createAuthorizer, createUsageRecorder } from '#shared/wiring.ts';

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

const SPACE = 32;

/**
 * The bearer token of an `Authorization` header value, or undefined: `Bearer` (any case), one or more spaces, the
 * token (no spaces), optional trailing spaces. Oversized values are returned unparsed, for the core to refuse by size.
 * Written out rather than as a regex: it runs on every request.
 */
export function bearerToken(value: string | undefined): string | undefined {
  if (!value) return undefined;
  if (value.length > MAX_HEADER_LENGTH) return value;
  if (value.length < 8 || value.charCodeAt(6) !== SPACE || value.slice(0, 6).toLowerCase() !== 'bearer') return undefined;
  let start = 7;
  while (value.charCodeAt(start) === SPACE) start++;
  let end = value.length;
  while (end > start && value.charCodeAt(end - 1) === SPACE) end--;
  if (end === start) return undefined;
  const token = value.slice(start, end);
  return token.includes(' ') ? undefined : token;
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
  const firstSlash = methodArn.indexOf('/');
  const stageEnd = methodArn.indexOf('/', firstSlash + 1);
  const stage = firstSlash < 0 ? '' : methodArn.slice(firstSlash + 1, stageEnd < 0 ? undefined : stageEnd);
  if (firstSlash <= 0 || !stage) throw new Error('methodArn is not an execute-api ARN');
  return `${methodArn.slice(0, firstSlash)}/${stage}/*`;
}

/** Counts denials and failures by reason code (CloudWatch EMF): a spike of `invalid_signature` is worth a look. */
const defaultMetrics = functionMetrics('authorizer');

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
      const action = error instanceof AuthorizerUnavailableError ? error.action : undefined;
      logger.error(action ? `authorizer unavailable: access denied for ${action}` : 'authorizer unavailable', {
        reason,
        errorName,
        ...(action ? { action } : {}),
      });
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

const config = loadConfig();

/** Records when keys were last used (contract §11); exported so the local server and tests can wait for its writes. */
export const usage = createUsageRecorder(config, { onUsageFailure: usageFailureReporter(defaultMetrics) });

/** The authorizer on the configured table and token rules, built once per container so its caches stay warm. */
export const authorizer = createAuthorizer(config, { onTamper: tamperReporter(defaultMetrics), usage });

export const handler = createAuthorizerHandler(authorizer);
