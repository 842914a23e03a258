/**
 * API Gateway's own errors (no token, authorizer failure, unknown route, throttling) as the same
 * problem+json bodies the Lambda handlers and the local server send, built from the one error module.
 */
import { ResponseType, type RestApiBase } from 'aws-cdk-lib/aws-apigateway';
import {
  ForbiddenError,
  KeysmithError,
  NotFoundError,
  type Problem,
  problemType,
  ServiceUnavailableError,
  toProblem,
  UnauthorizedError,
  UnsupportedMediaTypeError,
} from '#shared/errors.ts';

/** The headers every problem response carries; API Gateway wants header values in single quotes. */
const PROBLEM_HEADERS = {
  'Content-Type': "'application/problem+json'",
  'Cache-Control': "'no-store'",
  'X-Content-Type-Options': "'nosniff'",
};

/** The same body and status the local server sends for this error. */
function fixed(error: unknown): { status: number; body: string } {
  const problem: Problem = toProblem(error);
  return { status: problem.status, body: JSON.stringify(problem) };
}

/**
 * A problem whose detail is API Gateway's own message. `$context.error.messageString` is that message
 * already quoted and escaped as a JSON string, so the body stays valid JSON whatever the message says.
 */
function fromGateway(status: number, code: string, title: string): { status: number; body: string } {
  const head = JSON.stringify({ type: problemType(code), title, status }).slice(0, -1);
  return { status, body: `${head},"detail":$context.error.messageString,"code":${JSON.stringify(code)}}` };
}

// An unknown error maps to the bare 500 whose detail says only that the request failed.
const internalError = fixed(new Error('gateway error'));
const authorizerUnavailable = fixed(
  new ServiceUnavailableError('authorizer_unavailable', 'The authorizer could not decide; retry later.'),
);

/** Each customised gateway response, by type. Exported so tests can compare it with the local server. */
export const PROBLEM_RESPONSES: ReadonlyArray<{ type: ResponseType; status: number; body: string }> = [
  { type: ResponseType.UNAUTHORIZED, ...fixed(new UnauthorizedError()) },
  {
    type: ResponseType.ACCESS_DENIED,
    ...fixed(new ForbiddenError('access_denied', 'The client token does not allow this request.')),
  },
  { type: ResponseType.AUTHORIZER_FAILURE, ...authorizerUnavailable },
  { type: ResponseType.AUTHORIZER_CONFIGURATION_ERROR, ...authorizerUnavailable },
  {
    type: ResponseType.MISSING_AUTHENTICATION_TOKEN,
    ...fixed(new NotFoundError('route_not_found', 'No route matches this method and path.')),
  },
  {
    type: ResponseType.RESOURCE_NOT_FOUND,
    ...fixed(new NotFoundError('route_not_found', 'No route matches this method and path.')),
  },
  {
    type: ResponseType.REQUEST_TOO_LARGE,
    ...fixed(new KeysmithError(413, 'payload_too_large', 'Payload too large', 'The request is larger than API Gateway accepts.')),
  },
  { type: ResponseType.UNSUPPORTED_MEDIA_TYPE, ...fixed(new UnsupportedMediaTypeError()) },
  { type: ResponseType.THROTTLED, ...fromGateway(429, 'throttled', 'Too many requests') },
  { type: ResponseType.QUOTA_EXCEEDED, ...fromGateway(429, 'throttled', 'Too many requests') },
  { type: ResponseType.BAD_REQUEST_PARAMETERS, ...fromGateway(400, 'invalid_request', 'Invalid request') },
  { type: ResponseType.BAD_REQUEST_BODY, ...fromGateway(400, 'invalid_request', 'Invalid request') },
  { type: ResponseType.INTEGRATION_FAILURE, ...internalError },
  { type: ResponseType.API_CONFIGURATION_ERROR, ...internalError },
  {
    type: ResponseType.INTEGRATION_TIMEOUT,
    ...fixed(
      new KeysmithError(504, 'upstream_timeout', 'Gateway timeout', 'The request timed out on our side; its outcome is unknown.'),
    ),
  },
  // API Gateway's other 403s keep their status (DEFAULT_4XX below would turn them into 400s).
  { type: ResponseType.EXPIRED_TOKEN, ...fromGateway(403, 'access_denied', 'Forbidden') },
  { type: ResponseType.INVALID_API_KEY, ...fromGateway(403, 'access_denied', 'Forbidden') },
  { type: ResponseType.INVALID_SIGNATURE, ...fromGateway(403, 'access_denied', 'Forbidden') },
  { type: ResponseType.WAF_FILTERED, ...fromGateway(403, 'access_denied', 'Forbidden') },
  // Every 4xx type API Gateway documents is mapped above; this catches only types it may add later.
  { type: ResponseType.DEFAULT_4XX, ...fromGateway(400, 'request_rejected', 'Request rejected') },
  { type: ResponseType.DEFAULT_5XX, ...internalError },
];

/** Adds the problem+json gateway responses to a REST API. */
export function addProblemResponses(api: RestApiBase): void {
  for (const { type, status, body } of PROBLEM_RESPONSES) {
    api.addGatewayResponse(`Problem${type.responseType}`, {
      type,
      statusCode: String(status),
      responseHeaders: PROBLEM_HEADERS,
      templates: { 'application/json': body },
    });
  }
}
