/**
 * `@keysmith/cdk`: Keysmith in a user's own CDK app (contract §13). The Lambda code ships prebuilt in the package,
 * so a consumer's synth needs neither esbuild nor Keysmith's sources.
 */
export { KeysmithAuthorizer, type KeysmithAuthorizerProps, type KeysmithJwtAuthorizerOptions } from './attach.ts';
export {
  Keysmith,
  type KeysmithDomainProps,
  type KeysmithFunctionName,
  type KeysmithProps,
  type KeysmithTokenSigningKeys,
} from './keysmith.ts';
export {
  KEYSMITH_OUTPUTS,
  type KeysmithOutput,
  KeysmithStack,
  type KeysmithStackDomainProps,
  type KeysmithStackProps,
  keysmithExportName,
} from './keysmith-stack.ts';
export { acknowledgeNagFindings } from './nag.ts';
