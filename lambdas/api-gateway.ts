/**
 * API Gateway REST (proxy) events to the API's plain requests and back; shared by the HTTP handlers.
 * The only code besides the handlers that knows API Gateway.
 */

import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { type ApiDependencies, type ApiRequest, handleApiRequest, oauthErrorResponse, problemResponse } from '#shared/api.ts';
import { CONSOLE_HEADERS, isConsolePath, isConsoleRoute } from '#shared/console.ts';
import { DependencyAccessDeniedError, InvalidRequestError, type KeysmithError, NotFoundError } from '#shared/errors.ts';
import { logger } from '#shared/logger.ts';
import type { CallerIdentity } from '#shared/model.ts';
import { OAuthError } from '#shared/oauth.ts';
import { type RouteFunction, routeFor } from '#shared/routes.ts';

function callerOf(event: APIGatewayProxyEvent): CallerIdentity | undefined {
  const context = event.requestContext.authorizer as Record<string, unknown> | null | undefined;
  if (!context || typeof context.clientId !== 'string' || typeof context.tenantId !== 'string') return undefined;
  return {
    clientId: context.clientId,
    tenantId: context.tenantId,
    keyId: String(context.keyId ?? ''),
    scopes: String(context.scopes ?? '')
      .split(' ')
      .filter((scope) => scope.length > 0),
  };
}

function lowerCaseHeaders(headers: APIGatewayProxyEvent['headers']): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(headers ?? {})) out[name.toLowerCase()] = value;
  return out;
}

function toApiRequest(event: APIGatewayProxyEvent, fn: RouteFunction): ApiRequest {
  const route = routeFor(event.httpMethod, event.resource);
  if (!route || route.function !== fn) throw new NotFoundError('route_not_found', `No route ${event.httpMethod} ${event.path}.`);
  // The console's pages ignore their query strings, repeated parameters too.
  if (!isConsoleRoute(route.id))
    for (const [name, values] of Object.entries(event.multiValueQueryStringParameters ?? {}))
      if ((values?.length ?? 0) > 1) throw new InvalidRequestError(`query.${name}: give it at most once`);
  return {
    route,
    pathParameters: event.pathParameters ?? {},
    query: event.queryStringParameters ?? {},
    headers: lowerCaseHeaders(event.headers),
    body:
      event.body == null ? undefined : event.isBase64Encoded ? Buffer.from(event.body, 'base64').toString('utf8') : event.body,
    caller: callerOf(event),
    requestId: event.requestContext.requestId,
    sourceIp: event.requestContext.identity?.sourceIp,
  };
}

/** A middy handler serving the routes of one function of the route table. */
export function apiHandler(fn: RouteFunction, deps: ApiDependencies) {
  const onServerError = (error: unknown, request: ApiRequest, reported: KeysmithError | undefined) =>
    logger.error(reported instanceof DependencyAccessDeniedError ? `access denied: ${reported.action}` : 'request failed', {
      route: request.route.id,
      requestId: request.requestId,
      code: reported?.code ?? 'internal_error',
      ...(reported instanceof DependencyAccessDeniedError ? { action: reported.action } : {}),
      error: error as Error,
    });
  return middy<APIGatewayProxyEvent, APIGatewayProxyResult, Error, Context>()
    .use(injectLambdaContext(logger))
    .handler(async (event) => {
      let request: ApiRequest;
      try {
        request = toApiRequest(event, fn);
      } catch (error) {
        // The token endpoint answers in RFC 6749's words whatever it refuses (parameters belong in the body there).
        if (fn === 'token' && error instanceof InvalidRequestError)
          return oauthErrorResponse(
            new OAuthError(400, 'invalid_request', 'send the token request parameters in the body, not the query'),
          );
        return problemResponse(error, isConsolePath(event.resource ?? '') ? CONSOLE_HEADERS : {});
      }
      return handleApiRequest(request, { onServerError, ...deps });
    });
}
