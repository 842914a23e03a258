/**
 * Driving the console in Debian's Chromium with playwright-core: the browser, a recorder of every request a page
 * sends (URL, every header, body), and screenshots for the README.
 */
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';

/** Where Chromium is: KEYSMITH_CHROMIUM, or Debian's package (`apt-get install -y chromium`; .ci/run installs it). */
export const CHROMIUM = process.env.KEYSMITH_CHROMIUM ?? '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `The console tests drive Chromium, and there is none at ${CHROMIUM}: apt-get install -y chromium, or set KEYSMITH_CHROMIUM.`,
    );
  // No sandbox: CI runs as root, where Chromium's sandbox cannot start.
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
}

/** One request as the page sent it. */
export interface SentRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** Records every request of every page of `context`, with all its headers (cookies included) and its body. */
export function recordRequests(context: BrowserContext): { sent: SentRequest[]; settled: () => Promise<void> } {
  const sent: SentRequest[] = [];
  const pending: Promise<void>[] = [];
  context.on('request', (request) => {
    pending.push(
      request.allHeaders().then((headers) => {
        sent.push({ method: request.method(), url: request.url(), headers, body: request.postData() ?? '' });
      }),
    );
  });
  return { sent, settled: async () => void (await Promise.all(pending)) };
}

/** The screenshots the README shows, rewritten with KEYSMITH_UPDATE_SCREENSHOTS=1; otherwise they go to a temp dir. */
const screenshotDir = process.env.KEYSMITH_UPDATE_SCREENSHOTS
  ? fileURLToPath(new URL('../../docs/console/', import.meta.url))
  : mkdtempSync(join(tmpdir(), 'keysmith-console-'));

/** A screenshot of the page, every access key on it masked. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(screenshotDir, { recursive: true });
  const path = join(screenshotDir, `${name}.png`);
  await page.screenshot({ path, fullPage: true, mask: [page.locator('#new-access-key'), page.locator('#access-key')] });
  return path;
}
