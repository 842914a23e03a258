/**
 * Request hygiene (contract §14): names, descriptions, tag keys and tag values refuse control and bidirectional
 * characters, and times in requests are compared as instants (normalized to UTC, within the years 0000 to 9999).
 */
import { describe, expect, it } from 'vitest';
import { type CallResult, newTenant, type TestApp, useTestApp } from '../support/app.ts';

let app: TestApp;
useTestApp((started) => {
  app = started;
});

/** One of each class that is refused: C0 (ESC, newline, tab, NUL), DEL, C1 (NEL, CSI) and bidirectional controls. */
const REFUSED: [label: string, char: string][] = [
  ['ESC U+001B', '\u001b'],
  ['newline U+000A', '\n'],
  ['tab U+0009', '\t'],
  ['NUL U+0000', '\u0000'],
  ['DEL U+007F', '\u007f'],
  ['NEL U+0085', '\u0085'],
  ['CSI U+009B', '\u009b'],
  ['RLO U+202E', '\u202e'],
  ['LRI U+2066', '\u2066'],
  ['PDI U+2069', '\u2069'],
  ['LRM U+200E', '\u200e'],
  ['RLM U+200F', '\u200f'],
  ['ALM U+061C', '\u061c'],
];

/** Bodies carrying `c` in each of the four fields, with the path the problem must name. */
const fieldsWith = (c: string): [field: string, body: Record<string, unknown>, path: string][] => [
  ['name', { name: `bad${c}name` }, 'body.name'],
  ['description', { description: `a${c}b` }, 'body.description'],
  ['tag key', { tags: { [`team${c}`]: 'core' } }, 'body.tags'],
  ['tag value', { tags: { team: `co${c}re` } }, 'body.tags.team'],
];

/** A 400 invalid_request that names the field, says what is refused and does not echo the character. */
function expectRefused(result: CallResult, path: string, c: string, what: string) {
  expect(result.status, what).toBe(400);
  expect(result.headers.get('content-type'), what).toBe('application/problem+json');
  expect(result.body.code, what).toBe('invalid_request');
  const detail = String(result.body.detail);
  expect(detail.startsWith(`${path}: `), `${what}: ${detail}`).toBe(true);
  expect(detail, what).toMatch(/must not contain control characters .*bidirectional controls/);
  expect(detail.includes(c), `${what} echoes the character`).toBe(false);
  for (const issue of result.body.errors as { path: string; message: string }[]) {
    expect(issue.path.includes(c), `${what} echoes the character in a path`).toBe(false);
    expect(issue.message.includes(c), `${what} echoes the character in a message`).toBe(false);
  }
}

describe('names, descriptions and tags refuse control and bidirectional characters', () => {
  it('POST refuses each class in each field and creates nothing', async () => {
    const tenant = newTenant();
    const path = `/v1/tenants/${tenant}/clients`;
    for (const [label, c] of REFUSED)
      for (const [field, body, problemPath] of fieldsWith(c)) {
        const result = await app.call('POST', path, { token: app.adminToken, body: { name: 'ok', ...body } });
        expectRefused(result, problemPath, c, `POST ${field} with ${label}`);
      }
    // A leading or trailing control character is refused, not trimmed away.
    for (const name of ['\tleading', 'trailing\n', '\u001b'])
      expectRefused(
        await app.call('POST', path, { token: app.adminToken, body: { name } }),
        'body.name',
        name.replace(/[a-z]/g, ''),
        `POST name ${JSON.stringify(name)}`,
      );
    const listed = await app.call('GET', path, { token: app.adminToken });
    expect(listed.status).toBe(200);
    expect(listed.body.items).toEqual([]);
  });

  it('PATCH refuses each class in each field and leaves the client as it was', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant, { name: 'before', description: 'as it was', tags: { team: 'core' } });
    const path = `/v1/tenants/${tenant}/clients/${client.clientId}`;
    for (const [label, c] of REFUSED)
      for (const [field, body, problemPath] of fieldsWith(c)) {
        const result = await app.call('PATCH', path, { token: app.adminToken, body });
        expectRefused(result, problemPath, c, `PATCH ${field} with ${label}`);
      }
    const shown = await app.call('GET', path, { token: app.adminToken });
    expect(shown.status).toBe(200);
    expect(shown.body).toEqual(client);
    expect(shown.body).toMatchObject({ name: 'before', description: 'as it was', tags: { team: 'core' } });
  });

  it('accepts ordinary Unicode, on create and on change', async () => {
    const tenant = newTenant();
    const created = await app.call('POST', `/v1/tenants/${tenant}/clients`, {
      token: app.adminToken,
      body: { name: 'Zoë – 東京 ✓', description: 'שלום, مرحبا, 🚀 and “quotes”', tags: { équipe: '東京', env: 'prod ✓' } },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: 'Zoë – 東京 ✓',
      description: 'שלום, مرحبا, 🚀 and “quotes”',
      tags: { équipe: '東京', env: 'prod ✓' },
    });
    const path = `/v1/tenants/${tenant}/clients/${created.body.clientId}`;
    const changed = await app.call('PATCH', path, {
      token: app.adminToken,
      body: { name: 'Ünïcödé ☃ 名前', tags: { κλειδί: 'τιμή' } },
    });
    expect(changed.status).toBe(200);
    expect(changed.body).toMatchObject({ name: 'Ünïcödé ☃ 名前', tags: { κλειδί: 'τιμή' } });
    expect((await app.call('GET', path, { token: app.adminToken })).body).toMatchObject({ name: 'Ünïcödé ☃ 名前' });
  });
});

