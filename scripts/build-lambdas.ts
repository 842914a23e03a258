/**
 * Bundles every Lambda handler of KEYSMITH_FUNCTIONS (lambdas/<name>/handler.ts) for Lambda's nodejs24.x: ESM, minified, with
 * source maps, the AWS SDK included (Lambda runs the versions the lockfile pins and the tests ran); the discovery
 * function gets the console (console/build.ts) beside its bundle.
 * `npm run build:lambdas` writes them where cdk/lambda-code.ts finds them; the package build copies them.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { KEYSMITH_FUNCTIONS, LAMBDA_ENTRY_FILE, lambdaCodeDirectory } from '../cdk/lambda-code.ts';
import { buildConsole } from '../console/build.ts';

/** Where the discovery function finds the console it serves: beside its bundle. */
export const CONSOLE_FOLDER = 'console';

/** Lambda's Node major, for esbuild's syntax target. */
export const LAMBDA_NODE_TARGET = 'node24';

const root = fileURLToPath(new URL('..', import.meta.url));

/** Bundles every function into `directoryOf(name)`; returns each bundle's size in bytes (without its source map). */
export async function buildLambdas(
  directoryOf: (name: (typeof KEYSMITH_FUNCTIONS)[number]) => string = lambdaCodeDirectory,
): Promise<Record<string, number>> {
  const sizes: Record<string, number> = {};
  await Promise.all(
    KEYSMITH_FUNCTIONS.map(async (name) => {
      const directory = directoryOf(name);
      const result = await build({
        entryPoints: [join(root, 'lambdas', name, 'handler.ts')],
        outfile: join(directory, LAMBDA_ENTRY_FILE),
        bundle: true,
        platform: 'node',
        format: 'esm',
        target: LAMBDA_NODE_TARGET,
        minify: true,
        sourcemap: true,
        // Mappings are enough for stack traces (NODE_OPTIONS=--enable-source-maps); the sources stay out of the asset.
        sourcesContent: false,
        mainFields: ['module', 'main'],
        // CommonJS dependencies call require(); an ES module has none unless we make one.
        banner: {
          js: "import { createRequire as __keysmithCreateRequire } from 'node:module'; const require = __keysmithCreateRequire(import.meta.url);",
        },
        metafile: true,
        write: false,
        logLevel: 'warning',
      });
      // A file is written only when it changed, so a synth reading the bundles while another build runs never sees
      // a half-written or missing one (the output is deterministic).
      mkdirSync(directory, { recursive: true });
      for (const file of result.outputFiles) {
        if (existsSync(file.path) && readFileSync(file.path).equals(file.contents)) continue;
        writeFileSync(file.path, file.contents);
      }
      const expected = new Set(result.outputFiles.map((file) => basename(file.path)));
      if (name === 'discovery') {
        await buildConsole(join(directory, CONSOLE_FOLDER));
        expected.add(CONSOLE_FOLDER);
      }
      for (const stale of readdirSync(directory)) if (!expected.has(stale)) rmSync(join(directory, stale), { recursive: true });
      sizes[name] = result.outputFiles.find((file) => file.path.endsWith(LAMBDA_ENTRY_FILE))?.contents.byteLength ?? 0;
    }),
  );
  return sizes;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const sizes = await buildLambdas();
  if (!process.argv.includes('--quiet'))
    for (const [name, bytes] of Object.entries(sizes))
      console.log(`  ${name.padEnd(10)} ${(bytes / 1024).toFixed(0).padStart(5)} KiB  ${lambdaCodeDirectory(name as never)}`);
}
