/** The console as the API serves it (issue #14): its page, its hashed assets, and the headers that confine them. */
import { describe, expect, it } from 'vitest';
import { CONSOLE_CSP, consoleResponse, readConsoleFiles, renderConsolePage } from '#shared/console.ts';
import { KeysmithError } from '#shared/errors.ts';
import { type TestApp, useTestApp } from '../support/app.ts';

let app: TestApp;
useTestApp((started) => {
  app = started;
});

const assetsOf = (page: string) => [...page.matchAll(/(?:src|href)="\/console\/([^"]+)"/g)].map((match) => match[1] as string);

describe('the console as served', () => {
  it('is a page at /console and /console/, with a strict CSP, no framing, and the deployment in its meta tags', async () => {
    for (const path of ['/console', '/console/']) {
      const page = await app.call('GET', path);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(page.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
      expect(CONSOLE_CSP).toContain("script-src 'self'");
      expect(CONSOLE_CSP).toContain("frame-ancestors 'none'");
      expect(CONSOLE_CSP).not.toMatch(/unsafe|https?:/);
      expect(page.headers.get('x-frame-options')).toBe('DENY');
      expect(page.headers.get('x-content-type-options')).toBe('nosniff');
      expect(page.headers.get('referrer-policy')).toBe('no-referrer');
      expect(page.headers.get('cache-control')).toBe('no-cache');
      expect(page.body).toContain('<meta name="keysmith-issuer-base" content="http://keysmith.test" />');
      expect(page.body).toContain('<meta name="keysmith-audience" content="http://keysmith.test" />');
      // No inline script: the one script is a file of its own.
      expect(page.body.match(/<script[^>]*>/g)).toEqual([
        expect.stringMatching(/^<script type="module" src="\/console\/app-\w+\.js">$/),
      ]);
    }
  });

  it('serves the assets the page names, hashed and cached for a year, and nothing else', async () => {
    const assets = assetsOf((await app.call('GET', '/console/')).body);
    expect(assets).toHaveLength(2);
    for (const asset of assets) {
      const file = await app.call('GET', `/console/${asset}`);
      expect(file.status).toBe(200);
      expect(file.headers.get('content-type')).toMatch(asset.endsWith('.js') ? /^text\/javascript/ : /^text\/css/);
      expect(file.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect(file.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
      expect(String(file.body).length).toBeGreaterThan(1000);
    }
    for (const path of ['/console/app-NOPE.js', '/console/index.html']) {
      const missing = await app.call('GET', path);
      expect(missing.status).toBe(404);
      expect(missing.body.code).toBe('console_asset_not_found');
    }
    for (const path of ['/console/..%2Fpackage.json', '/console/%2Fetc%2Fpasswd', '/console/.env']) {
      const refused = await app.call('GET', path);
      expect(refused.status).toBe(400);
      expect(refused.body.code).toBe('invalid_request');
    }
    expect((await app.call('POST', '/console/')).status).toBe(405);
  });

  it("answers its errors with the console's headers too, ignores query strings, and never 500s on an odd path", async () => {
    const errors: [string, string, number][] = [
      ['GET', '/console/app-NOPE.js', 404],
      ['GET', '/console/..%2Fx', 400],
      ['GET', '/console/a/b', 404],
      ['POST', '/console', 405],
    ];
    for (const [method, path, status] of errors) {
      const answer = await app.call(method, path);
      expect(answer.status, `${method} ${path}`).toBe(status);
      expect(answer.headers.get('content-type')).toBe('application/problem+json');
      expect(answer.headers.get('content-security-policy'), `${method} ${path}`).toBe(CONSOLE_CSP);
      expect(answer.headers.get('x-frame-options')).toBe('DENY');
      expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
    }
    // Every problem answers nosniff; only the console's carry its CSP.
    const api = await app.call('GET', '/v1/tenants/acme/clients');
    expect(api.status).toBe(401);
    expect(api.headers.get('x-content-type-options')).toBe('nosniff');
    expect(api.headers.get('content-security-policy')).toBeNull();
    expect(CONSOLE_CSP).toContain("require-trusted-types-for 'script'");

    // A shared link with tracking parameters still opens the console; other routes still refuse unknown ones.
    const page = await app.call('GET', '/console/?utm_source=mail');
    expect(page.status).toBe(200);
    const [asset] = assetsOf(page.body);
    expect((await app.call('GET', `/console/${asset}?v=2`)).status).toBe(200);
    expect((await app.call('GET', '/console/?a=1&a=2')).status).toBe(200);
    expect((await app.call('GET', '/v1/health?a=1&a=2')).status).toBe(400);
    expect((await app.call('GET', '/v1/health?x=1')).status).toBe(400);

    // `//` is no host here, just a path no route has.
    const odd = await app.call('GET', '//');
    expect(odd.status).toBe(404);
    expect(odd.body.code).toBe('route_not_found');
  });

  it('escapes the settings it writes into the page, and says when there is no console', () => {
    const files = readConsoleFiles(process.env.KEYSMITH_CONSOLE_DIR as string);
    expect(files).toBeDefined();
    const page = renderConsolePage(files!, {
      issuerBase: 'https://keys.example.com/prod/',
      audience: 'https://api.example.com/"><script>alert(1)</script>',
    });
    expect(page).not.toContain('<script>alert(1)');
    expect(page).toContain('content="https://api.example.com/&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"');
    // Under an API Gateway stage, the assets are under the stage's path too.
    expect(assetsOf(page.replaceAll('/prod/console/', '/console/'))).toHaveLength(2);
    expect(page).toContain('<meta name="keysmith-api-path" content="/prod" />');

    const thrown = (() => {
      try {
        consoleResponse(undefined, undefined, { issuerBase: 'http://keysmith.test', audience: 'x' });
      } catch (error) {
        return error;
      }
    })();
    expect(thrown).toBeInstanceOf(KeysmithError);
    expect(thrown).toMatchObject({ status: 404, code: 'console_not_built' });
  });
});
