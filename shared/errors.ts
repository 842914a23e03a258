/**
 * Every failure Keysmith reports, as a small tree of classes with a stable machine-readable `code`
 * and an HTTP status. They are turned into RFC 9457 problem+json in exactly one place: {@link toProblem}.
 */

/** The base of every error Keysmith reports to a caller. `detail` is shown to the caller: never put a secret in it. */
export class KeysmithError extends Error {
  readonly code: string;
  readonly status: number;
  readonly title: string;
  /** Structured, caller-safe extra members of the problem (e.g. validation issues). */
  readonly extensions: Record<string, unknown>;

  constructor(status: number, code: string, title: string, detail: string, extensions: Record<string, unknown> = {}) {
    super(detail);
    this.name = new.target.name;
    this.status = status;
    this.code = code;
    this.title = title;
    this.extensions = extensions;
  }
}

/** 400: the request is not well-formed or breaks a rule of the contract. */
export class InvalidRequestError extends KeysmithError {
  constructor(detail: string, code = 'invalid_request', extensions: Record<string, unknown> = {}) {
    super(400, code, 'Invalid request', detail, extensions);
  }
}

/** 401: no valid client token. */
export class UnauthorizedError extends KeysmithError {
  constructor(detail = 'A valid client token is required.') {
    super(401, 'unauthorized', 'Unauthorized', detail);
  }
}

/** 403: the caller is known but may not do this. */
export class ForbiddenError extends KeysmithError {
  constructor(code: string, detail: string) {
    super(403, code, 'Forbidden', detail);
  }
}

/** 404: the thing named does not exist (or belongs to another tenant, which looks the same). */
export class NotFoundError extends KeysmithError {
  constructor(code: string, detail: string) {
    super(404, code, 'Not found', detail);
  }
}

/** 405: the path exists but not with this method. */
export class MethodNotAllowedError extends KeysmithError {
  readonly allow: string[];
  constructor(allow: string[]) {
    super(405, 'method_not_allowed', 'Method not allowed', `Allowed methods: ${allow.join(', ')}.`);
    this.allow = allow;
  }
}

/** 409: the request conflicts with the current state. */
export class ConflictError extends KeysmithError {
  constructor(code: string, detail: string) {
    super(409, code, 'Conflict', detail);
  }
}

/** 413: the body is larger than Keysmith accepts. */
export class PayloadTooLargeError extends KeysmithError {
  constructor(limit: number) {
    super(413, 'payload_too_large', 'Payload too large', `The request body must be at most ${limit} bytes.`);
  }
}

/** 415: the body is not JSON. */
export class UnsupportedMediaTypeError extends KeysmithError {
  constructor() {
    super(
      415,
      'unsupported_media_type',
      'Unsupported media type',
      'Send the body as JSON with the header Content-Type: application/json.',
    );
  }
}

/** 503: a dependency (DynamoDB, KMS) is unavailable; nothing was written; retry later. */
export class ServiceUnavailableError extends KeysmithError {
  constructor(code: string, detail: string) {
    super(503, code, 'Service unavailable', detail);
  }
}

/** 500: something Keysmith stored failed its integrity check, so the change was refused rather than built on it. */
export class IntegrityError extends KeysmithError {
  constructor(code: string, detail: string) {
    super(500, code, 'Integrity check failed', detail);
  }
}

/**
 * 500: Keysmith's own role may not call one of its dependencies (a missing IAM permission): not the caller's fault,
 * and not an outage that a retry fixes. `action` (e.g. `kms:Decrypt`) is for the log, never for the caller.
 */
export class DependencyAccessDeniedError extends KeysmithError {
  constructor(readonly action: string) {
    super(
      500,
      'dependency_access_denied',
      'Internal server error',
      'Keysmith is not permitted to use one of its own resources (an IAM permission is missing); nothing was changed. An operator must fix the deployment.',
    );
  }
}

/**
 * The access-denied failure of an AWS call, with the IAM action it names (`... is not authorized to perform:
 * kms:Decrypt ...`) or `fallbackAction`; undefined for any other failure. Also reads the Encryption SDK's
 * wrapped keyring errors, which carry the KMS message in theirs.
 */
export function accessDenied(error: unknown, fallbackAction: string): DependencyAccessDeniedError | undefined {
  const e = error as { name?: unknown; message?: unknown };
  const text = `${String(e?.name ?? '')} ${String(e?.message ?? '')}`;
  if (!/AccessDenied|not authorized to perform/.test(text)) return undefined;
  return new DependencyAccessDeniedError(/perform: ([a-z0-9-]+:[A-Za-z]+)/.exec(text)?.[1] ?? fallbackAction);
}

/** The problem+json body of RFC 9457 with Keysmith's `code`. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  [extension: string]: unknown;
}

/** The URI that names a problem type; stable for each code. */
export const problemType = (code: string): string => `urn:keysmith:problem:${code}`;

/**
 * Maps any thrown value to a problem. Unknown errors become a bare 500 whose detail says only that
 * it failed: internal messages never reach the caller.
 */
export function toProblem(error: unknown): Problem {
  if (error instanceof KeysmithError) {
    return {
      type: problemType(error.code),
      title: error.title,
      status: error.status,
      detail: error.message,
      code: error.code,
      ...error.extensions,
    };
  }
  return {
    type: problemType('internal_error'),
    title: 'Internal server error',
    status: 500,
    detail: 'The request failed on our side. It is safe to retry.',
    code: 'internal_error',
  };
}
