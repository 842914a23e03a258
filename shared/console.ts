/**
 * Serving the console (console/): its page and its hashed assets, prebuilt by console/build.ts into a directory the
 * discovery function reads once. The page is the one response that is not JSON; it carries the deployment's settings
 * in meta tags (HTML-escaped) and headers that keep it from running anything but its own script or being framed.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { NotFoundError } from './errors.ts';
import { CONSOLE_PATH, type RouteId } from './routes.ts';

/** The page's template: `{{name}}` holes for the settings, filled per request. */
export const CONSOLE_INDEX = 'index.html';

/** The content types of what console/build.ts writes; any other file in the directory is not served. */
const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** Assets are named by their content's hash: a new build is a new name, so a cached one never goes stale. */
export const ASSET_CACHE_CONTROL = 'public, max-age=31536000, immutable';

/**
 * No inline script or style, nothing from another origin, no framing, no plugins, no form posts, no `<base>`.
 * `connect-src 'self'`: the page calls only the API it was served by.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  // Defence in depth: no string ever becomes HTML or script through a DOM sink (innerHTML, eval and the like).
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

/** Headers of every console response. */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': CONSOLE_CSP,
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin',
  'permissions-policy': 'camera=(), microphone=(), geolocation=(), payment=(), usb=()',
};

/** The console's routes: their errors carry {@link CONSOLE_HEADERS} too, and they ignore query strings. */
export const isConsoleRoute = (id: RouteId): boolean => id === 'console' || id === 'consoleAsset';

/** A path at or under the console's (for answers no route gives, such as the local server's 404 and 405). */
export const isConsolePath = (path: string): boolean => path === CONSOLE_PATH || path.startsWith(`${CONSOLE_PATH}/`);

export interface ConsoleFiles {
  /** The page template. */
  index: string;
  /** Each asset's body and content type, by file name. */
  assets: ReadonlyMap<string, { body: string; contentType: string }>;
}

/** Reads a built console; undefined when `directory` holds none (a checkout that never ran the build). */
export function readConsoleFiles(directory: string): ConsoleFiles | undefined {
  const indexPath = join(directory, CONSOLE_INDEX);
  if (!existsSync(indexPath)) return undefined;
  const assets = new Map<string, { body: string; contentType: string }>();
  for (const name of readdirSync(directory)) {
    const contentType = CONTENT_TYPES[extname(name)];
    if (contentType) assets.set(name, { body: readFileSync(join(directory, name), 'utf8'), contentType });
  }
  return { index: readFileSync(indexPath, 'utf8'), assets };
}

/** A loader that reads the directory on first use and keeps what it read (Lambda's code never changes under it). */
export function consoleFilesFrom(directory: string): () => ConsoleFiles | undefined {
  let files: ConsoleFiles | undefined;
  return () => {
    files ??= readConsoleFiles(directory);
    return files;
  };
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
const escapeHtml = (text: string): string => text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] as string);

/** What the page is told of its deployment. */
export interface ConsoleSettings {
  /** The issuer base: the console's tokens' `iss` is built on it. */
  issuerBase: string;
  /** The audience of the console's tokens. */
  audience: string;
}

/**
 * The page: the settings in its meta tags, and its assets under the issuer base's path (an API Gateway stage, say),
 * where the API that serves them is.
 */
export function renderConsolePage(files: ConsoleFiles, settings: ConsoleSettings): string {
  const apiPath = new URL(settings.issuerBase).pathname.replace(/\/+$/, '');
  const values: Record<string, string> = { issuerBase: settings.issuerBase, audience: settings.audience, apiPath };
  return files.index.replace(/\{\{(issuerBase|audience|apiPath)\}\}/g, (_, name: string) => escapeHtml(values[name] ?? ''));
}

const notBuilt = () =>
  new NotFoundError(
    'console_not_built',
    'This deployment has no console: build it with `npm run build:lambdas` (the discovery function serves what that writes).',
  );

/** The console's page or one of its assets, as a response of the API. */
export function consoleResponse(
  files: ConsoleFiles | undefined,
  asset: string | undefined,
  settings: ConsoleSettings,
): { status: number; headers: Record<string, string>; body: string } {
  if (!files) throw notBuilt();
  if (asset === undefined)
    return {
      status: 200,
      // The page names the current assets: it is checked each time, the assets never.
      headers: { ...CONSOLE_HEADERS, 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-cache' },
      body: renderConsolePage(files, settings),
    };
  const found = files.assets.get(asset);
  if (!found)
    throw new NotFoundError(
      'console_asset_not_found',
      'The console has no such file; reload the console page for the current ones.',
    );
  return {
    status: 200,
    headers: { ...CONSOLE_HEADERS, 'content-type': found.contentType, 'cache-control': ASSET_CACHE_CONTROL },
    body: found.body,
  };
}
