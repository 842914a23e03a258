/**
 * A user's own APIs using the Keysmith authorizer: a consumer app that knows Keysmith only by its exported
 * authorizer ARN (REST TOKEN, REST REQUEST, HTTP API), and the same-stack case with the real construct.
 */
import { App, Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AuthorizationType, MockIntegration, RestApi } from 'aws-cdk-lib/aws-apigateway';
import { HttpApi, HttpMethod } from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpUrlIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import { beforeAll, describe, expect, it } from 'vitest';
import { KeysmithAuthorizer } from '../../cdk/attach.ts';
import { KeysmithStack } from '../../cdk/keysmith-stack.ts';

type Json = Record<string, any>;

const IMPORTED_ARN = { 'Fn::ImportValue': 'Keysmith-AuthorizerFunctionArn' };

const ofType = (resources: Record<string, Json>, type: string) =>
  Object.entries(resources).filter(([, resource]) => resource.Type === type);
const contains = (value: unknown, fragment: unknown): boolean => JSON.stringify(value).includes(JSON.stringify(fragment));

describe('a consumer app attaching the authorizer by its exported ARN', () => {
  let resources: Record<string, Json>;
  let ids: { token: string; request: string; tokenApi: string; requestApi: string; httpApi: string };

  beforeAll(() => {
    const app = new App();
    const stack = new Stack(app, 'Consumer', { env: { account: '111122223333', region: 'us-east-1' } });
    const keysmith = KeysmithAuthorizer.fromStackExport(stack, 'Keysmith', { resultsCacheTtl: Duration.seconds(30) });

    const tokenApi = new RestApi(stack, 'OrdersApi');
    const token = keysmith.restTokenAuthorizer();
    tokenApi.root
      .addResource('orders')
      .addMethod('GET', new MockIntegration(), { authorizer: token, authorizationType: AuthorizationType.CUSTOM });

    const requestApi = new RestApi(stack, 'BillingApi');
    const request = keysmith.restRequestAuthorizer();
    requestApi.root
      .addResource('invoices')
      .addMethod('GET', new MockIntegration(), { authorizer: request, authorizationType: AuthorizationType.CUSTOM });

    const httpApi = new HttpApi(stack, 'ReportsApi');
    httpApi.addRoutes({
      path: '/reports',
      methods: [HttpMethod.GET],
      integration: new HttpUrlIntegration('Backend', 'https://backend.example.com/reports'),
      authorizer: keysmith.httpAuthorizer(),
    });

    resources = Template.fromStack(stack).toJSON().Resources;
    const id = (construct: { node: { defaultChild?: unknown } }) => stack.getLogicalId(construct.node.defaultChild as never);
    ids = { token: id(token), request: id(request), tokenApi: id(tokenApi), requestApi: id(requestApi), httpApi: id(httpApi) };
  });

  it('creates a TOKEN authorizer on the Authorization header that calls the imported function', () => {
    const authorizer = resources[ids.token]!.Properties;
    expect(authorizer).toMatchObject({
      Type: 'TOKEN',
      IdentitySource: 'method.request.header.Authorization',
      AuthorizerResultTtlInSeconds: 30,
      RestApiId: { Ref: ids.tokenApi },
    });
    expect(contains(authorizer.AuthorizerUri, IMPORTED_ARN)).toBe(true);
  });

  it('creates a REQUEST authorizer keyed by the Authorization header', () => {
    const authorizer = resources[ids.request]!.Properties;
    expect(authorizer).toMatchObject({
      Type: 'REQUEST',
      IdentitySource: 'method.request.header.Authorization',
      AuthorizerResultTtlInSeconds: 30,
      RestApiId: { Ref: ids.requestApi },
    });
    expect(contains(authorizer.AuthorizerUri, IMPORTED_ARN)).toBe(true);
  });

  it('creates an HTTP API authorizer with payload 2.0 and simple responses', () => {
    const [[, authorizer]] = ofType(resources, 'AWS::ApiGatewayV2::Authorizer') as [[string, Json]];
    expect(authorizer.Properties).toMatchObject({
      ApiId: { Ref: ids.httpApi },
      AuthorizerType: 'REQUEST',
      AuthorizerPayloadFormatVersion: '2.0',
      EnableSimpleResponses: true,
      IdentitySource: ['$request.header.Authorization'],
      AuthorizerResultTtlInSeconds: 30,
    });
    expect(contains(authorizer.Properties.AuthorizerUri, IMPORTED_ARN)).toBe(true);
  });

  it('protects the routes with the authorizers', () => {
    const methods = ofType(resources, 'AWS::ApiGateway::Method').map(([, method]) => method.Properties);
    expect(methods.map((method) => method.AuthorizerId).sort((a, b) => a.Ref.localeCompare(b.Ref))).toEqual(
      [{ Ref: ids.request }, { Ref: ids.token }].sort((a, b) => a.Ref.localeCompare(b.Ref)),
    );
    for (const method of methods) expect(method.AuthorizationType).toBe('CUSTOM');
    const [[, route]] = ofType(resources, 'AWS::ApiGatewayV2::Route') as [[string, Json]];
    expect(route.Properties.AuthorizationType).toBe('CUSTOM');
    expect(route.Properties.AuthorizerId).toBeDefined();
  });

  it('grants API Gateway lambda:InvokeFunction on the imported function, once per authorizer and scoped to it', () => {
    const permissions = ofType(resources, 'AWS::Lambda::Permission').map(([, permission]) => permission.Properties);
    for (const permission of permissions) {
      expect(permission.Action).toBe('lambda:InvokeFunction');
      expect(permission.Principal).toBe('apigateway.amazonaws.com');
      expect(permission.FunctionName).toEqual(IMPORTED_ARN);
    }
    const scopedTo = (api: string, marker: string) =>
      permissions.filter(
        (permission) => contains(permission.SourceArn, { Ref: api }) && JSON.stringify(permission.SourceArn).includes(marker),
      );
    expect(scopedTo(ids.tokenApi, '/authorizers/')).toHaveLength(1);
    expect(scopedTo(ids.requestApi, '/authorizers/')).toHaveLength(1);
    expect(scopedTo(ids.httpApi, '/authorizers/')).toHaveLength(1);
  });
});

