/**
 * Attaches Keysmith's Lambda authorizer to a user's own APIs: REST APIs (TOKEN or REQUEST authorizer) and
 * HTTP APIs (payload 2.0, simple responses), in the Keysmith stack, another stack, or another app.
 */
import { Duration, Fn } from 'aws-cdk-lib';
import { IdentitySource, RequestAuthorizer, TokenAuthorizer } from 'aws-cdk-lib/aws-apigateway';
import { HttpLambdaAuthorizer, HttpLambdaResponseType } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
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
    return new KeysmithAuthorizer(scope, id, {
      authorizerFunctionArn: Fn.importValue(keysmithExportName(options.stackName ?? 'Keysmith', 'AuthorizerFunctionArn')),
      ...(options.resultsCacheTtl ? { resultsCacheTtl: options.resultsCacheTtl } : {}),
    });
  }

  /** The Keysmith authorizer function. */
  readonly authorizerFunction: IFunction;
  private readonly resultsCacheTtl: Duration;

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
}
