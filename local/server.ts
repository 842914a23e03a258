/**
 * The local HTTP server: serves every route of the route table through the same Lambda handlers and the
 * same authorizer that run in AWS, by turning each request into the API Gateway events they receive there.
 * The environment (tables, endpoint, issuer) must be set before {@link createLocalServer} loads the handlers.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { MAX_BODY_BYTES, oauthErrorResponse, problemResponse } from '#shared/api.ts';
import { CONSOLE_HEADERS, isConsolePath } from '#shared/console.ts';
import {
  InvalidRequestError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  ServiceUnavailableError,
  UnauthorizedError,
} from '#shared/errors.ts';
import { OAuthError } from '#shared/oauth.ts';
import { matchPath, type RouteFunction } from '#shared/routes.ts';

type ProxyHandler = (event: APIGatewayProxyEvent, context: Context) => Promise<APIGatewayProxyResult>;
type AuthorizerHandler = (event: unknown) => Promise<unknown>;

function lambdaContext(functionName: string): Context {
  const requestId = randomUUID();
  return {
    callbackWaitsForEmptyEventLoop: false,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:local:000000000000:function:${functionName}`,
    memoryLimitInMB: '512',
    awsRequestId: requestId,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: 'local',
    getRemainingTimeInMillis: () => 30_000,
    done: () => undefined,
    fail: () => undefined,
    succeed: () => undefined,
  };
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new PayloadTooLargeError(MAX_BODY_BYTES));
        request.resume();
        return;
      }
      chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });
}

function send(response: ServerResponse, result: APIGatewayProxyResult): void {
  response.statusCode = result.statusCode;
  for (const [name, value] of Object.entries(result.headers ?? {})) response.setHeader(name, String(value));
  response.end(result.body);
}

/** The request's URL; undefined when its target is no path (`//`, say, which `new URL` reads as a host). */
function requestUrl(target: string | undefined): URL | undefined {
  if (target === undefined || !target.startsWith('/')) return undefined;
  try {
    return new URL(`http://localhost${target}`);
  } catch {
    return undefined;
  }
}

/** Options of {@link createLocalServer}. */
export interface LocalServerOptions {
  /** Called once per request with a one-line summary (never headers or bodies). */
  onRequest?: (line: string) => void;
}

/** Loads the Lambda handlers and returns an HTTP server (not yet listening) that serves them. */
export async function createLocalServer({ onRequest }: LocalServerOptions = {}): Promise<Server> {
  const [management, discovery, token, authorizer] = await Promise.all([
    import('#lambdas/management/handler.ts'),
    import('#lambdas/discovery/handler.ts'),
    import('#lambdas/token/handler.ts'),
    import('#lambdas/authorizer/handler.ts'),
  ]);
  const functions: Record<RouteFunction, ProxyHandler> = {
    management: management.handler as unknown as ProxyHandler,
    discovery: discovery.handler as unknown as ProxyHandler,
    token: token.handler as unknown as ProxyHandler,
  };
  const authorize = authorizer.handler as AuthorizerHandler;

  async function serve(request: IncomingMessage, url: URL): Promise<APIGatewayProxyResult> {
    const method = request.method ?? 'GET';
    const matched = matchPath(method, url.pathname);
    if (!matched) throw new NotFoundError('route_not_found', `No route ${method} ${url.pathname}.`);
    if ('allow' in matched) throw new MethodNotAllowedError(matched.allow);
    const { route, pathParameters } = matched;
    let body: string;
    try {
      body = await readBody(request);
    } catch (error) {
      // The token endpoint answers in RFC 6749's words, even before its function sees the request.
      if (route.function === 'token' && error instanceof PayloadTooLargeError)
        return oauthErrorResponse(new OAuthError(400, 'invalid_request', `the body is over ${MAX_BODY_BYTES} bytes`));
      throw error;
    }

    const headers: Record<string, string> = {};
    const multiValueHeaders: Record<string, string[]> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (value === undefined) continue;
      const values = Array.isArray(value) ? value : [value];
      headers[name] = values.join(', ');
      multiValueHeaders[name] = values;
    }
    // No prototype: a parameter named `constructor` or `__proto__` is just a name.
    const query: Record<string, string> = Object.create(null);
    const multiQuery: Record<string, string[]> = Object.create(null);
    for (const [name, value] of url.searchParams) {
      query[name] = value;
      multiQuery[name] = [...(multiQuery[name] ?? []), value];
    }
    const requestId = randomUUID();
    const methodArn = `arn:aws:execute-api:local:000000000000:keysmith/local/${method}${url.pathname}`;

    let authorizerContext: Record<string, unknown> | null = null;
    if (route.auth !== 'none') {
      // As API Gateway's TOKEN authorizer: no header, no call; a deny is 401; the authorizer's own failure a 503.
      const authorization = headers.authorization;
      if (!authorization) throw new UnauthorizedError();
      let policy: { principalId: string; context: Record<string, unknown> };
      try {
        policy = (await authorize({ type: 'TOKEN', authorizationToken: authorization, methodArn })) as typeof policy;
      } catch (error) {
        if ((error as Error).message === 'Unauthorized') throw new UnauthorizedError();
        throw new ServiceUnavailableError('authorizer_unavailable', 'The authorizer could not decide; retry later.');
      }
      authorizerContext = { principalId: policy.principalId, ...policy.context };
    }

    const event = {
      resource: route.path,
      path: url.pathname,
      httpMethod: method,
      headers,
      multiValueHeaders,
      queryStringParameters: Object.keys(query).length > 0 ? query : null,
      multiValueQueryStringParameters: Object.keys(multiQuery).length > 0 ? multiQuery : null,
      pathParameters: Object.keys(pathParameters).length > 0 ? pathParameters : null,
      stageVariables: null,
      body: body.length > 0 ? body : null,
      isBase64Encoded: false,
      requestContext: {
        accountId: '000000000000',
        apiId: 'keysmith',
        authorizer: authorizerContext,
        httpMethod: method,
        path: `/local${url.pathname}`,
        protocol: `HTTP/${request.httpVersion}`,
        requestId,
        requestTimeEpoch: Date.now(),
        resourceId: route.id,
        resourcePath: route.path,
        stage: 'local',
        identity: { sourceIp: request.socket.remoteAddress ?? '127.0.0.1' },
      },
    } as unknown as APIGatewayProxyEvent;
    return functions[route.function](event, lambdaContext(`keysmith-${route.function}`));
  }

  return createServer((request, response) => {
    const started = performance.now();
    const url = requestUrl(request.url);
    (url ? serve(request, url) : Promise.reject(new InvalidRequestError('The request target is not a path.')))
      // The console's pages are answered with its headers even when no route matches.
      .catch((error: unknown) => problemResponse(error, url && isConsolePath(url.pathname) ? CONSOLE_HEADERS : {}))
      .then((result) => {
        send(response, result);
        onRequest?.(
          `${request.method} ${url?.pathname ?? '(not a path)'} ${result.statusCode} ${Math.round(performance.now() - started)}ms`,
        );
      });
  });
}
