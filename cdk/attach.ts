/**
 * Attaches Keysmith's Lambda authorizer to a user's own APIs: REST APIs (TOKEN or REQUEST authorizer) and
 * HTTP APIs (payload 2.0, simple responses), in the Keysmith stack, another stack, or another app; and, for
 * Keysmith access tokens (contract §9), HTTP API's native JWT authorizer, which needs no Lambda at all.
 */
import { Duration, Fn } from 'aws-cdk-lib';
import { IdentitySource, RequestAuthorizer, TokenAuthorizer } from 'aws-cdk-lib/aws-apigateway';
import { HttpJwtAuthorizer, HttpLambdaAuthorizer, HttpLambdaResponseType } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { type IFunction, Function as LambdaFunction } from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { keysmithExportName } from './keysmith-stack.ts';

/** Where to find the Keysmith authorizer and how long API Gateway may cache its decisions. */
export interface KeysmithAuthorizerProps {
  /**
   * The authorizer function itself, when Keysmith is in the same app (`keysmith.authorizerFunction`).
   * @default - imported from `authorizerFunctionArn`
   */
  readonly authorizerFunction?: IFunction;
  /**
   * The authorizer function's ARN (the `AuthorizerFunctionArn` output), e.g. `Fn.importValue('Keysmith-AuthorizerFunctionArn')`.
   * The function must be in the same account and region as the API: this stack adds its invoke permission.
   * @default - `authorizerFunction` must be given
   */
  readonly authorizerFunctionArn?: string;
  /**
   * How long API Gateway caches a decision per token; it adds to Keysmith's revocation bound.
   * @default Duration.seconds(0) - every request is decided by the authorizer
   */
  readonly resultsCacheTtl?: Duration;
  /**
   * Keysmith's issuer base (`keysmith.issuerBase`, or the `IssuerBase` output), for {@link KeysmithAuthorizer.httpJwtAuthorizer}.
   * @default - imported from the stack's export with `fromStackExport`; otherwise none, and httpJwtAuthorizer throws
   */
  readonly issuerBase?: string;
}

/** Options of {@link KeysmithAuthorizer.httpJwtAuthorizer}. */
export interface KeysmithJwtAuthorizerOptions {
  /**
   * The audiences the API accepts: one of the Keysmith deployment's audiences, the `resource` a client asks its
   * access token for (the first audience when it asks for none).
   */
  readonly audience: string[];
}

/** Makes API Gateway authorizers that call the Keysmith authorizer function, and grants API Gateway its invocation. */
export class KeysmithAuthorizer extends Construct {
  /**
   * Uses the authorizer a Keysmith stack exported (`{stackName}-AuthorizerFunctionArn`), from any stack or app
   * deployed to the same account and region.
   */
  static fromStackExport(
    scope: Construct,
    id: string,
    options: { stackName?: string; resultsCacheTtl?: Duration } = {},
  ): KeysmithAuthorizer {
    const stackName = options.stackName ?? 'Keysmith';
    const imported = new KeysmithAuthorizer(scope, id, {
      authorizerFunctionArn: Fn.importValue(keysmithExportName(stackName, 'AuthorizerFunctionArn')),
      ...(options.resultsCacheTtl ? { resultsCacheTtl: options.resultsCacheTtl } : {}),
    });
    // Imported only when a JWT authorizer asks for it, so a stack that uses none does not depend on the export.
    imported.importedIssuerBase = () => Fn.importValue(keysmithExportName(stackName, 'IssuerBase'));
    return imported;
  }

  /** The Keysmith authorizer function. */
  readonly authorizerFunction: IFunction;
  private readonly resultsCacheTtl: Duration;
  private readonly issuerBase: string | undefined;
  private importedIssuerBase: (() => string) | undefined;

  constructor(scope: Construct, id: string, props: KeysmithAuthorizerProps) {
    super(scope, id);
    if (!props.authorizerFunction === !props.authorizerFunctionArn)
      throw new Error('KeysmithAuthorizer: give exactly one of authorizerFunction and authorizerFunctionArn');
    this.authorizerFunction =
      props.authorizerFunction ??
      // sameEnvironment: the ARN is usually an import (a token), so CDK cannot see that it is this account's
      // function; saying so lets the authorizers below add API Gateway's lambda:InvokeFunction permission.
      LambdaFunction.fromFunctionAttributes(this, 'Function', {
        functionArn: props.authorizerFunctionArn!,
        sameEnvironment: true,
      });
    this.resultsCacheTtl = props.resultsCacheTtl ?? Duration.seconds(0);
    this.issuerBase = props.issuerBase;
  }

  /**
   * A REST API TOKEN authorizer on the `Authorization` header; use it on one REST API's methods
   * (`authorizer: ..., authorizationType: AuthorizationType.CUSTOM`).
   */
  restTokenAuthorizer(id = 'TokenAuthorizer'): TokenAuthorizer {
    return new TokenAuthorizer(this, id, {
      handler: this.authorizerFunction,
      identitySource: IdentitySource.header('Authorization'),
      resultsCacheTtl: this.resultsCacheTtl,
      validationRegex: '^[Bb][Ee][Aa][Rr][Ee][Rr] +[^ ]+ *$',
    });
  }

  /** A REST API REQUEST authorizer keyed (and cached) by the `Authorization` header; use it on one REST API's methods. */
  restRequestAuthorizer(id = 'RequestAuthorizer'): RequestAuthorizer {
    return new RequestAuthorizer(this, id, {
      handler: this.authorizerFunction,
      identitySources: [IdentitySource.header('Authorization')],
      resultsCacheTtl: this.resultsCacheTtl,
    });
  }

  /** An HTTP API authorizer (payload 2.0, simple responses) on the `Authorization` header; use it on one HTTP API's routes. */
  httpAuthorizer(id = 'KeysmithHttpAuthorizer'): HttpLambdaAuthorizer {
    return new HttpLambdaAuthorizer(id, this.authorizerFunction, {
      responseTypes: [HttpLambdaResponseType.SIMPLE],
      identitySource: ['$request.header.Authorization'],
      resultsCacheTtl: this.resultsCacheTtl,
    });
  }

  /**
   * HTTP API's native JWT authorizer for Keysmith access tokens (contract §9): API Gateway checks the RS256
   * signature against Keysmith's JWKS (found through `{issuerBase}/.well-known/openid-configuration`), `iss`,
   * `aud`, `exp` and `nbf`, and a route's `authorizationScopes` against the token's `scope`. No Lambda runs, so it
   * costs nothing beyond the HTTP API request; the revocation bound is the access-token lifetime. The claims reach
   * the integration as `$context.authorizer.claims.*` (`sub`, `tenant_id`, `key_id`, `scope`).
   */
  httpJwtAuthorizer(id = 'KeysmithJwtAuthorizer', options: KeysmithJwtAuthorizerOptions): HttpJwtAuthorizer {
    const issuer = this.issuerBase ?? this.importedIssuerBase?.();
    if (!issuer)
      throw new Error(
        'KeysmithAuthorizer: httpJwtAuthorizer needs the issuer base: give issuerBase, or use KeysmithAuthorizer.fromStackExport',
      );
    if (options.audience.length === 0) throw new Error('KeysmithAuthorizer: httpJwtAuthorizer needs at least one audience');
    return new HttpJwtAuthorizer(id, issuer, {
      jwtAudience: [...options.audience],
      identitySource: ['$request.header.Authorization'],
    });
  }
}
