/** DynamoDB helpers shared by the store and the audit log: one client per process, and transaction types. */
import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, type TransactWriteCommandInput } from '@aws-sdk/lib-dynamodb';

/** One item of a TransactWriteItems request, in document-client form. */
export type TransactWriteItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

/**
 * A document client that drops undefined attributes. The AWS SDK reads the endpoint, region and
 * credentials from its usual variables (`AWS_ENDPOINT_URL_DYNAMODB` points it at DynamoDB Local).
 */
export function createDocumentClient(config: DynamoDBClientConfig = {}): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(new DynamoDBClient({ maxAttempts: 3, ...config }), {
    marshallOptions: { removeUndefinedValues: true },
  });
}

/** The reasons DynamoDB gave for cancelling a transaction, one per item (`None` for items that were fine). */
export function cancellationReasons(error: unknown): string[] | undefined {
  if (typeof error !== 'object' || error === null || (error as { name?: string }).name !== 'TransactionCanceledException')
    return undefined;
  const reasons = (error as { CancellationReasons?: { Code?: string }[] }).CancellationReasons ?? [];
  return reasons.map((reason) => reason.Code ?? 'None');
}
