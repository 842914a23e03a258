/**
 * The errors of {@link KeysmithAdmin}: the API answered with an error ({@link KeysmithApiError}, from its RFC 9457
 * problem+json), or it could not be reached ({@link KeysmithConnectionError}). Neither ever holds a token or an
 * access key.
 */

/**
 * The stable `code`s the API answers with (contract §5), and the SDK's own: `http_error` (an error answer without a
 * problem body, e.g. from a proxy) and `invalid_response` (a success answer that is not the API's JSON, or a redirect).
 * Any other string may appear too: new codes are added without notice.
 */
export type KeysmithProblemCode =
  // 400
  | 'invalid_request'
  | 'missing_body'
  | 'malformed_json'
  | 'invalid_cursor'
  | 'invalid_public_key'
  | 'weak_public_key'
  | 'private_key_material'
  | 'unsupported_key_type'
  | 'algorithm_mismatch'
  | 'reserved_scope'
  // 401, 403
  | 'unauthorized'
  | 'admin_scope_required'
  | 'tenant_forbidden'
  | 'scope_not_grantable'
  | 'client_not_manageable'
  // 404, 405
  | 'client_not_found'
  | 'key_not_found'
  | 'route_not_found'
  | 'method_not_allowed'
  // 409
  | 'key_limit_reached'
  | 'last_platform_admin'
  // 413, 415
  | 'payload_too_large'
  | 'unsupported_media_type'
  // 5xx
  | 'internal_error'
  | 'dependency_access_denied'
  | 'store_unavailable'
  | 'audit_unavailable'
  | 'authorizer_unavailable'
  | 'too_many_concurrent_changes'
  // the SDK's own
  | 'http_error'
  | 'invalid_response'
  | (string & {});

/** One problem with one input, as a 400 `invalid_request` lists them. */
export interface ProblemFieldError {
  /** Where, e.g. `body.scopes.0` or `query.limit`. */
  path: string;
  message: string;
}

/** What a {@link KeysmithApiError} is made of. */
export interface KeysmithApiErrorDetails {
  status: number;
  code: KeysmithProblemCode;
  title: string;
  detail: string;
  /** @default `urn:keysmith:problem:{code}` */
  type?: string;
  /** @default [] */
  errors?: readonly ProblemFieldError[];
  requestId?: string;
  /** @default {} */
  problem?: Readonly<Record<string, unknown>>;
}

/**
 * The API answered with an error status. Its message is `{detail} ({code}, HTTP {status})`.
 * @example
 * try { await admin.getClient('acme', clientId) }
 * catch (error) { if (error instanceof KeysmithApiError && error.code === 'client_not_found') return undefined; throw error }
 */
export class KeysmithApiError extends Error {
  override name = 'KeysmithApiError';
  /** The HTTP status. */
  readonly status: number;
  /** The problem's stable machine-readable code; `http_error` when the answer had none. */
  readonly code: KeysmithProblemCode;
  /** The problem's short summary. */
  readonly title: string;
  /** What went wrong, for a person. */
  readonly detail: string;
  /** The problem type URI. */
  readonly type: string;
  /** Each input that was refused (400 `invalid_request`); empty otherwise. */
  readonly errors: readonly ProblemFieldError[];
  /** The request's id, when a response header gave one (`x-request-id`, `x-amzn-requestid` or `apigw-requestid`). */
  readonly requestId: string | undefined;
  /** The whole problem+json body, extension members included; `{}` when there was none. */
  readonly problem: Readonly<Record<string, unknown>>;

  constructor({ status, code, title, detail, type, errors = [], requestId, problem = {} }: KeysmithApiErrorDetails) {
    super(`${detail} (${code}, HTTP ${status})`);
    this.status = status;
    this.code = code;
    this.title = title;
    this.detail = detail;
    this.type = type ?? `urn:keysmith:problem:${code}`;
    this.errors = errors;
    this.requestId = requestId;
    this.problem = problem;
  }
}

/**
 * The API could not be reached: a refused or reset connection, a DNS failure, or no answer within the timeout.
 * Its message is `cannot reach {baseUrl}: {reason}`. Whether a change was made is unknown when it happened during a
 * create, update or delete.
 */
export class KeysmithConnectionError extends Error {
  override name = 'KeysmithConnectionError';

  constructor(
    /** The base URL that could not be reached. */
    readonly baseUrl: string,
    /** Why, e.g. `ECONNREFUSED` or `timed out after 30000 ms`. */
    readonly reason: string,
    /** Whether no answer came within the timeout. */
    readonly timedOut = false,
  ) {
    super(`cannot reach ${baseUrl}: ${reason}`);
  }
}
