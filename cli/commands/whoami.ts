/** `keysmith whoami`: who the API says an access key is. */
import { CONNECTION_OPTIONS, connect } from '../admin-api.ts';
import type { Command } from '../command.ts';
import { printJson, terminalSafe } from '../context.ts';

export const whoamiCommand: Command = {
  name: ['whoami'],
  summary: "Call GET /v1/whoami with a token from an access key and print the authorizer's view of it.",
  options: {
    ...CONNECTION_OPTIONS,
    'access-key': {
      type: 'string',
      value: 'KEY',
      description: 'any access key (default: KEYSMITH_ACCESS_KEY, else KEYSMITH_ADMIN_ACCESS_KEY, else .keysmith/local.json)',
    },
  },
  async run(values, _positionals, ctx) {
    const body = await connect(values, ctx, ['KEYSMITH_ACCESS_KEY', 'KEYSMITH_ADMIN_ACCESS_KEY']).whoami();
    if (values.json) printJson(ctx, body);
    else {
      ctx.out(terminalSafe(`clientId: ${body.clientId}`));
      ctx.out(terminalSafe(`tenant:   ${body.tenantId}`));
      ctx.out(terminalSafe(`keyId:    ${body.keyId}`));
      ctx.out(terminalSafe(`scopes:   ${body.scopes || '(none)'}`));
    }
    return 0;
  },
};
