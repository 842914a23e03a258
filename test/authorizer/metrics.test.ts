/** The authorizer counts denials and failures by reason (CloudWatch EMF), and no metric line carries the token. */
import { Metrics } from '@aws-lambda-powertools/metrics';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import { createAuthorizerHandler } from '#lambdas/authorizer/handler.ts';
import { usageFailureReporter } from '#lambdas/metrics.ts';
import { Authorizer } from '#shared/authorizer.ts';
import { UsageRecorder } from '#shared/usage.ts';
import { clientToken, MemoryDirectory, makeClient, POLICY, tokenEvent } from './support.ts';

let lines: string[];
beforeEach(() => {
  lines = [];
  vi.stubEnv('POWERTOOLS_METRICS_DISABLED', 'false');
  vi.stubEnv('POWERTOOLS_DEV', 'false');
  const capture = (chunk: unknown) => {
    lines.push(String(chunk));
    return true;
  };
  vi.spyOn(process.stdout, 'write').mockImplementation(capture);
  vi.spyOn(process.stderr, 'write').mockImplementation(capture);
});
afterEach(() => {
  vi.restoreAllMocks();
  vi.unstubAllEnvs();
});

/** The EMF documents written, parsed. */
const emf = () =>
  lines
    .flatMap((line) => line.split('\n'))
    .filter((line) => line.includes('"_aws"'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);

it('counts a denial with its reason and a failure as Unavailable, never writing the token', async () => {
  const client = makeClient(['EdDSA']);
  const directory = new MemoryDirectory(client);
  const metrics = new Metrics({ namespace: 'Keysmith', serviceName: 'keysmith-authorizer' });
  const handler = createAuthorizerHandler(new Authorizer({ directory, policy: POLICY, revocationSeconds: 60 }), { metrics });

  const wrongAudience = clientToken(client, { claims: { aud: 'https://elsewhere.example' } });
  await expect(handler(tokenEvent(`Bearer ${wrongAudience}`))).rejects.toThrow('Unauthorized');
  expect(emf()).toEqual([expect.objectContaining({ reason: 'invalid_audience', Denied: 1 })]);

  directory.failure = () => Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
  const other = makeClient(['EdDSA']);
  await expect(handler(tokenEvent(`Bearer ${clientToken(other)}`))).rejects.toThrow('authorizer unavailable');
  expect(emf().at(-1)).toEqual(expect.objectContaining({ Unavailable: 1 }));
  expect(String(emf().at(-1)?.reason)).toMatch(/^directory_/);

  const allowed = clientToken(client);
  directory.failure = undefined;
  await handler(tokenEvent(`Bearer ${allowed}`));
  expect(emf()).toHaveLength(2);
  const written = lines.join('');
  for (const token of [wrongAudience, allowed]) for (const part of token.split('.')) expect(written).not.toContain(part);
});

it('counts a failed last-used write as LastUsedWriteFailed and still allows', async () => {
  const client = makeClient(['EdDSA']);
  const metrics = new Metrics({ namespace: 'Keysmith', serviceName: 'keysmith-authorizer' });
  const failing = { send: () => Promise.reject(Object.assign(new Error('injected'), { name: 'InternalServerError' })) };
  const usage = new UsageRecorder({
    documentClient: failing as never,
    tableName: 'keysmith-test-usage',
    windowSeconds: 300,
    onFailure: usageFailureReporter(metrics),
  });
  const authorizer = new Authorizer({
    directory: new MemoryDirectory(client),
    policy: POLICY,
    revocationSeconds: 60,
    onKeyUsed: (clientId, keyId) => usage.record(clientId, keyId),
  });
  const handler = createAuthorizerHandler(authorizer, { metrics });
  const allowed = clientToken(client);
  const result = await handler(tokenEvent(`Bearer ${allowed}`));
  expect(result).toMatchObject({ principalId: client.clientId });
  await usage.flush();
  expect(emf()).toEqual([expect.objectContaining({ LastUsedWriteFailed: 1 })]);
  for (const part of allowed.split('.')) expect(lines.join('')).not.toContain(part);
});