/** `ms` as an ISO 8601 local time at `offsetMinutes` from UTC, e.g. `2026-05-01T00:00:00.123+14:00`. */
function atOffset(ms: number, offsetMinutes: number): string {
  const local = new Date(ms + offsetMinutes * 60_000).toISOString().slice(0, -1);
  const abs = Math.abs(offsetMinutes);
  const zone = `${offsetMinutes < 0 ? '-' : '+'}${String(Math.floor(abs / 60)).padStart(2, '0')}:${String(abs % 60).padStart(2, '0')}`;
  return `${local}${zone}`;
}

describe('times in requests are instants', () => {
  it('expiresAt past 9999-12-31T23:59:59.999Z in UTC is refused; an offset time is stored in UTC', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const path = `/v1/tenants/${tenant}/clients/${client.clientId}/access-keys`;
    for (const expiresAt of [
      '9999-12-31T23:59:59-14:00',
      '9999-12-31T23:00:00.000-01:00',
      '+010000-01-01T00:00:00Z',
      '10000-01-01T00:00:00Z',
    ]) {
      const result = await app.call('POST', path, { token: app.adminToken, body: { expiresAt } });
      expect(result.status, expiresAt).toBe(400);
      expect(result.body.code, expiresAt).toBe('invalid_request');
      expect(result.body.detail, expiresAt).toMatch(/^body\.expiresAt: /);
    }
    const range = await app.call('POST', path, { token: app.adminToken, body: { expiresAt: '9999-12-31T23:59:59-14:00' } });
    expect(range.body.detail).toContain('9999-12-31T23:59:59.999Z');
    expect((await app.call('GET', path, { token: app.adminToken })).body.items).toEqual([]);

    // Still "in the future" as an instant, and kept as canonical UTC.
    const past = await app.call('POST', path, { token: app.adminToken, body: { expiresAt: '2020-01-01T00:00:00+05:00' } });
    expect(past.status).toBe(400);
    expect(past.body.detail).toMatch(/must be in the future/);
    const key = await app.call('POST', path, { token: app.adminToken, body: { expiresAt: '2099-01-01T03:00:00+05:00' } });
    expect(key.status).toBe(201);
    expect(key.body.expiresAt).toBe('2098-12-31T22:00:00.000Z');
    const latest = await app.call('POST', path, { token: app.adminToken, body: { expiresAt: '9999-12-31T23:59:59+14:00' } });
    expect(latest.status).toBe(201);
    expect(latest.body.expiresAt).toBe('9999-12-31T09:59:59.000Z');
  });

  it('audit from/to outside the years 0000 to 9999 in UTC are refused', async () => {
    const tenant = newTenant();
    const path = `/v1/tenants/${tenant}/audit-events`;
    const refused = [
      'to=9999-12-31T23:59:59-14:00',
      'from=9999-12-31T23:59:59-14:00',
      'from=0000-01-01T00:00:00%2B00:01',
      'to=0000-01-01T00:00:00%2B14:00',
    ];
    for (const query of refused) {
      const result = await app.call('GET', `${path}?${query}`, { token: app.adminToken });
      expect(result.status, query).toBe(400);
      expect(result.body.code, query).toBe('invalid_request');
      expect(result.body.detail, query).toMatch(/^query\.(from|to): .*9999-12-31T23:59:59\.999Z/);
    }
    for (const query of ['to=9999-12-31T23:59:59.999Z', 'to=9999-12-31T23:59:59%2B14:00', 'from=0000-01-01T00:00:00Z']) {
      const result = await app.call('GET', `${path}?${query}`, { token: app.adminToken });
      expect(result.status, query).toBe(200);
    }
  });

  it('from and to compare as instants, whatever the offset', async () => {
    const tenant = newTenant();
    const client = await app.createClient(tenant);
    const path = `/v1/tenants/${tenant}/audit-events`;
    const list = async (query: Record<string, string>) => {
      const result = await app.call('GET', `${path}?${new URLSearchParams(query)}`, { token: app.adminToken });
      expect(result.status, JSON.stringify(query)).toBe(200);
      return (result.body.items as { eventId: string; action: string; occurredAt: string }[]).map((e) => e.eventId);
    };

    const all = await list({});
    expect(all.length).toBeGreaterThan(0);
    expect(await list({ from: '2020-01-01T10:00:00+05:00' })).toEqual(await list({ from: '2020-01-01T05:00:00Z' }));
    expect(await list({ from: '2020-01-01T10:00:00+05:00' })).toEqual(all);

    // Around the client's own record, in offsets whose local text sorts the other way round from the instant.
    const events = (await app.call('GET', path, { token: app.adminToken })).body.items as {
      eventId: string;
      action: string;
      occurredAt: string;
      target?: { clientId: string };
    }[];
    const created = events.find((e) => e.action === 'client.created' && e.target?.clientId === client.clientId);
    expect(created).toBeDefined();
    const at = Date.parse(created?.occurredAt as string);
    const id = created?.eventId as string;
    // One second later, written 14 hours behind UTC: its text is "earlier", the instant is later.
    expect(await list({ from: atOffset(at + 1000, -14 * 60) })).not.toContain(id);
    // One second earlier, written 14 hours ahead: its text is "later", the instant is earlier.
    expect(await list({ from: atOffset(at - 1000, 14 * 60) })).toContain(id);
    expect(await list({ to: atOffset(at + 1000, -14 * 60) })).toContain(id);
    expect(await list({ to: atOffset(at - 1000, 14 * 60) })).not.toContain(id);
    // The same instant in another offset is the same bound.
    expect(await list({ from: atOffset(at, 5 * 60 + 30), to: atOffset(at, -(9 * 60 + 30)) })).toContain(id);
  });
});
