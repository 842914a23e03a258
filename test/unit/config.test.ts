import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, loadLocalConfig, requireAuditKey, requireTable } from '#shared/config.ts';

describe('configuration', () => {
  it('has the contract’s defaults', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      issuerBase: 'http://localhost:3000',
      audiences: ['http://localhost:3000'],
      maxTokenLifetimeSeconds: 86_400,
      revocationSeconds: 60,
      clockSkewSeconds: 60,
      tables: { main: 'keysmith-main', audit: 'keysmith-audit' },
      auditKey: undefined,
    });
    expect(loadConfig({ PORT: '4000' }).issuerBase).toBe('http://localhost:4000');
    expect(loadLocalConfig({})).toEqual({ port: 3000, host: '127.0.0.1', dataDir: undefined, adminTenant: 'platform' });
  });

  it('reads the environment, trimming a trailing slash and splitting audiences', () => {
    const config = loadConfig({
      KEYSMITH_ISSUER_BASE: 'https://keys.example.com/',
      KEYSMITH_AUDIENCES: 'https://a.example, https://b.example',
      KEYSMITH_MAX_TOKEN_LIFETIME: '3600',
      KEYSMITH_REVOCATION_SECONDS: '5',
      KEYSMITH_AUDIT_KMS_KEY_ARN: 'arn:aws:kms:eu-west-1:111122223333:key/x',
    });
    expect(config.issuerBase).toBe('https://keys.example.com');
    expect(config.audiences).toEqual(['https://a.example', 'https://b.example']);
    expect(config.maxTokenLifetimeSeconds).toBe(3600);
    expect(config.revocationSeconds).toBe(5);
    expect(requireAuditKey(config)).toEqual({ kind: 'kms', keyArn: 'arn:aws:kms:eu-west-1:111122223333:key/x' });
  });

  it.each([
    [{ KEYSMITH_REVOCATION_SECONDS: 'soon' }, 'KEYSMITH_REVOCATION_SECONDS'],
    [{ KEYSMITH_MAX_TOKEN_LIFETIME: '-5' }, 'KEYSMITH_MAX_TOKEN_LIFETIME'],
    [{ KEYSMITH_ISSUER_BASE: 'keys.example.com' }, 'KEYSMITH_ISSUER_BASE'],
    [{ KEYSMITH_ISSUER_BASE: 'ftp://keys.example.com' }, 'KEYSMITH_ISSUER_BASE'],
    [{ KEYSMITH_ISSUER_BASE: 'https://keys.example.com/?x=1' }, 'KEYSMITH_ISSUER_BASE'],
    [{ KEYSMITH_AUDIENCES: ' , ' }, 'KEYSMITH_AUDIENCES'],
    [{ PORT: '80a' }, 'PORT'],
  ])('fails at start-up naming the variable: %o', (env, name) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(name);
  });

  it('refuses a local admin tenant that would break access keys, and a missing audit key where one is needed', () => {
    expect(() => loadLocalConfig({ KEYSMITH_ADMIN_TENANT: 'Bad.Tenant' })).toThrow('KEYSMITH_ADMIN_TENANT');
    expect(() => loadLocalConfig({ KEYSMITH_HOST: 'a b' })).toThrow('KEYSMITH_HOST');
    expect(() => requireAuditKey(loadConfig({}))).toThrow('KEYSMITH_AUDIT_KMS_KEY_ARN');
  });

  it('on Lambda, has no laptop defaults: the issuer base and each table used must be set', () => {
    const lambda = { AWS_LAMBDA_FUNCTION_NAME: 'keysmith-authorizer' };
    expect(() => loadConfig(lambda)).toThrow('KEYSMITH_ISSUER_BASE is required on Lambda');
    const config = loadConfig({ ...lambda, KEYSMITH_ISSUER_BASE: 'https://keys.example.com', KEYSMITH_MAIN_TABLE: 'main-t' });
    expect(requireTable(config, 'main')).toBe('main-t');
    expect(() => requireTable(config, 'audit')).toThrow('KEYSMITH_AUDIT_TABLE is required on Lambda');
    expect(requireTable(loadConfig({}), 'audit')).toBe('keysmith-audit');
  });
});
