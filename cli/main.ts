/**
 * The `keysmith` command line. `keysmith token` mints a client token from an access key.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { mintToken } from '#sdk/token.ts';
import { AccessKeyFormatError } from '#shared/access-key.ts';

const HELP = `keysmith: Keysmith's command line

Usage:
  keysmith token [options]     Mint a client token (JWT) from an access key and print it

Options of token:
  --access-key KEY         the access key (or set KEYSMITH_ACCESS_KEY, or use --access-key-file)
  --access-key-file FILE   read the access key from FILE
  --issuer-base URL        the deployment's base URL (default: KEYSMITH_ISSUER_BASE, else .keysmith/local.json)
  --audience AUD           the audience (default: KEYSMITH_AUDIENCE, else the issuer base)
  --lifetime SECONDS       token lifetime (default 300)
  --scope "A B"            narrow the token to these scopes (default: all the client's)
  --json                   print { token, expiresAt } as JSON
  -h, --help               this help
`;

/** Thrown for a usage mistake: printed without a stack, exit code 2. */
export class UsageError extends Error {}

function localState(): { issuerBase?: string; audiences?: string[] } {
  try {
    return JSON.parse(readFileSync('.keysmith/local.json', 'utf8')) as { issuerBase?: string; audiences?: string[] };
  } catch {
    return {};
  }
}

async function token(args: string[], out: (line: string) => void): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      'access-key': { type: 'string' },
      'access-key-file': { type: 'string' },
      'issuer-base': { type: 'string' },
      audience: { type: 'string' },
      lifetime: { type: 'string' },
      scope: { type: 'string' },
      json: { type: 'boolean' },
    },
    strict: true,
  });
  const accessKey = values['access-key-file']
    ? readFileSync(values['access-key-file'], 'utf8').trim()
    : (values['access-key'] ?? process.env.KEYSMITH_ACCESS_KEY);
  if (!accessKey) throw new UsageError('an access key is required: --access-key, --access-key-file or KEYSMITH_ACCESS_KEY');
  const state = localState();
  const issuerBase = values['issuer-base'] ?? process.env.KEYSMITH_ISSUER_BASE ?? state.issuerBase;
  if (!issuerBase) throw new UsageError('--issuer-base is required (the deployment base URL, e.g. https://keys.example.com)');
  const lifetime = values.lifetime ?? '300';
  if (!/^[1-9][0-9]*$/.test(lifetime)) throw new UsageError('--lifetime is a whole number of seconds');
  const minted = await mintToken(accessKey, {
    issuerBase,
    audience: values.audience ?? process.env.KEYSMITH_AUDIENCE ?? issuerBase,
    lifetimeSeconds: Number(lifetime),
    ...(values.scope ? { scope: values.scope } : {}),
  });
  out(
    values.json
      ? JSON.stringify({ token: minted.token, expiresAt: new Date(minted.expiresAt * 1000).toISOString() })
      : minted.token,
  );
}

/** Runs the CLI; returns the exit code. */
export async function run(
  argv: string[],
  out = (line: string) => console.log(line),
  err = (line: string) => console.error(line),
): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (!command || command === '-h' || command === '--help' || command === 'help') {
      out(HELP);
      return command ? 0 : 2;
    }
    if (rest.includes('-h') || rest.includes('--help')) {
      out(HELP);
      return 0;
    }
    if (command === 'token') {
      await token(rest, out);
      return 0;
    }
    throw new UsageError(`unknown command "${command}"; see keysmith --help`);
  } catch (error) {
    if (error instanceof UsageError || error instanceof AccessKeyFormatError) {
      err(`keysmith: ${error.message}`);
      return 2;
    }
    if ((error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      err(`keysmith: ${(error as Error).message}`);
      return 2;
    }
    err(`keysmith: ${(error as Error).message ?? String(error)}`);
    return 1;
  }
}
