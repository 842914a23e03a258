/**
 * `npm start` as a user runs it (a child process, in a fresh directory), then the README's curl quickstart block
 * exactly as written, but for the port and `npx keysmith` (the fresh directory is not the repository).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '#local/dynamodb-local.ts';
import { REPO as repo, startKeysmith, untilRunning, userEnv } from '../support/local-start.ts';

const run = promisify(execFile);
const cwd = mkdtempSync(join(tmpdir(), 'keysmith-start-'));

const listening = (port: number) =>
  new Promise<boolean>((done) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });

let port: number;
let keysmith: ReturnType<typeof startKeysmith>;

beforeAll(async () => {
  port = await freePort();
  // Left behind too open (as by an older Keysmith or a careless copy): npm start must tighten them.
  mkdirSync(join(cwd, '.keysmith'), { mode: 0o755 });
  writeFileSync(join(cwd, '.keysmith/local.json'), '{}\n', { mode: 0o644 });
  keysmith = startKeysmith(cwd, port);
  await untilRunning(keysmith);
}, 60_000);

afterAll(async () => {
  keysmith.kill();
  rmSync(cwd, { recursive: true, force: true });
});

describe('npm start', () => {
  it('prints an admin access key and writes .keysmith/local.json (mode 0600)', () => {
    const state = JSON.parse(readFileSync(join(cwd, '.keysmith/local.json'), 'utf8'));
    expect(Object.keys(state).sort()).toEqual([
      'adminAccessKey',
      'audiences',
      'baseUrl',
      'dynamodbEndpoint',
      'issuerBase',
      'tables',
    ]);
    expect(state.baseUrl).toBe(`http://localhost:${port}`);
    expect(state.issuerBase).toBe(`http://localhost:${port}`);
    expect(state.tables).toEqual({ main: 'keysmith-main', audit: 'keysmith-audit', usage: 'keysmith-usage' });
    expect(keysmith.output()).toContain(state.adminAccessKey);
    expect(statSync(join(cwd, '.keysmith/local.json')).mode & 0o777).toBe(0o600);
    expect(statSync(join(cwd, '.keysmith/audit-wrapping-key')).mode & 0o777).toBe(0o600);
  });

  it('keeps .keysmith/ at 0700 and every file in it at 0600, also those that existed before', () => {
    expect(statSync(join(cwd, '.keysmith')).mode & 0o777).toBe(0o700);
    const files = readdirSync(join(cwd, '.keysmith'));
    expect(files).toEqual(
      expect.arrayContaining([
        'local.json',
        'audit-wrapping-key',
        'seal-key',
        'token-signing-key',
        'audit-digest-key',
        'audit-digests',
        'local.pid',
      ]),
    );
    for (const file of files) {
      const stat = statSync(join(cwd, '.keysmith', file));
      expect(stat.mode & 0o777, file).toBe(stat.isDirectory() ? 0o700 : 0o600);
    }
  });

  it('runs DynamoDB Local on the loopback address only', () => {
    const state = JSON.parse(readFileSync(join(cwd, '.keysmith/local.json'), 'utf8'));
    const dynamodbPort = Number(new URL(state.dynamodbEndpoint).port).toString(16).toUpperCase().padStart(4, '0');
    // The kernel's own table of listening sockets (state 0A): no connection to any other address is needed.
    const listeners = ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((file) =>
      readFileSync(file, 'utf8')
        .split('\n')
        .slice(1)
        .map((line) => line.trim().split(/\s+/))
        .filter((fields) => fields[3] === '0A' && fields[1]?.endsWith(`:${dynamodbPort}`))
        .map((fields) => fields[1]!.split(':')[0]!),
    );
    expect(listeners.length).toBeGreaterThan(0);
    for (const address of listeners) expect(['0100007F', '0000000000000000FFFF00000100007F']).toContain(address);
    expect(keysmith.output()).not.toContain('could not be bound to 127.0.0.1');
  });

  it('serves the README quickstart as written', async () => {
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Quickstart (curl)'));
    const block = /```bash\n([\s\S]*?)```/.exec(section)?.[1];
    expect(block).toBeDefined();
    const script = (block as string)
      .replaceAll('http://localhost:3000', `http://localhost:${port}`)
      .replaceAll('npx keysmith', `node ${join(repo, 'bin/keysmith.mjs')}`);
    const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', script], { cwd, env: userEnv({ PORT: String(port) }) });
    const whoami = JSON.parse(stdout.trim().split('\n').at(-1) as string);
    expect(whoami).toMatchObject({ tenantId: 'acme', scopes: 'invoices:read' });
    expect(whoami.clientId).toMatch(/^sc_/);
  });

  it("serves the README's OAuth quickstart after it, as written: an access token for the new client", async () => {
    const readme = readFileSync(join(repo, 'README.md'), 'utf8');
    const blockOf = (heading: string) => /```bash\n([\s\S]*?)```/.exec(readme.slice(readme.indexOf(heading)))?.[1] as string;
    // The curl quickstart ends with whoami's answer, without a newline: an echo between the two keeps lines apart.
    const script = `${blockOf('## Quickstart (curl)')}\necho\n${blockOf('## Quickstart (OAuth 2.0 access tokens)')}`
      .replaceAll('http://localhost:3000', `http://localhost:${port}`)
      .replaceAll('npx keysmith', `node ${join(repo, 'bin/keysmith.mjs')}`);
    const { stdout } = await run('bash', ['-euo', 'pipefail', '-c', script], { cwd, env: userEnv({ PORT: String(port) }) });
    const granted = JSON.parse(stdout.trim().split('\n').at(-1) as string);
    expect(granted).toMatchObject({ token_type: 'Bearer', expires_in: 300, scope: 'invoices:read' });
    expect(granted.access_token.split('.')).toHaveLength(3);
  });

  it('a second npm start says Keysmith is already running and exits 1', async () => {
    const second = startKeysmith(cwd, port);
    expect(await second.exited).toBe(1);
    expect(second.output()).toContain('already running');
  });

  it('Ctrl-C stops Keysmith and DynamoDB Local', async () => {
    const state = JSON.parse(readFileSync(join(cwd, '.keysmith/local.json'), 'utf8'));
    const dynamodbPort = Number(new URL(state.dynamodbEndpoint).port);
    expect(await listening(dynamodbPort)).toBe(true);
    keysmith.child.kill('SIGINT');
    expect(await keysmith.exited).toBe(0);
    expect(await listening(port)).toBe(false);
    expect(await listening(dynamodbPort)).toBe(false);
  });
});
