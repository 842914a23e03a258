/**
 * Seals under KMS (GenerateMac/VerifyMac through the KMS stand-in): a wrong MAC is false, a KMS outage or a
 * refused permission is an error (so nothing is trusted), a verified seal is remembered, and the authorizer and
 * the API report an access-denied failure as such, with the IAM action.
 */
import { KMSClient } from '@aws-sdk/client-kms';
import { TransactWriteCommand } from '@aws-sdk/lib-dynamodb';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Authorizer, AuthorizerUnavailableError } from '#shared/authorizer.ts';
import { loadConfig } from '#shared/config.ts';
import { createDocumentClient } from '#shared/dynamodb.ts';
import { accessDenied, DependencyAccessDeniedError } from '#shared/errors.ts';
import { KmsSealKey, sealMessage } from '#shared/seal.ts';
import { ClientStore } from '#shared/store.ts';
import { clientToken, makeClient, POLICY } from '../authorizer/support.ts';
import { FAKE_KEY_ARN, type FakeKms, fakeKms } from '../support/kms.ts';

let kms: FakeKms;
beforeEach(() => {
  kms = fakeKms();
});
afterEach(() => kms.restore());

const sealKey = () =>
  new KmsSealKey({
    kms: new KMSClient({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }),
    keyId: FAKE_KEY_ARN,
  });

describe('KmsSealKey', () => {
  it('verifies its own seals, refuses others, and remembers what it verified', async () => {
    const key = sealKey();
    const message = sealMessage('client', ['a', 1]);
    const seal = await key.seal(message);
    expect(await key.verify(message, seal)).toBe(true);
    expect(await key.verify(sealMessage('client', ['a', 2]), seal)).toBe(false);
    const tampered = Buffer.from(seal);
    tampered[0]! ^= 1;
    expect(await key.verify(message, tampered)).toBe(false);
    const calls = kms.calls.verifyMac;
    expect(await key.verify(message, seal)).toBe(true);
    expect(kms.calls.verifyMac, 'a seal verified before costs no KMS call').toBe(calls);
    // A failed check is never remembered.
    expect(await key.verify(message, tampered)).toBe(false);
    expect(kms.calls.verifyMac).toBe(calls + 1);
  });

  it('throws (never answers true or false) when KMS is down or refuses the role', async () => {
    const key = sealKey();
    const message = sealMessage('client', ['b']);
    const seal = await key.seal(message);
    kms.down = true;
    await expect(sealKey().verify(message, seal)).rejects.toMatchObject({ name: 'TimeoutError' });
    kms.down = false;
    kms.denied = true;
    const refused = await sealKey()
      .verify(message, seal)
      .catch((error: unknown) => error);
    expect(accessDenied(refused, 'unknown')).toMatchObject({ action: 'kms:VerifyMac' });
    await expect(key.seal(message)).rejects.toMatchObject({ name: 'AccessDeniedException' });
  });
});

describe('an authorizer whose role may not call kms:VerifyMac', () => {
  it('fails closed with reason access_denied and the action, never an allow or a deny', async () => {
    const config = loadConfig();
    const documentClient = createDocumentClient();
    const store = new ClientStore({ documentClient, tableName: config.tables.main, sealKey: sealKey() });
    const client = makeClient();
    await documentClient.send(
      new TransactWriteCommand({
        TransactItems: await store.writeState({
          client: client.record.client,
          keys: client.record.keys,
          expectedVersion: undefined,
        }),
      }),
    );
    const authorizer = () => new Authorizer({ directory: store, policy: POLICY, revocationSeconds: 60 });
    expect((await authorizer().authorize(clientToken(client))).allow).toBe(true);
    kms.denied = true;
    const reader = new ClientStore({ documentClient, tableName: config.tables.main, sealKey: sealKey() });
    const failure = await new Authorizer({ directory: reader, policy: POLICY, revocationSeconds: 60 })
      .authorize(clientToken(client))
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(AuthorizerUnavailableError);
    expect(failure).toMatchObject({ reason: 'access_denied', action: 'kms:VerifyMac' });
  });
});

describe('accessDenied', () => {
  it('reads the action from AWS messages and from the Encryption SDK’s wrapped keyring errors', () => {
    expect(
      accessDenied(
        {
          name: 'AccessDeniedException',
          message: 'User: arn:aws:sts::1:assumed-role/r is not authorized to perform: dynamodb:PutItem on resource: arn',
        },
        'x',
      ),
    ).toMatchObject({ action: 'dynamodb:PutItem', status: 500, code: 'dependency_access_denied' });
    expect(
      accessDenied(new Error('Unable to decrypt data key: AccessDeniedException: not authorized to perform: kms:Decrypt'), 'x'),
    ).toBeInstanceOf(DependencyAccessDeniedError);
    expect(accessDenied({ name: 'ThrottlingException', message: 'slow down' }, 'x')).toBeUndefined();
  });
});
