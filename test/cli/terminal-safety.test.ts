/**
 * The CLI never prints raw what could drive a terminal. The tables are untrusted (contract §14): someone who
 * writes DynamoDB directly can put escape sequences, C1 controls, bidirectional overrides or newlines into a
 * name, a tag or a description, and the API returns them. Here a stubbed fetch answers with such values.
 */
import { rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { run } from '#cli/main.ts';
import { formatAccessKey, generateAccessKeyPair } from '#shared/access-key.ts';

/** Raw C0 (newline included), DEL, C1, the bidirectional controls and the Unicode line separators. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is the point.
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** What an attacker could store: SGR through ESC and through C1 CSI, an RTL override, a fake line, and more. */
const EVIL =
  'Zoë 東京 \u001b[31mred\u001b[0m \u009b31mcsi \u202eolleh\u202c\nFAKE LINE\r\u0007\u0000\u007f\u0085\u2066\u2069\u200f\u061c\u2028end';
/** Short enough that the CLI's redaction of long arguments leaves it alone (under 40 characters). */
const ARG_EVIL = 'x\u001b[2J\u009b1m\u202ey\nz';

const BASE_URL = 'https://keysmith.invalid';
const TENANT = 'acme';
const CLIENT_ID = `sc_${'A'.repeat(22)}`;
const MISSING_ID = `sc_${'B'.repeat(22)}`;
const KEY_ID = 'k3y1d000';

const client = {
  clientId: CLIENT_ID,
  tenantId: TENANT,
  name: EVIL,
  description: EVIL,
  enabled: true,
  scopes: ['invoices:read', EVIL],
  tags: { [EVIL]: EVIL, team: EVIL },
  issuer: `${BASE_URL}/v1/clients/${CLIENT_ID}`,
  createdAt: EVIL,
  updatedAt: '2026-01-01T00:00:00.000Z',
};
const clientList = { items: [client], nextCursor: EVIL };
const key = {
  keyId: KEY_ID,
  clientId: CLIENT_ID,
  algorithm: EVIL,
  publicKey: { kty: 'OKP', crv: 'Ed25519', x: EVIL, kid: KEY_ID },
  origin: EVIL,
  status: EVIL,
  createdAt: EVIL,
  expiresAt: EVIL,
};
const createdKey = { ...key, accessKey: `${CLIENT_ID}.${KEY_ID}.${TENANT}.AAAA` };
const registeredKey = { ...key, keyId: EVIL, clientId: EVIL };
const audit = {
  items: [
    {
      eventId: 'ev_1',
      seq: 2,
      occurredAt: EVIL,
      action: EVIL,
      actor: { type: 'client', clientId: EVIL },
      target: { clientId: EVIL, keyId: EVIL },
    },
    { eventId: 'ev_0', seq: 1, occurredAt: EVIL, action: EVIL, actor: { type: 'system', name: EVIL }, integrity: 'failed' },
  ],
  nextCursor: EVIL,
};
const whoami = { clientId: EVIL, tenantId: EVIL, keyId: EVIL, scopes: EVIL };
const problem = { type: 'urn:keysmith:problem:x', title: EVIL, status: 400, detail: EVIL, code: EVIL };

/** The crafted API: each answer carries EVIL wherever the server would put stored text. */
const stubFetch = (async (input: string | URL | Request, init?: RequestInit) => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  const method = init?.method ?? 'GET';
  const path = decodeURIComponent(url.pathname);
  const answer = (status: number, body?: unknown) =>
    new Response(body === undefined ? null : JSON.stringify(body), {
      status,
      headers: { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json' },
    });
  const clients = `/v1/tenants/${TENANT}/clients`;
  if (method === 'GET' && path === '/v1/whoami') return answer(200, whoami);
  if (method === 'GET' && path === clients) return answer(200, clientList);
  if (method === 'POST' && path === clients) return answer(201, client);
  if (method === 'GET' && path === `${clients}/${CLIENT_ID}`) return answer(200, client);
  if (method === 'PATCH' && path === `${clients}/${CLIENT_ID}`) return answer(200, client);
  if (method === 'GET' && path === `${clients}/${CLIENT_ID}/access-keys`) return answer(200, { items: [key] });
  if (method === 'POST' && path === `${clients}/${CLIENT_ID}/access-keys`)
    return answer(201, String(init?.body ?? '').includes('publicKey') ? registeredKey : createdKey);
  if (method === 'GET' && path === `/v1/tenants/${TENANT}/audit-events`) return answer(200, audit);
  // Other tenants and clients (named by the user's own arguments) are empty.
  if (method === 'GET' && /^\/v1\/tenants\/[^/]+\/clients(\/[^/]+\/access-keys)?$/.test(path)) return answer(200, { items: [] });
  if (method === 'DELETE') return answer(204);
  return answer(400, problem);
}) as typeof fetch;

/** A fetch that cannot reach the deployment, with an attacker-chosen cause. */
const unreachableFetch = (async () => {
  throw Object.assign(new TypeError('fetch failed'), { cause: { message: EVIL } });
}) as typeof fetch;

let accessKey: string;
beforeAll(async () => {
  const pair = await generateAccessKeyPair('EdDSA');
  accessKey = formatAccessKey(CLIENT_ID, KEY_ID, TENANT, pair.privateKeyPkcs8);
});

/** Runs the CLI in-process against the stub, the way cli.test.ts does against the local stack. */
async function cli(args: string[], { fetch = stubFetch, connect = true } = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const connection = connect ? ['--base-url', BASE_URL, '--access-key', accessKey] : [];
  const code = await run(
    [...args, ...connection],
    (line) => out.push(line),
    (line) => err.push(line),
    { fetch, env: {}, local: () => ({}) },
  );
  return { code, out, err, stdout: out.join('\n'), stderr: err.join('\n') };
}

/** Every printed line free of raw control characters (C0 of any kind, DEL, C1, bidi, line separators). */
function expectNoRawControls(printed: string[], what: string) {
  expect(printed.length, `${what} printed nothing`).toBeGreaterThan(0);
  for (const chunk of printed)
    for (const line of chunk.split('\n')) {
      const found = UNSAFE.exec(line);
      expect(
        found,
        `${what}: raw U+${found?.[0].charCodeAt(0).toString(16).padStart(4, '0')} in ${JSON.stringify(line)}`,
      ).toBeNull();
    }
}

/** Human output: one line per print (a newline in a name fakes no line), escapes visible, other Unicode kept. */
function expectSafeHuman(result: Awaited<ReturnType<typeof cli>>, what: string, stream: 'out' | 'err' = 'out') {
  const printed = [...result.out, ...result.err];
  expectNoRawControls(printed, what);
  for (const chunk of printed) expect(chunk.includes('\n'), `${what}: a line break inside ${JSON.stringify(chunk)}`).toBe(false);
  expect(
    result.out.some((line) => line.includes('FAKE LINE') && line.startsWith('FAKE')),
    `${what}: a faked line`,
  ).toBe(false);
  const text = stream === 'out' ? result.stdout : result.stderr;
  expect(text, what).toContain('\\u001b[31mred');
  expect(text, what).toContain('\\u009b31mcsi');
  expect(text, what).toContain('\\u202eolleh');
  expect(text, what).toContain('\\u000aFAKE LINE');
  expect(text, what).toContain('Zoë 東京');
}

/** `--json` output: no raw controls on any line, and it parses back to exactly what the API sent. */
function expectSafeJson(printed: string[], expected: unknown, what: string) {
  expectNoRawControls(printed, what);
  expect(JSON.parse(printed.join('\n')), what).toEqual(expected);
}

describe('the CLI prints nothing raw that could drive a terminal', () => {
  it('clients list: the table and --json', async () => {
    const table = await cli(['clients', 'list']);
    expect(table.code).toBe(0);
    expectSafeHuman(table, 'clients list');
    // A header, one row for the one client, and the cursor line: the newline in the name made no row.
    expect(table.out).toHaveLength(3);
    expect(table.out[1]?.startsWith(CLIENT_ID)).toBe(true);
    expect(table.out[2]?.startsWith('More: --cursor ')).toBe(true);

    const json = await cli(['clients', 'list', '--json']);
    expect(json.code).toBe(0);
    expectSafeJson(json.out, clientList, 'clients list --json');
    // The escapes JSON.stringify leaves out are there as JSON escapes.
    expect(json.stdout).toContain('\\u009b31mcsi');
    expect(json.stdout).toContain('\\u202eolleh');
    expect(json.stdout).toContain('\\u007f');
    expect(json.stdout).toContain('\\u0085');
    expect(json.stdout).toContain('Zoë 東京');
  });

  it('clients show, create and update: every field, and --json', async () => {
    for (const args of [
      ['clients', 'show', CLIENT_ID],
      ['clients', 'create', '--name', 'billing'],
      ['clients', 'update', CLIENT_ID, '--disable'],
    ]) {
      const human = await cli(args);
      expect(human.code, args.join(' ')).toBe(0);
      expectSafeHuman(human, args.join(' '));
      for (const label of ['name:', 'description:', 'scopes:', 'tags:', 'created:'])
        expect(
          human.out.some((line) => line.startsWith(label) && line.includes('\\u001b[31m')),
          `${args.join(' ')} ${label}`,
        ).toBe(true);
      const json = await cli([...args, '--json']);
      expect(json.code, args.join(' ')).toBe(0);
      expectSafeJson(json.out, client, `${args.join(' ')} --json`);
    }
  });

  it('keys create, register and list, and --json', async () => {
    const created = await cli(['keys', 'create', CLIENT_ID]);
    expect(created.code).toBe(0);
    expectSafeHuman(created, 'keys create', 'err');
    expect(created.stdout).toBe(createdKey.accessKey);
    expectSafeJson((await cli(['keys', 'create', CLIENT_ID, '--json'])).out, createdKey, 'keys create --json');

    const jwk = join(tmpdir(), `keysmith-terminal-safety-${process.pid}.jwk`);
    writeFileSync(jwk, JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: 'A'.repeat(43) }));
    try {
      const registered = await cli(['keys', 'create', CLIENT_ID, '--public-key-file', jwk]);
      expect(registered.code).toBe(0);
      expectSafeHuman(registered, 'keys create --public-key-file');
    } finally {
      rmSync(jwk, { force: true });
    }

    const listed = await cli(['keys', 'list', CLIENT_ID]);
    expect(listed.code).toBe(0);
    expectSafeHuman(listed, 'keys list');
    expect(listed.out).toHaveLength(2);
    expectSafeJson((await cli(['keys', 'list', CLIENT_ID, '--json'])).out, { items: [key] }, 'keys list --json');
  });

  it('audit list and whoami, and --json', async () => {
    const listed = await cli(['audit', 'list']);
    expect(listed.code).toBe(0);
    expectSafeHuman(listed, 'audit list');
    expect(listed.out).toHaveLength(4);
    expectSafeJson((await cli(['audit', 'list', '--json'])).out, audit, 'audit list --json');

    const me = await cli(['whoami']);
    expect(me.code).toBe(0);
    expectSafeHuman(me, 'whoami');
    expect(me.out).toHaveLength(4);
    expectSafeJson((await cli(['whoami', '--json'])).out, whoami, 'whoami --json');
  });

  it("an API problem's detail and code, human and --json", async () => {
    const human = await cli(['clients', 'show', MISSING_ID]);
    expect(human.code).toBe(1);
    expectSafeHuman(human, 'problem', 'err');
    expect(human.err).toHaveLength(1);
    expect(human.stderr).toMatch(/^keysmith: Zoë 東京 .*\(.*, HTTP 400\)$/);

    const json = await cli(['clients', 'show', MISSING_ID, '--json']);
    expect(json.code).toBe(1);
    expectSafeJson(json.err, { error: { status: 400, code: EVIL, detail: EVIL } }, 'problem --json');
  });

  it('an unreachable deployment whose failure names attacker text', async () => {
    const human = await cli(['whoami'], { fetch: unreachableFetch });
    expect(human.code).toBe(1);
    expectSafeHuman(human, 'unreachable', 'err');
    const json = await cli(['whoami', '--json'], { fetch: unreachableFetch });
    expect(json.code).toBe(1);
    expectNoRawControls(json.err, 'unreachable --json');
    expect(JSON.parse(json.stderr).error.message).toContain(EVIL);
  });

  it("the user's own arguments echoed back: usage errors, tenants and ids", async () => {
    // [arguments, whether they connect, whether the --json answer names the argument]
    const cases: [string[], boolean, boolean][] = [
      [[ARG_EVIL], false, true],
      [['clients', 'create', '--name', 'n', '--tag', ARG_EVIL], true, true],
      [['clients', 'delete', ARG_EVIL], true, true],
      [['keys', 'revoke', CLIENT_ID, ARG_EVIL], true, true],
      [['keys', 'list', ARG_EVIL, '--tenant', ARG_EVIL], true, false],
      [['clients', 'list', '--tenant', `${TENANT}-${ARG_EVIL}`], true, false],
    ];
    for (const [args, connect, jsonEchoes] of cases) {
      const what = JSON.stringify(args);
      const result = await cli(args, { connect });
      expectNoRawControls([...result.out, ...result.err], what);
      for (const chunk of [...result.out, ...result.err]) expect(chunk.includes('\n'), what).toBe(false);
      expect(`${result.stdout}${result.stderr}`, what).toContain('x\\u001b[2J\\u009b1m\\u202ey\\u000az');
      const json = await cli([...args, '--json'], { connect });
      expectNoRawControls([...json.out, ...json.err], `${what} --json`);
      if (jsonEchoes) expect(`${json.stdout}${json.stderr}`, `${what} --json`).toContain('x\\u001b[2J\\u009b1m\\u202ey\\nz');
      else expect(JSON.parse(json.stdout), `${what} --json`).toEqual({ items: [] });
    }
  });
});
