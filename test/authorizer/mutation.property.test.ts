/**
 * Property: no change to a valid token is ever allowed. Byte flips in any segment, truncation, extension, and
 * decode-mutate-re-encode of the header or claims without re-signing are all refused (fast-check).
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { Authorizer } from '#shared/authorizer.ts';
import { decodeClientToken, type TokenRejectedError } from '#shared/token-policy.ts';
import { clientToken, encodeJson, MemoryDirectory, makeClient, POLICY, type TestClient } from './support.ts';

let client: TestClient;
let authorizer: Authorizer;
let tokens: string[];

beforeAll(async () => {
  client = makeClient(['EdDSA', 'ES256', 'RS256'], ['a:read', 'a:write']);
  authorizer = new Authorizer({ directory: new MemoryDirectory(client), policy: POLICY, revocationSeconds: 60 });
  tokens = [...client.keys.keys()].map((keyId) => clientToken(client, { keyId, claims: { scope: 'a:read' } }));
  for (const token of tokens) expect((await authorizer.authorize(token)).allow).toBe(true);
});

const CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ %\u00e9';
const anyToken = () => fc.integer({ min: 0, max: 2 }).map((i) => tokens[i]!);

async function expectRefused(original: string, mutated: string): Promise<void> {
  if (mutated === original) return;
  expect((await authorizer.authorize(mutated)).allow).toBe(false);
}

describe('mutations of a valid token', () => {
  it('refuses any character replaced, in any segment', async () => {
    await fc.assert(
      fc.asyncProperty(anyToken(), fc.nat(), fc.constantFrom(...CHARS), async (token, at, char) => {
        const index = at % token.length;
        await expectRefused(token, `${token.slice(0, index)}${char}${token.slice(index + 1)}`);
      }),
      { numRuns: 400 },
    );
  });

  it('refuses any bit flipped in the decoded bytes of any segment', async () => {
    await fc.assert(
      fc.asyncProperty(
        anyToken(),
        fc.integer({ min: 0, max: 2 }),
        fc.nat(),
        fc.integer({ min: 0, max: 7 }),
        async (token, s, at, bit) => {
          const segments = token.split('.');
          const bytes = Buffer.from(segments[s]!, 'base64url');
          bytes[at % bytes.length]! ^= 1 << bit;
          segments[s] = bytes.toString('base64url');
          await expectRefused(token, segments.join('.'));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('refuses truncation, insertion and deletion', async () => {
    await fc.assert(
      fc.asyncProperty(
        anyToken(),
        fc.nat(),
        fc.string({ minLength: 1, maxLength: 4 }),
        fc.nat({ max: 5 }),
        async (token, at, text, cut) => {
          const index = at % (token.length + 1);
          await expectRefused(token, token.slice(0, index));
          await expectRefused(token, `${token.slice(0, index)}${text}${token.slice(index)}`);
          await expectRefused(token, `${token.slice(0, index)}${token.slice(index + cut + 1)}`);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refuses header or claims decoded, changed and re-encoded without re-signing', async () => {
    const value = fc.oneof(
      fc.string(),
      fc.integer(),
      fc.double({ noNaN: true }),
      fc.boolean(),
      fc.constant(null),
      fc.array(fc.string(), { maxLength: 3 }),
      fc.constantFrom('EdDSA', 'ES256', 'RS256', 'none', 'HS256', 'a:read a:write', 'http://keysmith.test'),
    );
    const name = fc.oneof(
      fc.constantFrom('alg', 'kid', 'typ', 'jku', 'jwk', 'x5c', 'crit', 'iss', 'sub', 'aud', 'iat', 'exp', 'nbf', 'scope', 'jti'),
      fc.string({ maxLength: 8 }),
    );
    const edit = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), name, value }),
      fc.record({ kind: fc.constant('delete' as const), name }),
      fc.record({ kind: fc.constant('reorder' as const) }),
      fc.record({ kind: fc.constant('whitespace' as const) }),
    );
    await fc.assert(
      fc.asyncProperty(
        anyToken(),
        fc.boolean(),
        fc.array(edit, { minLength: 1, maxLength: 3 }),
        async (token, inHeader, edits) => {
          const [h, p, s] = token.split('.') as [string, string, string];
          const target = inHeader ? h : p;
          const object: Record<string, unknown> = JSON.parse(Buffer.from(target, 'base64url').toString('utf8'));
          let text: string | undefined;
          for (const e of edits) {
            if (e.kind === 'set') object[e.name] = e.value;
            else if (e.kind === 'delete') delete object[e.name];
            else if (e.kind === 'reorder') {
              const entries = Object.entries(object).reverse();
              for (const [k] of entries) delete object[k];
              for (const [k, v] of entries) object[k] = v;
            } else text = JSON.stringify(object, null, 1);
          }
          const encoded = text === undefined ? encodeJson(object) : Buffer.from(text).toString('base64url');
          await expectRefused(token, inHeader ? `${encoded}.${p}.${s}` : `${h}.${encoded}.${s}`);
        },
      ),
      { numRuns: 400 },
    );
  });
});

describe('base64url decoding', () => {
  it('accepts a segment exactly when it is the canonical encoding of its bytes', () => {
    const [h, p] = tokens[0]!.split('.') as [string, string];
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...alphabet), { minLength: 1, maxLength: 90 }), (chars) => {
        const segment = chars.join('');
        const canonical = Buffer.from(segment, 'base64url').toString('base64url') === segment;
        let accepted = true;
        try {
          decodeClientToken(`${h}.${p}.${segment}`, POLICY.issuerBase);
        } catch (error) {
          expect((error as TokenRejectedError).reason).toBe('malformed_token');
          accepted = false;
        }
        expect(accepted).toBe(canonical);
      }),
      { numRuns: 2000 },
    );
  });
});
