/**
 * `npm start` as a user runs it: local/start.ts in a child process, in a fresh directory outside the repository,
 * with none of the test run's Keysmith variables. Shared by the quickstart and package tests.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '../..');
const tsx = join(REPO, 'node_modules/.bin/tsx');

/** The environment of a user's shell: none of the test run's Keysmith variables. */
export function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  for (const name of Object.keys(env)) if (name.startsWith('KEYSMITH_') || name === 'AWS_ENDPOINT_URL_DYNAMODB') delete env[name];
  return { ...env, ...extra };
}

export interface RunningKeysmith {
  child: ChildProcess;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  exited: Promise<number | null>;
  /**
   * Kills it at once with everything it started (tsx's node and DynamoDB Local's java): it runs in a process group
   * of its own, and a SIGKILL of tsx alone would leave them running after the tests.
   */
  kill(): void;
}

/** Starts `npm start`'s local stack in `cwd` on `port`. */
export function startKeysmith(cwd: string, port: number): RunningKeysmith {
  const child = spawn(tsx, [join(REPO, 'local/start.ts')], {
    cwd,
    env: userEnv({ PORT: String(port) }),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  const kill = () => {
    try {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    } catch {
      // The group is gone already.
    }
  };
  return { child, output: () => output, exited, kill };
}

/** Waits for the "Keysmith is running" line; fails with the output if it exits or takes too long. */
export async function untilRunning(keysmith: RunningKeysmith, timeoutMs = 45_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!keysmith.output().includes('Keysmith is running')) {
    if (Date.now() > deadline || keysmith.child.exitCode !== null)
      throw new Error(`npm start did not come up:\n${keysmith.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** What `npm start` wrote to `<cwd>/.keysmith/local.json`. */
export function localState(cwd: string): {
  adminAccessKey: string;
  baseUrl: string;
  issuerBase: string;
  audiences: string[];
} {
  return JSON.parse(readFileSync(join(cwd, '.keysmith/local.json'), 'utf8'));
}
