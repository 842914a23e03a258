/**
 * Builds the three npm packages of contract §13 from this repository's sources and, with `--pack`, writes their
 * tarballs to dist/packages/ (`npm run pack`). Each package's manifest, README and build output live in
 * packages/<name>/; its code is bundled from sdk/, cdk/ or cli/ with the shared/ domain inlined, so nothing but the
 * declared dependencies is imported at run time (checked here, from esbuild's metafile).
 *
 * - @keysmith/sdk: ESM + source maps + one rolled-up index.d.ts; imports jose and node built-ins only.
 * - @keysmith/cdk: the same for the constructs (peers aws-cdk-lib, constructs), plus the five Lambda handlers
 *   prebuilt by scripts/build-lambdas.ts into dist/lambda/, so a consumer's synth needs no bundler.
 * - @keysmith/cli: the `keysmith` command bundled whole (AWS SDK included, as the AWS CDK CLI ships), so it
 *   installs with no dependencies and runs under plain node; rarely used commands load as separate chunks.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BuildOptions, build, type Metafile } from 'esbuild';
import { rollup } from 'rollup';
import { dts } from 'rollup-plugin-dts';
import { buildLambdas } from './build-lambdas.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const rootManifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

/** The oldest Node the packages support (their `engines`); the Lambda code targets Lambda's own Node instead. */
const LIBRARY_TARGET = 'node20';

interface PackageSpec {
  /** Folder under packages/. */
  folder: 'sdk' | 'cdk' | 'cli';
  /** What a package may import at run time, besides node built-ins. */
  allowedImports: RegExp;
  build(out: string): Promise<Metafile>;
  /** The entry whose declarations are rolled up into dist/index.d.ts, if the package has types. */
  typesEntry?: string;
}

const library = (entry: string, out: string): BuildOptions => ({
  entryPoints: [join(root, entry)],
  outfile: join(out, 'index.js'),
  bundle: true,
  packages: 'external',
  platform: 'node',
  format: 'esm',
  target: LIBRARY_TARGET,
  sourcemap: true,
  metafile: true,
  logLevel: 'warning',
});

const PACKAGES: PackageSpec[] = [
  {
    folder: 'sdk',
    allowedImports: /^jose$/,
    typesEntry: 'sdk/index.ts',
    build: async (out) => (await build(library('sdk/index.ts', out))).metafile!,
  },
  {
    folder: 'cdk',
    allowedImports: /^(aws-cdk-lib(\/[a-z0-9-]+)*|constructs)$/,
    typesEntry: 'cdk/index.ts',
    build: async (out) => {
      const metafile = (await build(library('cdk/index.ts', out))).metafile!;
      // Beside dist/index.js, where cdk/lambda-code.ts looks for them (`../dist/lambda/<name>` of the module).
      await buildLambdas((name) => join(out, 'lambda', name));
      return metafile;
    },
  },
  {
    folder: 'cli',
    allowedImports: /^$/,
    build: async (out) =>
      (
        await build({
          entryPoints: { keysmith: join(root, 'cli/bin.ts') },
          outdir: out,
          entryNames: '[name]',
          chunkNames: 'chunks/[name]-[hash]',
          splitting: true,
          bundle: true,
          platform: 'node',
          format: 'esm',
          target: LIBRARY_TARGET,
          minify: true,
          sourcemap: true,
          mainFields: ['module', 'main'],
          // CommonJS dependencies bundled into an ES module call require(); give them one.
          banner: {
            js: "import { createRequire as __keysmithCreateRequire } from 'node:module'; const require = __keysmithCreateRequire(import.meta.url);",
          },
          metafile: true,
          logLevel: 'warning',
        })
      ).metafile!,
  },
];

/** The package's manifest must follow the repository's: one version, and the dependency ranges the lockfile tested. */
function checkManifest(folder: string): Record<string, any> {
  const manifest = JSON.parse(readFileSync(join(root, 'packages', folder, 'package.json'), 'utf8'));
  if (manifest.version !== rootManifest.version)
    throw new Error(`${manifest.name}: version ${manifest.version} is not the repository's ${rootManifest.version}`);
  for (const [name, range] of Object.entries(manifest.dependencies ?? {})) {
    const tested = rootManifest.dependencies?.[name] ?? rootManifest.devDependencies?.[name];
    if (tested !== range) throw new Error(`${manifest.name}: ${name} ${range} is not the range the repository tests (${tested})`);
  }
  return manifest;
}

/** Fails when the bundle imports anything at run time but node built-ins and what the package allows. */
function checkImports(name: string, metafile: Metafile, allowed: RegExp): void {
  const imports = Object.values(metafile.outputs).flatMap((output) => output.imports.filter((i) => i.external));
  const stray = [...new Set(imports.map((i) => i.path))].filter(
    (path) => !path.startsWith('node:') && !builtinModules.includes(path) && !allowed.test(path),
  );
  if (stray.length > 0) throw new Error(`${name} would import ${stray.join(', ')} at run time: not a declared dependency`);
}

async function rollUpDeclarations(entry: string, file: string): Promise<void> {
  const bundle = await rollup({
    input: join(root, entry),
    plugins: [dts({ tsconfig: join(root, 'tsconfig.json'), compilerOptions: { noEmit: false } })],
    // Everything but Keysmith's own modules stays an import: the package's dependencies and node's types.
    external: (id) => !id.startsWith('.') && !id.startsWith('/') && !id.startsWith('#'),
  });
  await bundle.write({ file, format: 'es' });
  await bundle.close();
}

/** Builds every package into packages/<name>/dist; returns the built manifests. */
export async function buildPackages(): Promise<Record<string, any>[]> {
  const manifests: Record<string, any>[] = [];
  for (const spec of PACKAGES) {
    const manifest = checkManifest(spec.folder);
    const folder = join(root, 'packages', spec.folder);
    const out = join(folder, 'dist');
    rmSync(out, { recursive: true, force: true });
    mkdirSync(out, { recursive: true });
    checkImports(manifest.name, await spec.build(out), spec.allowedImports);
    if (spec.typesEntry) await rollUpDeclarations(spec.typesEntry, join(out, 'index.d.ts'));
    copyFileSync(join(root, 'LICENSE'), join(folder, 'LICENSE'));
    manifests.push(manifest);
    console.log(`built ${manifest.name}@${manifest.version}`);
  }
  return manifests;
}

/** Packs every built package into `destination`; returns each tarball's path and size. */
export function packPackages(destination = join(root, 'dist', 'packages')): { name: string; file: string; bytes: number }[] {
  rmSync(destination, { recursive: true, force: true });
  mkdirSync(destination, { recursive: true });
  return PACKAGES.map((spec) => {
    const output = execFileSync(
      'npm',
      ['pack', join(root, 'packages', spec.folder), '--pack-destination', destination, '--json'],
      {
        cwd: root,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const [packed] = JSON.parse(output) as { name: string; filename: string; unpackedSize: number }[];
    const file = join(destination, packed!.filename);
    return { name: packed!.name, file, bytes: statSync(file).size };
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await buildPackages();
  if (process.argv.includes('--pack'))
    for (const { name, file, bytes } of packPackages())
      console.log(`packed ${name.padEnd(14)} ${(bytes / 1024).toFixed(0).padStart(6)} KiB  ${file}`);
}
