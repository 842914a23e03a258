/** The SDK runs in a service client with no AWS SDK: nothing under sdk/ may pull it in, directly or not. */
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';

describe('the SDK', () => {
  it('imports no AWS SDK, middy or Powertools, and only jose from node_modules', async () => {
    const result = await build({
      entryPoints: [
        'sdk/index.ts',
        'sdk/token.ts',
        'sdk/token-provider.ts',
        'sdk/fetch.ts',
        'sdk/verifier.ts',
        'sdk/admin.ts',
        'sdk/admin-client.ts',
        'sdk/admin-types.ts',
        'sdk/errors.ts',
      ],
      bundle: true,
      write: false,
      platform: 'node',
      format: 'esm',
      outdir: 'out',
      metafile: true,
      logLevel: 'silent',
    });
    const inputs = Object.keys(result.metafile.inputs);
    expect(inputs.filter((path) => /@aws-sdk|@aws-crypto|@middy|@aws-lambda-powertools|zod/.test(path))).toEqual([]);
    const packages = new Set(
      inputs.filter((p) => p.includes('node_modules/')).map((p) => p.split('node_modules/')[1]?.split('/')[0]),
    );
    expect([...packages]).toEqual(['jose']);
    expect(inputs.filter((p) => !p.includes('node_modules/')).every((p) => /^(sdk|shared)\//.test(p))).toBe(true);
  });
});
