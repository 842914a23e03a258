/** `keysmith token`: mint a client token from an access key, or get an access token from the token endpoint. */
import { requestAccessToken } from '#sdk/access-token.ts';
import { mintToken } from '#sdk/token.ts';
import { type Command, integerOption, stringOption } from '../command.ts';
import { jsonText, readUserFile, terminalSafe, UsageError } from '../context.ts';

export const tokenCommand: Command = {
  name: ['token'],
  summary: 'Mint a client token (JWT) from an access key and print it.',
  options: {
    'access-key': { type: 'string', value: 'KEY', description: 'the access key (default: KEYSMITH_ACCESS_KEY)' },
    'access-key-file': { type: 'string', value: 'FILE', description: 'read the access key from FILE' },
    'issuer-base': {
      type: 'string',
      value: 'URL',
      description: "the deployment's issuer base (default: KEYSMITH_ISSUER_BASE, else .keysmith/local.json)",
    },
    audience: {
      type: 'string',
      value: 'AUD',
      description:
        "the audience (default: KEYSMITH_AUDIENCE, else local.json's first audience when the issuer base comes from it, else the issuer base)",
    },
    lifetime: { type: 'string', value: 'SECONDS', description: 'token lifetime (default 300)' },
    scope: { type: 'string', value: '"A B"', description: "narrow the token to these scopes (default: all the client's)" },
    jti: { type: 'boolean', description: 'add a fresh jti claim (an assertion for the token endpoint)' },
    'access-token': {
      type: 'boolean',
      description:
        "get an access token from the deployment's token endpoint instead (--audience is its resource, --lifetime unused)",
    },
    json: { type: 'boolean', description: 'print { token, expiresAt } as JSON' },
  },
  notes:
    'Examples:\n  TOKEN=$(keysmith token --access-key-file ./key --issuer-base https://keys.example.com --audience https://api.example.com)\n  TOKEN=$(keysmith token --access-token --access-key-file ./key --issuer-base https://keys.example.com --scope invoices:read)',
  async run(values, _positionals, ctx) {
    const keyFile = stringOption(values, 'access-key-file');
    const accessKey = keyFile
      ? readUserFile(keyFile, '--access-key-file').trim()
      : (stringOption(values, 'access-key') ?? ctx.env.KEYSMITH_ACCESS_KEY);
    if (!accessKey) throw new UsageError('an access key is required: --access-key, --access-key-file or KEYSMITH_ACCESS_KEY');
    const explicitIssuer = stringOption(values, 'issuer-base') ?? ctx.env.KEYSMITH_ISSUER_BASE;
    const local = ctx.local();
    const issuerBase = explicitIssuer ?? local.issuerBase;
    if (!issuerBase) throw new UsageError('--issuer-base is required (the deployment base URL, e.g. https://keys.example.com)');
    const scope = stringOption(values, 'scope');
    if (values['access-token']) {
      const explicitAudience = stringOption(values, 'audience') ?? ctx.env.KEYSMITH_AUDIENCE;
      const issued = await requestAccessToken(accessKey, {
        issuerBase,
        ...(scope ? { scope } : {}),
        ...(explicitAudience ? { resource: explicitAudience } : {}),
      });
      ctx.out(
        values.json
          ? jsonText({ token: issued.token, expiresAt: new Date(issued.expiresAt * 1000).toISOString(), scope: issued.scope })
          : terminalSafe(issued.token),
      );
      return 0;
    }
    const minted = await mintToken(accessKey, {
      issuerBase,
      // The local stack's first audience goes with the local stack's issuer, never with another deployment's.
      audience:
        stringOption(values, 'audience') ??
        ctx.env.KEYSMITH_AUDIENCE ??
        (explicitIssuer === undefined ? local.audiences?.[0] : undefined) ??
        issuerBase,
      lifetimeSeconds: integerOption(values, 'lifetime') ?? 300,
      ...(scope ? { scope } : {}),
      ...(values.jti ? { jti: crypto.randomUUID() } : {}),
    });
    ctx.out(
      values.json
        ? jsonText({ token: minted.token, expiresAt: new Date(minted.expiresAt * 1000).toISOString() })
        : terminalSafe(minted.token),
    );
    return 0;
  },
};
