/**
 * A stand-in for AWS KMS (no local KMS server exists here): the real aggregated `KMS` client of
 * @aws-sdk/client-kms with its `send` intercepted by aws-sdk-client-mock. It wraps data keys with an
 * in-memory AES key, checks the encryption context on Decrypt like KMS does, makes and checks HMACs
 * (GenerateMac/VerifyMac, answering a wrong MAC with KMSInvalidMacException as KMS does), counts calls, and
 * can be switched off to inject an outage or made to refuse the caller (AccessDenied).
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  DecryptCommand,
  GenerateDataKeyCommand,
  GenerateMacCommand,
  KMS,
  KMSClient,
  KMSInvalidMacException,
  VerifyMacCommand,
} from '@aws-sdk/client-kms';
import { mockClient } from 'aws-sdk-client-mock';

export const FAKE_KEY_ARN = 'arn:aws:kms:us-east-1:111122223333:key/11111111-2222-3333-4444-555555555555';

export interface FakeKms {
  kms: KMS;
  calls: { generateDataKey: number; decrypt: number; generateMac: number; verifyMac: number };
  /** Encryption contexts KMS was asked to bind. */
  contexts: Record<string, string>[];
  /** When true, every call fails as KMS would when unreachable. */
  down: boolean;
  /** When true, every call is refused as KMS refuses a role without the permission. */
  denied: boolean;
  restore(): void;
}

export function fakeKms(): FakeKms {
  const master = randomBytes(32);
  const kms = new KMS({ region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'x' } });
  const mock = mockClient(KMSClient);
  const state: FakeKms = {
    kms,
    calls: { generateDataKey: 0, decrypt: 0, generateMac: 0, verifyMac: 0 },
    contexts: [],
    down: false,
    denied: false,
    restore: () => mock.restore(),
  };
  const aad = (context: Record<string, string> = {}) =>
    Buffer.from(JSON.stringify(Object.entries(context).sort(([a], [b]) => a.localeCompare(b))));
  const outage = () => Object.assign(new Error('connect ETIMEDOUT kms.us-east-1.amazonaws.com'), { name: 'TimeoutError' });

  const refuse = (action: string) =>
    Object.assign(
      new Error(
        `User: arn:aws:sts::111122223333:assumed-role/x is not authorized to perform: ${action} on resource: ${FAKE_KEY_ARN}`,
      ),
      { name: 'AccessDeniedException' },
    );
  mock.on(GenerateDataKeyCommand).callsFake(async (input) => {
    state.calls.generateDataKey++;
    if (state.down) throw outage();
    if (state.denied) throw refuse('kms:GenerateDataKey');
    state.contexts.push(input.EncryptionContext ?? {});
    const plaintext = randomBytes(input.NumberOfBytes ?? 32);
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', master, iv).setAAD(aad(input.EncryptionContext));
    const blob = Buffer.concat([iv, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
    return { KeyId: FAKE_KEY_ARN, Plaintext: plaintext, CiphertextBlob: blob };
  });
  mock.on(DecryptCommand).callsFake(async (input) => {
    state.calls.decrypt++;
    if (state.down) throw outage();
    if (state.denied) throw refuse('kms:Decrypt');
    const blob = Buffer.from(input.CiphertextBlob as Uint8Array);
    const decipher = createDecipheriv('aes-256-gcm', master, blob.subarray(0, 12)).setAAD(aad(input.EncryptionContext));
    decipher.setAuthTag(blob.subarray(blob.length - 16));
    try {
      const plaintext = Buffer.concat([decipher.update(blob.subarray(12, blob.length - 16)), decipher.final()]);
      return { KeyId: FAKE_KEY_ARN, Plaintext: plaintext };
    } catch {
      throw Object.assign(new Error('InvalidCiphertextException'), { name: 'InvalidCiphertextException' });
    }
  });
  const macKey = randomBytes(32);
  mock.on(GenerateMacCommand).callsFake(async (input) => {
    state.calls.generateMac++;
    if (state.down) throw outage();
    if (state.denied) throw refuse('kms:GenerateMac');
    return { KeyId: FAKE_KEY_ARN, Mac: createHmac('sha256', macKey).update(Buffer.from(input.Message)).digest() };
  });
  mock.on(VerifyMacCommand).callsFake(async (input) => {
    state.calls.verifyMac++;
    if (state.down) throw outage();
    if (state.denied) throw refuse('kms:VerifyMac');
    const expected = createHmac('sha256', macKey).update(Buffer.from(input.Message)).digest();
    const mac = Buffer.from(input.Mac as Uint8Array);
    if (mac.length !== expected.length || !timingSafeEqual(mac, expected))
      throw new KMSInvalidMacException({ message: 'invalid MAC', $metadata: {} });
    return { KeyId: FAKE_KEY_ARN, MacValid: true };
  });
  return state;
}
