/** Points every test file at the run's DynamoDB Local, the way `npm start` points the handlers at it. */
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';

const tables = inject('tables');
Object.assign(process.env, {
  AWS_ENDPOINT_URL_DYNAMODB: inject('dynamodbEndpoint'),
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'local',
  AWS_SECRET_ACCESS_KEY: 'local',
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  KEYSMITH_MAIN_TABLE: tables.main,
  KEYSMITH_AUDIT_TABLE: tables.audit,
  KEYSMITH_USAGE_TABLE: tables.usage,
  KEYSMITH_LOCAL_WRAPPING_KEY_FILE: inject('wrappingKeyFile'),
  KEYSMITH_LOCAL_SEAL_KEY_FILE: inject('sealKeyFile'),
  KEYSMITH_LOCAL_TOKEN_SIGNING_KEY_FILE: inject('tokenSigningKeyFile'),
  KEYSMITH_LOCAL_AUDIT_DIGEST_KEY_FILE: inject('auditDigestKeyFile'),
  KEYSMITH_LOCAL_AUDIT_DIGEST_DIR: inject('auditDigestDir'),
  KEYSMITH_LOCAL_EVENTS_FILE: inject('eventsFile'),
  KEYSMITH_LOCAL_AUDIT_ANCHOR_DIR: inject('auditAnchorDir'),
  // Built by the global setup (buildLambdas), where the discovery function's bundle finds it in AWS.
  KEYSMITH_CONSOLE_DIR: fileURLToPath(new URL('../dist/lambda/discovery/console', import.meta.url)),
  KEYSMITH_ISSUER_BASE: 'http://keysmith.test',
  KEYSMITH_AUDIENCES: 'http://keysmith.test,https://api.example.test',
  POWERTOOLS_LOG_LEVEL: 'SILENT',
  POWERTOOLS_METRICS_DISABLED: 'true',
});