describe("HTTP API's native JWT authorizer for access tokens (contract §9)", () => {
  it('verifies against the exported issuer base and audience, with scopes per route, and no Lambda or permission', () => {
    const app = new App();
    const stack = new Stack(app, 'Consumer', { env: { account: '111122223333', region: 'us-east-1' } });
    const keysmith = KeysmithAuthorizer.fromStackExport(stack, 'Keysmith');
    const api = new HttpApi(stack, 'InvoicesApi');
    const jwt = keysmith.httpJwtAuthorizer('Jwt', { audience: ['https://invoices.example.com'] });
    const integration = new HttpUrlIntegration('Backend', 'https://backend.example.com/invoices');
    api.addRoutes({
      path: '/invoices',
      methods: [HttpMethod.GET],
      integration,
      authorizer: jwt,
      authorizationScopes: ['invoices:read'],
    });
    api.addRoutes({
      path: '/invoices',
      methods: [HttpMethod.POST],
      integration,
      authorizer: jwt,
      authorizationScopes: ['invoices:write'],
    });
    const resources = Template.fromStack(stack).toJSON().Resources as Record<string, Json>;

    const [[authorizerId, authorizer]] = ofType(resources, 'AWS::ApiGatewayV2::Authorizer') as [[string, Json]];
    expect(authorizer.Properties).toMatchObject({
      AuthorizerType: 'JWT',
      IdentitySource: ['$request.header.Authorization'],
      JwtConfiguration: { Issuer: { 'Fn::ImportValue': 'Keysmith-IssuerBase' }, Audience: ['https://invoices.example.com'] },
    });
    const routes = ofType(resources, 'AWS::ApiGatewayV2::Route').map(([, route]) => route.Properties);
    expect(routes.map((route) => [route.RouteKey, route.AuthorizationType, route.AuthorizationScopes]).sort()).toEqual([
      ['GET /invoices', 'JWT', ['invoices:read']],
      ['POST /invoices', 'JWT', ['invoices:write']],
    ]);
    for (const route of routes) expect(route.AuthorizerId).toEqual({ Ref: authorizerId });
    // Nothing to invoke: API Gateway verifies the token itself, and the stack never imports the authorizer ARN.
    expect(ofType(resources, 'AWS::Lambda::Permission')).toEqual([]);
    expect(contains(resources, { 'Fn::ImportValue': 'Keysmith-AuthorizerFunctionArn' })).toBe(false);
  });

  it("uses the Keysmith construct's issuer base in the same app, and says what is missing without one", () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new KeysmithStack(app, 'Keysmith', {
      env: { region: 'us-east-1' },
      keysmith: { issuerBase: 'https://keys.example.com' },
    });
    const attach = new KeysmithAuthorizer(stack, 'ForReports', {
      authorizerFunction: stack.keysmith.authorizerFunction,
      issuerBase: stack.keysmith.issuerBase,
    });
    const api = new HttpApi(stack, 'ReportsApi');
    api.addRoutes({
      path: '/reports',
      methods: [HttpMethod.GET],
      integration: new HttpUrlIntegration('Backend', 'https://backend.example.com/reports'),
      authorizer: attach.httpJwtAuthorizer(undefined, { audience: ['https://reports.example.com'] }),
    });
    const resources = Template.fromStack(stack).toJSON().Resources as Record<string, Json>;
    const [[, authorizer]] = ofType(resources, 'AWS::ApiGatewayV2::Authorizer') as [[string, Json]];
    expect(authorizer.Properties.JwtConfiguration).toEqual({
      Issuer: 'https://keys.example.com',
      Audience: ['https://reports.example.com'],
    });

    const bare = new KeysmithAuthorizer(new Stack(new App(), 'Other'), 'Bare', {
      authorizerFunctionArn: 'arn:aws:lambda:us-east-1:111122223333:function:keysmith',
    });
    expect(() => bare.httpJwtAuthorizer('Jwt', { audience: ['https://a.example'] })).toThrow(/issuer base/);
    expect(() => attach.httpJwtAuthorizer('Empty', { audience: [] })).toThrow(/audience/);
  });
});

