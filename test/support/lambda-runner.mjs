/**
 * A small stand-in for the Lambda Node.js runtime, run with Lambda's Node major (plain JS: no tsx there).
 * Like the runtime, it reads `LAMBDA_TASK_ROOT` and `_HANDLER` from its environment, loads the handler's module once
 * (the cold start), then invokes the exported function for each event, one at a time, on the same warm module.
 *
 * Protocol: one JSON event per line on stdin; one JSON line per event on stdout, `{ "result": ... }` or
 * `{ "error": { "errorType", "errorMessage", "stack" } }`. After the cold start it writes `{ "ready": true, "node" }`,
 * or `{ "error": ..., "init": true }` and exits 1. Everything the handler prints goes to stderr.
 *
 * Usage: node lambda-runner.mjs [--timeout <seconds>] [--function-arn <arn>]
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';

const reply = process.stdout.write.bind(process.stdout);
// The handler's logs and EMF metrics are not protocol lines: Lambda sends them to CloudWatch, this runner to stderr.
process.stdout.write = process.stderr.write.bind(process.stderr);

const argument = (name) => {
  const index = process.argv.indexOf(name);
  return index < 0 ? undefined : process.argv[index + 1];
};
const timeoutMs = Number(argument('--timeout') ?? 3) * 1000;
const functionArn = argument('--function-arn') ?? '';

const send = (message, done) => reply(`${JSON.stringify(message)}\n`, done);

function failure(error, errorType) {
  return {
    errorType: errorType ?? error?.name ?? 'Error',
    errorMessage: error?.message ?? String(error),
    stack: typeof error?.stack === 'string' ? error.stack.split('\n') : [],
  };
}

/** The module and export a handler string names, as the runtime splits it: `dir/module.export` (export may be a.b). */
function splitHandler(handler) {
  const slash = handler.lastIndexOf('/');
  const dot = handler.indexOf('.', slash + 1);
  if (dot < 0) throw Object.assign(new Error(`Bad handler ${handler}`), { name: 'Runtime.MalformedHandlerName' });
  return { module: handler.slice(0, dot), path: handler.slice(dot + 1).split('.') };
}

/** The handler function, loaded the way the runtime tries files: as named, then .js, .mjs, .cjs. */
async function loadHandler() {
  const root = process.env.LAMBDA_TASK_ROOT;
  const handler = process.env._HANDLER;
  if (!root || !handler)
    throw Object.assign(new Error('LAMBDA_TASK_ROOT and _HANDLER must be set'), { name: 'Runtime.InitError' });
  const { module, path } = splitHandler(handler);
  const file = ['', '.js', '.mjs', '.cjs']
    .map((extension) => join(root, `${module}${extension}`))
    .find((name) => existsSync(name));
  if (!file) throw Object.assign(new Error(`Cannot find module '${module}'`), { name: 'Runtime.ImportModuleError' });
  let loaded;
  try {
    loaded = await import(pathToFileURL(file).href);
  } catch (error) {
    // A module that cannot be resolved is the runtime's ImportModuleError; anything thrown at load is the code's own.
    if (error?.code === 'ERR_MODULE_NOT_FOUND' || error?.code === 'MODULE_NOT_FOUND')
      throw Object.assign(new Error(`${error.message}`), { name: 'Runtime.ImportModuleError', stack: error.stack });
    throw error;
  }
  let fn = loaded;
  for (const name of path) fn = fn?.[name];
  if (typeof fn !== 'function')
    throw Object.assign(new Error(`${handler} is undefined or not exported`), { name: 'Runtime.HandlerNotFound' });
  return fn;
}

function invocationContext(requestId, deadline) {
  const env = process.env;
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName: env.AWS_LAMBDA_FUNCTION_NAME,
    functionVersion: env.AWS_LAMBDA_FUNCTION_VERSION,
    invokedFunctionArn: functionArn,
    memoryLimitInMB: env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
    awsRequestId: requestId,
    logGroupName: env.AWS_LAMBDA_LOG_GROUP_NAME,
    logStreamName: env.AWS_LAMBDA_LOG_STREAM_NAME,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
}

async function invoke(fn, event) {
  const requestId = randomUUID();
  const deadline = Date.now() + timeoutMs;
  let timer;
  const timedOut = new Promise((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          Object.assign(new Error(`Task timed out after ${(timeoutMs / 1000).toFixed(2)} seconds`), { name: 'Sandbox.Timedout' }),
        ),
      timeoutMs,
    );
  });
  try {
    return { result: (await Promise.race([fn(event, invocationContext(requestId, deadline)), timedOut])) ?? null };
  } catch (error) {
    return { error: failure(error) };
  } finally {
    clearTimeout(timer);
  }
}

let handler;
try {
  handler = await loadHandler();
} catch (error) {
  // Exit once the line is out, so the test reads why.
  send({ error: failure(error), init: true }, () => process.exit(1));
  await new Promise(() => {});
}
send({ ready: true, node: process.version });

for await (const line of createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY })) {
  if (line.trim() === '') continue;
  let event;
  try {
    event = JSON.parse(line);
  } catch (error) {
    send({ error: failure(error, 'Runtime.InvalidEvent') });
    continue;
  }
  send(await invoke(handler, event));
}
// Input closed: the container is shut down, whatever sockets the SDK still keeps alive.
process.exit(0);
