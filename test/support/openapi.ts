/**
 * Every response a test receives, checked against the OpenAPI document (shared/openapi.ts): the status must be
 * documented for the operation, the content type must be the documented one (no body where none is documented),
 * required headers must be there, and the body must match its schema. The document is built and compiled once
 * per test file, with ajv's JSON Schema 2020-12 (the dialect of OpenAPI 3.1) and its formats.
 */
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsPlugin from 'ajv-formats';
import { buildOpenApiDocument, type OpenApiDocument, type OpenApiMethod, type OpenApiResponse } from '#shared/openapi.ts';

// ajv-formats is CommonJS whose default export TypeScript sees as the module object.
const addFormats = addFormatsPlugin as unknown as typeof addFormatsPlugin.default;

/** The document the tests hold the API to (its server URL does not matter here). */
export const openApiDocument: OpenApiDocument = buildOpenApiDocument({ serverUrl: 'http://keysmith.test' });

// Strict, so a schema zod writes with a keyword ajv does not know fails here; strictTypes is off because the problem
// responses narrow `status` in an allOf branch that, rightly, repeats no `type`.
const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false });
addFormats(ajv);
// Each response schema is compiled with the document's components beside it, so `#/components/...` refs resolve.
ajv.addKeyword({ keyword: 'components' });

interface CompiledResponse {
  /** Where the response is in the document, for messages. */
  pointer: string;
  response: OpenApiResponse;
  bodies: Map<string, ValidateFunction>;
  headers: Map<string, { required: boolean; validate: ValidateFunction }>;
}

interface CompiledOperation {
  operationId: string;
  responses: Map<number, CompiledResponse>;
}

const compiledSchemas = new Map<unknown, ValidateFunction>();
function compile(schema: object): ValidateFunction {
  let validate = compiledSchemas.get(schema);
  if (!validate) {
    validate = ajv.compile({ ...schema, components: openApiDocument.components });
    compiledSchemas.set(schema, validate);
  }
  return validate;
}

/** A response or a `$ref` to one under `#/components/responses/`. */
function resolve(response: OpenApiResponse | { $ref: string }, pointer: string): { response: OpenApiResponse; pointer: string } {
  if (!('$ref' in response)) return { response, pointer };
  const name = /^#\/components\/responses\/(.+)$/.exec(response.$ref)?.[1];
  const resolved = name ? openApiDocument.components.responses[name] : undefined;
  if (!resolved) throw new Error(`${pointer}: unresolved $ref ${response.$ref}`);
  return { response: resolved, pointer: response.$ref };
}

function compileResponse(response: OpenApiResponse, pointer: string): CompiledResponse {
  return {
    pointer,
    response,
    bodies: new Map(Object.entries(response.content ?? {}).map(([type, { schema }]) => [type, compile(schema)])),
    headers: new Map(
      Object.entries(response.headers ?? {}).map(([name, header]) => [
        name.toLowerCase(),
        { required: header.required === true, validate: compile(header.schema) },
      ]),
    ),
  };
}

/** Every operation by its templated path as a pattern, most literal segments first (`/a/b` before `/a/{x}`). */
const operations = Object.entries(openApiDocument.paths)
  .map(([path, methods]) => ({
    path,
    pattern: new RegExp(`^${path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{\w+\}/g, '[^/]+')}$`),
    literals: path.split('/').filter((segment) => !segment.startsWith('{')).length,
    methods: new Map(
      Object.entries(methods).map(([method, operation]): [string, CompiledOperation] => [
        method,
        {
          operationId: operation.operationId,
          responses: new Map(
            Object.entries(operation.responses).map(([status, entry]) => {
              const { response, pointer } = resolve(entry, `#/paths/${path}/${method}/responses/${status}`);
              return [Number(status), compileResponse(response, pointer)];
            }),
          ),
        },
      ]),
    ),
  }))
  .sort((a, b) => b.literals - a.literals);

/**
 * What answers a method and path the document does not name: the local server's 404 `route_not_found` and 405
 * `method_not_allowed`, as API Gateway's own responses (cdk/problem-responses.ts) are. No operation describes them,
 * so they are held to the problem+json schema alone.
 */
const unrouted: CompiledOperation = {
  operationId: '(no route)',
  responses: new Map(
    ([404, 405] as const).map((status) => [
      status,
      compileResponse(
        {
          description: 'No route',
          content: {
            'application/problem+json': {
              schema: { allOf: [{ $ref: '#/components/schemas/Problem' }, { properties: { status: { const: status } } }] },
            },
          },
        },
        '#/components/schemas/Problem',
      ),
    ]),
  ),
};

/** Thrown when a response does not match the document. */
export class OpenApiMismatchError extends Error {
  override name = 'OpenApiMismatchError';
}

const excerpt = (body: unknown): string => {
  const text = JSON.stringify(body) ?? 'undefined';
  return text.length > 300 ? `${text.slice(0, 300)}...` : text;
};

const errorsText = (errors: ErrorObject[] | null | undefined): string =>
  (errors ?? []).map((e) => `  ${e.instancePath || '(root)'} ${e.message} ${JSON.stringify(e.params)}`).join('\n');

/**
 * Throws an {@link OpenApiMismatchError} unless the response fits the document: `concretePath` (a query string is
 * ignored) names an operation that documents `status`, the content type is the documented one (none for a response
 * without a body), and `body` (parsed JSON, undefined when empty) matches the schema. With `headers`, the documented
 * required headers must be present and match their schemas.
 */
export function assertMatchesOpenApi(
  method: string,
  concretePath: string,
  status: number,
  contentType: string | null | undefined,
  body: unknown,
  headers?: Headers,
): void {
  // A trailing slash is ignored, as the server (and API Gateway) ignore it.
  const path = concretePath.replace(/[?#].*$/, '').replace(/(.)\/+$/, '$1');
  // As the server routes: the first path with this method, the most literal one first.
  const operation =
    operations
      .filter((candidate) => candidate.pattern.test(path))
      .map((candidate) => candidate.methods.get(method.toLowerCase() as OpenApiMethod))
      .find((found) => found !== undefined) ?? unrouted;
  const where = `${method.toUpperCase()} ${path} (operation ${operation.operationId}) answered ${status}`;
  const mismatch = (problem: string) => new OpenApiMismatchError(`${where}: ${problem}\nbody: ${excerpt(body)}`);

  const documented = operation.responses.get(status);
  if (!documented)
    throw mismatch(`status ${status} is not documented (documented: ${[...operation.responses.keys()].join(', ')})`);

  const mediaType = contentType?.split(';')[0]?.trim().toLowerCase() ?? '';
  if (documented.bodies.size === 0) {
    if (body !== undefined) throw mismatch(`${documented.pointer} documents no body, but one came (${contentType})`);
  } else {
    const validate = documented.bodies.get(mediaType);
    if (!validate)
      throw mismatch(`content type "${contentType}" is not documented (documented: ${[...documented.bodies.keys()].join(', ')})`);
    if (!validate(body))
      throw mismatch(`the body does not match ${documented.pointer} (${mediaType}):\n${errorsText(validate.errors)}`);
  }

  if (headers)
    for (const [name, { required, validate }] of documented.headers) {
      const value = headers.get(name);
      if (value === null) {
        if (required) throw mismatch(`the required header ${name} is missing`);
      } else if (!validate(value))
        throw mismatch(`the header ${name}: ${JSON.stringify(value)} does not match:\n${errorsText(validate.errors)}`);
    }
}
