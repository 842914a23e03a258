/** DynamoDB helpers shared by the store and the audit log: one client per process, and transaction types. */
import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, type TransactWriteCommandInput } from '@aws-sdk/lib-dynamodb';

/** One item of a TransactWriteItems request, in document-client form. */
export type TransactWriteItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

/**
 * A stored number as a JS number. Keysmith stores only whole numbers, so anything but a plain integer spelling
 * within 2^53 becomes NaN, which every reader refuses as malformed: `2.0000000000000000001` would otherwise read as
 * 2 while DynamoDB's own conditions compare it exactly, and the SDK's default would throw for the whole response
 * (one such attribute written around Keysmith turning a read into a 5xx instead of one refused item).
 */
const storedNumber = (text: string): number => {
  const value = Number(text);
  return /^-?(0|[1-9][0-9]*)$/.test(text) && Number.isSafeInteger(value) ? value : Number.NaN;
};

/**
 * A document client that drops undefined attributes. The AWS SDK reads the endpoint, region and
 * credentials from its usual variables (`AWS_ENDPOINT_URL_DYNAMODB` points it at DynamoDB Local).
 */
export function createDocumentClient(config: DynamoDBClientConfig = {}): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(new DynamoDBClient({ maxAttempts: 3, ...config }), {
    marshallOptions: { removeUndefinedValues: true },
    unmarshallOptions: { wrapNumbers: storedNumber },
  });
}

/** The reasons DynamoDB gave for cancelling a transaction, one per item (`None` for items that were fine). */
export function cancellationReasons(error: unknown): string[] | undefined {
  if (typeof error !== 'object' || error === null || (error as { name?: string }).name !== 'TransactionCanceledException')
    return undefined;
  const reasons = (error as { CancellationReasons?: { Code?: string }[] }).CancellationReasons ?? [];
  return reasons.map((reason) => reason.Code ?? 'None');
}
