/**
 * Builds the console (console/src) into a directory the discovery function serves (shared/console.ts): one script
 * and one style sheet named by their content's hash, and the page template naming them. The output is deterministic,
 * and a file is written only when it changed. The build fails when the console outgrows its budget.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { CONSOLE_INDEX } from '#shared/console.ts';

/** What the browser downloads, gzipped, at most (issue #14). */
export const CONSOLE_BUDGET_BYTES = 150 * 1024;

const here = fileURLToPath(new URL('.', import.meta.url));

export interface ConsoleBuild {
  /** The files written (or already there), by name. */
  files: string[];
  /** The page, the script and the style sheet, each gzipped, summed. */
  gzipBytes: number;
}

export async function buildConsole(outDir: string): Promise<ConsoleBuild> {
  const result = await build({
    entryPoints: { app: join(here, 'src', 'main.tsx') },
    outdir: outDir,
    entryNames: '[name]-[hash]',
    bundle: true,
    platform: 'browser',
    format: 'esm',
    // What WebCrypto's Ed25519 needs anyway: Chrome 137, Firefox 129, Safari 17.
    target: ['chrome120', 'firefox128', 'safari17'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    minify: true,
    legalComments: 'none',
    metafile: true,
    write: false,
    logLevel: 'warning',
  });
  const outputs = new Map(result.outputFiles.map((file) => [basename(file.path), file.contents]));
  const js = [...outputs.keys()].find((name) => name.endsWith('.js'));
  const css = [...outputs.keys()].find((name) => name.endsWith('.css'));
  if (!js || !css) throw new Error(`console build: expected a script and a style sheet, got ${[...outputs.keys()].join(', ')}`);
  const page = readFileSync(join(here, 'index.html'), 'utf8').replaceAll('{{js}}', js).replaceAll('{{css}}', css);
  outputs.set(CONSOLE_INDEX, new TextEncoder().encode(page));

  mkdirSync(outDir, { recursive: true });
  for (const [name, contents] of outputs) {
    const path = join(outDir, name);
    if (existsSync(path) && readFileSync(path).equals(contents)) continue;
    writeFileSync(path, contents);
  }
  for (const stale of readdirSync(outDir)) if (!outputs.has(stale)) rmSync(join(outDir, stale), { recursive: true });

  const gzipBytes = [...outputs.values()].reduce((sum, contents) => sum + gzipSync(contents, { level: 9 }).byteLength, 0);
  if (gzipBytes > CONSOLE_BUDGET_BYTES)
    throw new Error(`console build: ${gzipBytes} bytes gzipped, over the budget of ${CONSOLE_BUDGET_BYTES}`);
  return { files: [...outputs.keys()].sort(), gzipBytes };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = process.argv[2] ?? join(here, '..', '.keysmith', 'console');
  const { files, gzipBytes } = await buildConsole(out);
  console.log(`console: ${files.join(', ')} in ${out}, ${(gzipBytes / 1024).toFixed(1)} KiB gzipped`);
}
