/**
 * Where the Lambda code of the five functions comes from: bundles built ahead of time (`npm run build:lambdas`,
 * and inside `@keysmith/cdk` at package build time), so `cdk synth` needs neither esbuild nor Keysmith's sources.
 * The same relative path works in the repository (cdk/ → dist/lambda/) and in the package (dist/ → dist/lambda/).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Code } from 'aws-cdk-lib/aws-lambda';

/** The Keysmith functions, by name (`lambdas/<name>/handler.ts`). */
export const KEYSMITH_FUNCTIONS = ['authorizer', 'management', 'discovery', 'token', 'audit'] as const;
export type KeysmithFunctionName = (typeof KEYSMITH_FUNCTIONS)[number];

/** The bundle's file inside each function's folder, and the handler Lambda is told to call. */
export const LAMBDA_ENTRY_FILE = 'index.mjs';
export const LAMBDA_HANDLER = 'index.handler';

/** The folder holding a function's prebuilt bundle and its source map. */
export function lambdaCodeDirectory(name: KeysmithFunctionName): string {
  return fileURLToPath(new URL(`../dist/lambda/${name}`, import.meta.url));
}

/** The function's prebuilt code as a Lambda asset; fails synth with what to run when the bundle is missing. */
export function lambdaCode(name: KeysmithFunctionName): Code {
  const directory = lambdaCodeDirectory(name);
  if (!existsSync(join(directory, LAMBDA_ENTRY_FILE)))
    throw new Error(`Keysmith: the ${name} function's code is missing at ${directory}; run \`npm run build:lambdas\``);
  return Code.fromAsset(directory);
}
