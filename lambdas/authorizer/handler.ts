/**
 * Keysmith's Lambda authorizer (contract §3, §4). One core, three thin adapters: REST API TOKEN and
 * REQUEST authorizers (IAM policy) and HTTP API payload 2.0 authorizers (simple response).
 * It fails closed: a deny is a 401; its own failure is an error API Gateway turns into a 5xx, never an allow.
 */
import type {
  APIGatewayAuthorizerResult,
  APIGatewayRequestAuthorizerEvent,
  APIGatewayRequestAuthorizerEventV2,
  APIGatewayTokenAuthorizerEvent,
} from 'aws-lambda';
import { identityContext } from '#shared/api.ts';
import type { Authorizer } from '#shared/authorizer.ts';
import { loadConfig } from '#shared/config.ts';
import { logger } from '#shared/logger.ts';
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

/** The bearer token of an `Authorization` header value, or undefined. */
export function bearerToken(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const match = /^Bearer +([^ ]+) *$/i.exec(value);
  return match?.[1];
}

function authorizationHeader(headers: Record<string, string | undefined> | null | undefined): string | undefined {
  for (const [name, value] of Object.entries(headers ?? {})) if (name.toLowerCase() === 'authorization') return value;
  return undefined;
}

/** Allows the whole stage (`.../stage/*`), so API Gateway's result cache serves every route of the API. */
function stageWildcard(methodArn: string): string {
  const [apiArn, stage] = methodArn.split('/');
  return `${apiArn}/${stage}/*`;
}

/** Builds the Lambda handler around an authorizer core (tests pass their own). */
export function createAuthorizerHandler(authorizer: Authorizer) {
  return async function handler(event: AuthorizerEvent): Promise<APIGatewayAuthorizerResult | SimpleAuthorizerResult> {
    const header =
      event.type === 'TOKEN' ? (event as APIGatewayTokenAuthorizerEvent).authorizationToken : authorizationHeader(event.headers);
    const token = bearerToken(header);
    let result: Awaited<ReturnType<Authorizer['authorize']>>;
    try {
      result = token ? await authorizer.authorize(token) : { allow: false, reason: 'missing_token' };
    } catch (error) {
      // Fail closed: no decision can be made, so API Gateway answers with its own error, never an allow.
      logger.error('authorizer failed', { reason: 'store_unavailable', errorName: (error as Error)?.name });
      throw new Error('authorizer unavailable');
    }
    if (!result.allow) {
      logger.info('denied', { reason: result.reason });
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

export const handler = createAuthorizerHandler(createAuthorizer(loadConfig()));
