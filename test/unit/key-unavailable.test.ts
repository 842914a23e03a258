/** Which decrypt failures are KMS being out of reach (retry, 503) and which are the message's fault (tampering). */
import { describe, expect, it } from 'vitest';
import { keyUnavailable } from '#shared/audit/log.ts';

const sdkError = (name: string, message = name) =>
  Object.assign(new Error(message), { name, $metadata: { httpStatusCode: 400 } });
const keyringError = (inner: string) =>
  new Error(`Unable to decrypt data key and one or more KMS CMKs had an error. \n Error #1 \n${inner}`);

describe('keyUnavailable', () => {
  it.each([
    sdkError('ThrottlingException'),
    sdkError('KMSInternalException'),
    sdkError('TimeoutError', 'connect ETIMEDOUT kms.us-east-1.amazonaws.com'),
    sdkError('AccessDeniedException', 'User: x is not authorized to perform: kms:Decrypt'),
    keyringError('ThrottlingException: Rate exceeded'),
    keyringError('connect ECONNREFUSED 127.0.0.1:4566'),
  ])('an outage or a refused role: %s', (error) => expect(keyUnavailable(error)).toBe(true));

  it.each([
    sdkError('InvalidCiphertextException'),
    sdkError('ValidationException', "1 validation error detected: Value at 'ciphertextBlob' failed to satisfy constraint"),
    keyringError('ValidationException: ciphertextBlob too long'),
    keyringError('IncorrectKeyException'),
    new Error('Malformed Header'),
  ])('the message, not KMS: %s', (error) => expect(keyUnavailable(error)).toBe(false));
});
