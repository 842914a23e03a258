/** The hand-written bearer parser accepts exactly what `^Bearer +([^ ]+) *$` (case-insensitive) accepts. */
import fc from 'fast-check';
import { expect, it } from 'vitest';
import { bearerToken } from '#lambdas/authorizer/handler.ts';

const reference = (value: string | undefined): string | undefined =>
  value ? /^Bearer +([^ ]+) *$/i.exec(value)?.[1] : undefined;

// Strings made mostly of the characters that matter, so prefixes, spaces and case variants come up often.
const header = fc.oneof(
  fc.string({ unit: fc.constantFrom('B', 'b', 'E', 'e', 'A', 'a', 'R', 'r', ' ', '\t', 'x', '.', '-'), maxLength: 20 }),
  fc
    .tuple(
      fc.constantFrom('Bearer', 'bearer', 'BEARER', 'BeArEr', 'Bearer:', 'Basic', 'Bear', ''),
      fc.string({ unit: fc.constantFrom(' ', '\t'), maxLength: 3 }),
      fc.string({ maxLength: 30 }),
      fc.string({ unit: fc.constantFrom(' ', '\t', 'x'), maxLength: 3 }),
    )
    .map((parts) => parts.join('')),
  fc.string({ maxLength: 40 }),
);

it('matches the regex it replaced on every header', () => {
  fc.assert(
    fc.property(header, (value) => {
      expect(bearerToken(value)).toBe(reference(value));
    }),
    { numRuns: 20_000 },
  );
  for (const value of [undefined, '', 'Bearer', 'Bearer ', 'Bearer  ', 'Bearer a', 'bearer  a  ', 'Bearer a b', 'Bearer\ta'])
    expect(bearerToken(value)).toBe(reference(value));
});