describe('attaching in the Keysmith stack itself', () => {
  it('uses the function directly and grants its invocation to the other API', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new KeysmithStack(app, 'Keysmith', { env: { region: 'us-east-1' } });
    const attach = new KeysmithAuthorizer(stack, 'ForPartnerApi', { authorizerFunction: stack.keysmith.authorizerFunction });
    const partnerApi = new HttpApi(stack, 'PartnerApi');
    partnerApi.addRoutes({
      path: '/partners',
      methods: [HttpMethod.GET],
      integration: new HttpUrlIntegration('Backend', 'https://backend.example.com/partners'),
      authorizer: attach.httpAuthorizer(),
    });
    const template = Template.fromStack(stack).toJSON();
    const functionArn = {
      'Fn::GetAtt': [stack.getLogicalId(stack.keysmith.authorizerFunction.node.defaultChild as never), 'Arn'],
    };
    const apiRef = { Ref: stack.getLogicalId(partnerApi.node.defaultChild as never) };
    const permissions = ofType(template.Resources, 'AWS::Lambda::Permission').map(([, permission]) => permission.Properties);
    expect(
      permissions.some(
        (permission) =>
          contains(permission.FunctionName, functionArn) &&
          permission.Principal === 'apigateway.amazonaws.com' &&
          contains(permission.SourceArn, apiRef),
      ),
    ).toBe(true);
  });

  it('wants exactly one of the function and its ARN', () => {
    const stack = new Stack(new App(), 'Consumer');
    expect(() => new KeysmithAuthorizer(stack, 'Neither', {})).toThrow(/exactly one/);
  });
});
