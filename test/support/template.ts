/**
 * A synthesized cloud assembly read the way CloudFormation, Lambda and API Gateway would read it, so a test can run
 * what `cdk deploy` would deploy: each resource gets a made-up physical id, intrinsic functions resolve against them,
 * each function's code is its staged asset folder (found through the asset manifest, as `cdk deploy` uploads it), and
 * the REST API's resources, methods, authorizers and gateway responses answer requests as the gateway would.
 * Nothing here knows Keysmith: every name comes from the template.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';

export type Json = Record<string, any>;

/** A template resource. */
export interface TemplateResource {
  Type: string;
  Properties?: Json;
  Metadata?: Json;
}

/** What the assembly holds for one stack. */
export interface StackAssembly {
  stackName: string;
  /** The cloud assembly directory (`cdk.out`). */
  directory: string;
  template: { Resources: Record<string, TemplateResource>; [section: string]: unknown };
  /** The stack's asset manifest (`<stack>.assets.json`). */
  assetManifest: Json;
}

/** Reads a stack's template and asset manifest from a cloud assembly directory, through its manifest.json. */
export function readStackAssembly(directory: string, stackName: string): StackAssembly {
  const manifest = JSON.parse(readFileSync(join(directory, 'manifest.json'), 'utf8'));
  const artifacts: Record<string, Json> = manifest.artifacts ?? {};
  const stack = Object.entries(artifacts).find(
    // The artifact id is the stack name unless the manifest gives another.
    ([id, artifact]) => artifact.type === 'aws:cloudformation:stack' && (artifact.properties?.stackName ?? id) === stackName,
  );
  if (!stack) throw new Error(`the cloud assembly in ${directory} has no stack ${stackName}`);
  const [stackId, stackArtifact] = stack;
  const assetArtifact = (stackArtifact.dependencies ?? [])
    .map((id: string) => artifacts[id])
    .find((artifact: Json | undefined) => artifact?.type === 'cdk:asset-manifest');
  if (!assetArtifact) throw new Error(`stack ${stackId} has no asset manifest`);
  return {
    stackName,
    directory,
    template: JSON.parse(readFileSync(join(directory, stackArtifact.properties.templateFile), 'utf8')),
    assetManifest: JSON.parse(readFileSync(join(directory, assetArtifact.properties.file), 'utf8')),
  };
}

/** Where the stack is "deployed": the pseudo parameters and the REST API's id. */
export interface DeploymentOptions {
  region?: string;
  accountId?: string;
  /** The id the REST API's Ref resolves to. @default a random 10-character id */
  apiId?: string;
}

/** A function as Lambda would run it. */
export interface DeployedFunction {
  logicalId: string;
  name: string;
  arn: string;
  /** `Handler`, e.g. `index.handler`. */
  handler: string;
  /** `Runtime`, e.g. `nodejs24.x`. */
  runtime: string;
  timeoutSeconds: number;
  memoryMb: number;
  /** `Environment.Variables`, resolved. */
  environment: Record<string, string>;
  /** The staged asset folder `cdk deploy` zips and uploads. */
  codeDirectory: string;
  logGroupName: string;
}

/** A table as CreateTable would make it, from the template's own definition. */
export interface DeployedTable {
  logicalId: string;
  name: string;
  createTable: CreateTableCommandInput;
  timeToLiveAttribute: string | undefined;
}

/** A KMS key of the template. */
export interface DeployedKey {
  logicalId: string;
  arn: string;
  keySpec: string;
  keyUsage: string;
}

/** A REST API method of the template. */
export interface DeployedMethod {
  logicalId: string;
  httpMethod: string;
  resourcePath: string;
  authorizationType: string;
  authorizerLogicalId: string | undefined;
  /** The function of an AWS_PROXY Lambda integration. */
  integrationFunction: string;
}

/** A Lambda authorizer of the template. */
export interface DeployedAuthorizer {
  logicalId: string;
  type: string;
  identitySource: string;
  validationExpression: string | undefined;
  resultTtlSeconds: number;
  functionLogicalId: string;
}

const PSEUDO_DEFAULTS = { region: 'us-east-1', accountId: '111122223333' };

/** The resolved stack: physical ids, intrinsic functions, functions, tables, keys and the REST API. */
export class DeployedStack {
  readonly region: string;
  readonly accountId: string;
  readonly resources: Record<string, TemplateResource>;
  private readonly refs = new Map<string, string>();
  private readonly attributes = new Map<string, string>();

  constructor(
    readonly assembly: StackAssembly,
    options: DeploymentOptions = {},
  ) {
    this.region = options.region ?? PSEUDO_DEFAULTS.region;
    this.accountId = options.accountId ?? PSEUDO_DEFAULTS.accountId;
    this.resources = assembly.template.Resources;
    const apiId = options.apiId ?? randomBytes(8).toString('hex').slice(0, 10);
    const suffix = randomBytes(6).toString('hex').toUpperCase();
    // Physical names as CloudFormation makes them: stack, logical id and a random suffix (unique per run).
    const generated = (logicalId: string, max = 255) => `${assembly.stackName}-${logicalId}-${suffix}`.slice(-max);
    const prefix = (service: string) => `arn:aws:${service}:${this.region}:${this.accountId}`;
    for (const [id, resource] of Object.entries(this.resources)) {
      switch (resource.Type) {
        case 'AWS::DynamoDB::GlobalTable':
        case 'AWS::DynamoDB::Table': {
          const name = generated(id);
          this.refs.set(id, name);
          this.attributes.set(`${id}.Arn`, `${prefix('dynamodb')}:table/${name}`);
          break;
        }
        case 'AWS::KMS::Key': {
          const keyId = randomUUID();
          this.refs.set(id, keyId);
          this.attributes.set(`${id}.Arn`, `${prefix('kms')}:key/${keyId}`);
          this.attributes.set(`${id}.KeyId`, keyId);
          break;
        }
        case 'AWS::Lambda::Function': {
          const name = generated(id, 64);
          this.refs.set(id, name);
          this.attributes.set(`${id}.Arn`, `${prefix('lambda')}:function:${name}`);
          break;
        }
        case 'AWS::ApiGateway::RestApi':
          this.refs.set(id, apiId);
          this.attributes.set(`${id}.RootResourceId`, `${apiId}-root`);
          break;
        case 'AWS::Logs::LogGroup': {
          const name = generated(id, 512);
          this.refs.set(id, name);
          this.attributes.set(`${id}.Arn`, `${prefix('logs')}:log-group:${name}:*`);
          break;
        }
        case 'AWS::IAM::Role': {
          const name = generated(id, 64);
          this.refs.set(id, name);
          this.attributes.set(`${id}.Arn`, `arn:aws:iam::${this.accountId}:role/${name}`);
          break;
        }
        default:
          // Resources the test only names (API resources, authorizers, policies): their Ref is their logical id.
          this.refs.set(id, id);
      }
    }
  }

  /** The same stack with its template changed by `change` (a copy; for tests of what must fail). */
  withTemplate(change: (template: StackAssembly['template']) => void): DeployedStack {
    const template = structuredClone(this.assembly.template);
    change(template);
    return new DeployedStack(
      { ...this.assembly, template },
      { region: this.region, accountId: this.accountId, apiId: this.apiId },
    );
  }

  resource(logicalId: string): TemplateResource {
    const resource = this.resources[logicalId];
    if (!resource) throw new Error(`the template has no resource ${logicalId}`);
    return resource;
  }

  ofType(type: string): [string, TemplateResource][] {
    return Object.entries(this.resources).filter(([, resource]) => resource.Type === type);
  }

  /** Resolves Ref, Fn::GetAtt, Fn::Join, Fn::Select, Fn::Split and Fn::Sub; anything else unmodelled throws. */
  resolve(value: unknown): unknown {
    if (value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map((item) => this.resolve(item));
    const entries = Object.entries(value as Json);
    const [name, argument] = entries[0] ?? [];
    if (entries.length === 1 && name !== undefined && (name === 'Ref' || name.startsWith('Fn::')))
      return this.intrinsic(name, argument);
    return Object.fromEntries(entries.map(([key, item]) => [key, this.resolve(item)]));
  }

  /** Resolves a value that must be a string (`what` names it in the error). */
  resolveString(value: unknown, what: string): string {
    const resolved = this.resolve(value);
    if (typeof resolved !== 'string' && typeof resolved !== 'number')
      throw new Error(`${what} does not resolve to a string: ${JSON.stringify(value)}`);
    return String(resolved);
  }

  private pseudo(name: string): string | undefined {
    return {
      'AWS::Region': this.region,
      'AWS::AccountId': this.accountId,
      'AWS::Partition': 'aws',
      'AWS::URLSuffix': 'amazonaws.com',
      'AWS::StackName': this.assembly.stackName,
      'AWS::StackId': `arn:aws:cloudformation:${this.region}:${this.accountId}:stack/${this.assembly.stackName}/${randomUUID()}`,
    }[name];
  }

  private ref(name: string): string {
    const value = this.pseudo(name) ?? this.refs.get(name);
    if (value === undefined) throw new Error(`Ref ${name}: no such resource or pseudo parameter in the template`);
    return value;
  }

  private getAtt(logicalId: string, attribute: string): string {
    const value = this.attributes.get(`${logicalId}.${attribute}`);
    if (value === undefined) {
      const type = this.resources[logicalId]?.Type ?? 'no such resource';
      throw new Error(`Fn::GetAtt ${logicalId}.${attribute} (${type}) is not modelled by the test's stand-in deployment`);
    }
    return value;
  }

  private intrinsic(name: string, argument: any): unknown {
    switch (name) {
      case 'Ref':
        return this.ref(argument);
      case 'Fn::GetAtt': {
        const [logicalId, attribute] = Array.isArray(argument) ? argument : String(argument).split(/\.(.*)/s);
        return this.getAtt(logicalId, attribute);
      }
      case 'Fn::Join': {
        const [separator, parts] = argument as [string, unknown];
        const list = this.resolve(parts);
        if (!Array.isArray(list)) throw new Error(`Fn::Join of a non-list: ${JSON.stringify(parts)}`);
        return list.map((part, index) => this.resolveString(part, `Fn::Join part ${index}`)).join(separator);
      }
      case 'Fn::Select': {
        const [index, list] = argument as [unknown, unknown];
        const items = this.resolve(list);
        const at = Number(this.resolve(index));
        if (!Array.isArray(items) || !(at in items)) throw new Error(`Fn::Select ${at} out of ${JSON.stringify(items)}`);
        return items[at];
      }
      case 'Fn::Split': {
        const [separator, source] = argument as [string, unknown];
        return this.resolveString(source, 'Fn::Split source').split(separator);
      }
      case 'Fn::Sub': {
        const [text, variables = {}] = (Array.isArray(argument) ? argument : [argument]) as [string, Json?];
        return text.replace(/\$\{([^}!][^}]*)\}/g, (_, variable: string) => {
          if (variable in variables) return this.resolveString(variables[variable], `Fn::Sub \${${variable}}`);
          const [logicalId, attribute] = variable.split(/\.(.*)/s) as [string, string | undefined];
          return attribute ? this.getAtt(logicalId, attribute) : this.ref(logicalId);
        });
      }
      default:
        throw new Error(`${name} is not modelled by the test's stand-in deployment`);
    }
  }

  /** The REST API's id (its resolved Ref). */
  get apiId(): string {
    const apis = this.ofType('AWS::ApiGateway::RestApi');
    if (apis.length !== 1) throw new Error(`expected one AWS::ApiGateway::RestApi, the template has ${apis.length}`);
    return this.ref(apis[0]![0]);
  }

  /** Every Lambda function, with its staged code and resolved environment. */
  functions(): DeployedFunction[] {
    return this.ofType('AWS::Lambda::Function').map(([logicalId]) => this.function(logicalId));
  }

  function(logicalId: string): DeployedFunction {
    const resource = this.resource(logicalId);
    if (resource.Type !== 'AWS::Lambda::Function') throw new Error(`${logicalId} is a ${resource.Type}, not a function`);
    const properties = resource.Properties ?? {};
    const variables: Json = properties.Environment?.Variables ?? {};
    const environment: Record<string, string> = {};
    for (const [name, value] of Object.entries(variables))
      environment[name] = this.resolveString(value, `${logicalId} Environment.Variables.${name}`);
    const name = this.ref(logicalId);
    return {
      logicalId,
      name,
      arn: this.getAtt(logicalId, 'Arn'),
      handler: String(properties.Handler),
      runtime: String(properties.Runtime),
      timeoutSeconds: Number(properties.Timeout ?? 3),
      memoryMb: Number(properties.MemorySize ?? 128),
      environment,
      codeDirectory: this.codeDirectory(logicalId, properties.Code ?? {}, resource.Metadata ?? {}),
      logGroupName: properties.LoggingConfig?.LogGroup
        ? this.resolveString(properties.LoggingConfig.LogGroup, `${logicalId} LoggingConfig.LogGroup`)
        : `/aws/lambda/${name}`,
    };
  }

  /** The function whose ARN is in a Lambda integration or authorizer URI (`.../functions/<arn>/invocations`). */
  functionOfUri(uri: unknown, what: string): string {
    const resolved = this.resolveString(uri, what);
    const arn = /\/functions\/(arn:[^/]+)\/invocations$/.exec(resolved)?.[1];
    const match = this.ofType('AWS::Lambda::Function').find(([id]) => this.getAtt(id, 'Arn') === arn);
    if (!match) throw new Error(`${what} (${resolved}) names no function of the template`);
    return match[0];
  }

  /**
   * The folder `cdk deploy` zips for this function: the asset manifest entry whose destination object key is the
   * function's `Code.S3Key`; the `aws:asset:path` metadata must name the same folder.
   */
  private codeDirectory(logicalId: string, code: Json, metadata: Json): string {
    if (code.ZipFile !== undefined) throw new Error(`${logicalId} has inline code; expected a staged asset`);
    const objectKey = this.resolveString(code.S3Key, `${logicalId} Code.S3Key`);
    const bucket = this.resolveString(code.S3Bucket, `${logicalId} Code.S3Bucket`);
    const files: Record<string, Json> = this.assembly.assetManifest.files ?? {};
    const entry = Object.entries(files).find(([, file]) =>
      Object.values(file.destinations ?? {}).some(
        (destination: any) =>
          destination.objectKey === objectKey &&
          // The manifest spells the bucket as Fn::Sub would.
          this.resolveString({ 'Fn::Sub': destination.bucketName }, `asset bucket of ${logicalId}`) === bucket,
      ),
    );
    if (!entry) throw new Error(`${logicalId}: no asset in the asset manifest is uploaded to s3://${bucket}/${objectKey}`);
    const [hash, file] = entry;
    if (file.source?.packaging !== 'zip') throw new Error(`${logicalId}: asset ${hash} is not a zipped folder`);
    if (metadata['aws:asset:path'] !== undefined && metadata['aws:asset:path'] !== file.source.path)
      throw new Error(
        `${logicalId}: aws:asset:path ${metadata['aws:asset:path']} differs from the manifest's ${file.source.path}`,
      );
    const directory = join(this.assembly.directory, file.source.path);
    if (!existsSync(directory)) throw new Error(`${logicalId}: the staged asset ${directory} is missing`);
    return directory;
  }

  /** Every DynamoDB table, with the CreateTable request that makes it as the template defines it. */
  tables(): DeployedTable[] {
    return [...this.ofType('AWS::DynamoDB::GlobalTable'), ...this.ofType('AWS::DynamoDB::Table')].map(([logicalId, resource]) => {
      const p = (this.resolve(resource.Properties ?? {}) as Json) ?? {};
      const indexes = (list: Json[] | undefined) =>
        list?.map((index) => ({ IndexName: index.IndexName, KeySchema: index.KeySchema, Projection: index.Projection }));
      const name = this.ref(logicalId);
      return {
        logicalId,
        name,
        createTable: {
          TableName: name,
          AttributeDefinitions: p.AttributeDefinitions,
          KeySchema: p.KeySchema,
          BillingMode: 'PAY_PER_REQUEST',
          ...(p.GlobalSecondaryIndexes ? { GlobalSecondaryIndexes: indexes(p.GlobalSecondaryIndexes) } : {}),
          ...(p.LocalSecondaryIndexes ? { LocalSecondaryIndexes: indexes(p.LocalSecondaryIndexes) } : {}),
          ...(p.StreamSpecification ? { StreamSpecification: { StreamEnabled: true, ...p.StreamSpecification } } : {}),
        },
        timeToLiveAttribute: p.TimeToLiveSpecification?.Enabled ? p.TimeToLiveSpecification.AttributeName : undefined,
      };
    });
  }

  /** Every KMS key with its spec and usage (KMS's defaults when the template leaves them out). */
  keys(): DeployedKey[] {
    return this.ofType('AWS::KMS::Key').map(([logicalId, resource]) => ({
      logicalId,
      arn: this.getAtt(logicalId, 'Arn'),
      keySpec: String(resource.Properties?.KeySpec ?? 'SYMMETRIC_DEFAULT'),
      keyUsage: String(resource.Properties?.KeyUsage ?? 'ENCRYPT_DECRYPT'),
    }));
  }

  /** The stage's name (the template must have one stage). */
  stageName(): string {
    const stages = this.ofType('AWS::ApiGateway::Stage');
    if (stages.length !== 1) throw new Error(`expected one AWS::ApiGateway::Stage, the template has ${stages.length}`);
    return this.resolveString(stages[0]![1].Properties?.StageName, 'Stage StageName');
  }

  /** Each API resource's full path, from its PathPart and ParentId chain up to the API's root resource. */
  resourcePaths(): Map<string, string> {
    const root = this.getAtt(this.ofType('AWS::ApiGateway::RestApi')[0]![0], 'RootResourceId');
    const resources = new Map(this.ofType('AWS::ApiGateway::Resource'));
    const paths = new Map<string, string>([[root, '/']]);
    const pathOf = (id: string, seen: Set<string>): string => {
      const known = paths.get(id);
      if (known !== undefined) return known;
      const resource = resources.get(id);
      if (!resource) throw new Error(`API resource ${id} is not in the template`);
      if (seen.has(id)) throw new Error(`API resource ${id} is its own ancestor`);
      seen.add(id);
      const parent = pathOf(this.resolveString(resource.Properties?.ParentId, `${id} ParentId`), seen);
      const path = `${parent === '/' ? '' : parent}/${this.resolveString(resource.Properties?.PathPart, `${id} PathPart`)}`;
      paths.set(id, path);
      return path;
    };
    for (const id of resources.keys()) pathOf(id, new Set());
    return paths;
  }

  /** Every method of the REST API with its resource path, authorization and integration function. */
  methods(): DeployedMethod[] {
    const paths = this.resourcePaths();
    return this.ofType('AWS::ApiGateway::Method').map(([logicalId, resource]) => {
      const p = resource.Properties ?? {};
      const resourceId = this.resolveString(p.ResourceId, `${logicalId} ResourceId`);
      const resourcePath = paths.get(resourceId);
      if (resourcePath === undefined) throw new Error(`method ${logicalId} is on an unknown resource ${resourceId}`);
      if (p.Integration?.Type !== 'AWS_PROXY') throw new Error(`method ${logicalId} is not a Lambda proxy integration`);
      return {
        logicalId,
        httpMethod: String(p.HttpMethod),
        resourcePath,
        authorizationType: String(p.AuthorizationType ?? 'NONE'),
        authorizerLogicalId: p.AuthorizerId ? this.resolveString(p.AuthorizerId, `${logicalId} AuthorizerId`) : undefined,
        integrationFunction: this.functionOfUri(p.Integration.Uri, `${logicalId} Integration.Uri`),
      };
    });
  }

  /** The method API Gateway serves for a method and resource path; throws naming what the template has instead. */
  findMethod(httpMethod: string, resourcePath: string): DeployedMethod {
    const methods = this.methods();
    const method = methods.find((candidate) => candidate.httpMethod === httpMethod && candidate.resourcePath === resourcePath);
    if (!method) {
      const onPath = methods.filter((candidate) => candidate.resourcePath === resourcePath).map((m) => m.httpMethod);
      const resourceExists = [...this.resourcePaths().values()].includes(resourcePath);
      const why =
        onPath.length > 0
          ? `that resource has ${onPath.join(', ')}`
          : resourceExists
            ? 'no method on that resource'
            : 'no such resource';
      throw new Error(`the template has no AWS::ApiGateway::Method ${httpMethod} ${resourcePath} (${why})`);
    }
    return method;
  }

  /** The resource path a concrete request path matches, as API Gateway picks it (literal segments before `{name}`). */
  matchResource(path: string): { resourcePath: string; pathParameters: Record<string, string> } | undefined {
    const segments = path.split('/').filter((segment) => segment !== '');
    let best: { resourcePath: string; pathParameters: Record<string, string>; literals: number } | undefined;
    for (const resourcePath of new Set(this.resourcePaths().values())) {
      const parts = resourcePath.split('/').filter((part) => part !== '');
      if (parts.length !== segments.length) continue;
      const pathParameters: Record<string, string> = {};
      let literals = 0;
      const matches = parts.every((part, index) => {
        const parameter = /^\{(\w+)\}$/.exec(part)?.[1];
        if (parameter) {
          pathParameters[parameter] = segments[index]!;
          return true;
        }
        literals++;
        return part === segments[index];
      });
      if (matches && (!best || literals > best.literals)) best = { resourcePath, pathParameters, literals };
    }
    return best && { resourcePath: best.resourcePath, pathParameters: best.pathParameters };
  }

  authorizer(logicalId: string): DeployedAuthorizer {
    const resource = this.resource(logicalId);
    if (resource.Type !== 'AWS::ApiGateway::Authorizer') throw new Error(`${logicalId} is a ${resource.Type}, not an authorizer`);
    const p = resource.Properties ?? {};
    return {
      logicalId,
      type: String(p.Type),
      identitySource: String(p.IdentitySource ?? ''),
      validationExpression: p.IdentityValidationExpression === undefined ? undefined : String(p.IdentityValidationExpression),
      resultTtlSeconds: Number(p.AuthorizerResultTtlInSeconds ?? 300),
      functionLogicalId: this.functionOfUri(p.AuthorizerUri, `${logicalId} AuthorizerUri`),
    };
  }

  /**
   * Whether the function's execution role allows `action` on `resource` for a request with this encryption context:
   * its inline policies and the AWS::IAM::Policy resources attached to it, an explicit Deny winning. Conditions:
   * StringEquals/StringLike on `kms:EncryptionContext:<key>` and `kms:CallerAccount`; any other key is absent from a
   * direct call (e.g. `kms:ViaService`), so its condition fails, as IAM evaluates it.
   */
  roleAllows(
    functionLogicalId: string,
    action: string,
    resource: string,
    encryptionContext: Record<string, string> = {},
  ): boolean {
    const roleArn = this.resolveString(this.resource(functionLogicalId).Properties?.Role, `${functionLogicalId} Role`);
    const role = this.ofType('AWS::IAM::Role').find(([id]) => this.getAtt(id, 'Arn') === roleArn);
    if (!role) throw new Error(`${functionLogicalId}'s role ${roleArn} is not in the template`);
    const [roleId, roleResource] = role;
    const roleName = this.ref(roleId);
    const documents: Json[] = (roleResource.Properties?.Policies ?? []).map((policy: Json) => policy.PolicyDocument);
    for (const [, policy] of [...this.ofType('AWS::IAM::Policy'), ...this.ofType('AWS::IAM::ManagedPolicy')])
      if ((this.resolve(policy.Properties?.Roles ?? []) as string[]).includes(roleName))
        documents.push(policy.Properties?.PolicyDocument);
    const statements = documents.flatMap((document) => [(this.resolve(document) as Json).Statement].flat() as Json[]);
    const keyValue = (key: string): string | undefined => {
      const contextKey = /^kms:EncryptionContext:(.+)$/i.exec(key)?.[1];
      if (contextKey !== undefined) return encryptionContext[contextKey];
      return key.toLowerCase() === 'kms:calleraccount' ? this.accountId : undefined;
    };
    const conditionsHold = (conditions: Json = {}) =>
      Object.entries<Json>(conditions).every(([operator, tests]) =>
        Object.entries(tests).every(([key, expected]) => {
          const actual = keyValue(key);
          if (actual === undefined) return false;
          const values = [expected].flat().map(String);
          if (operator === 'StringEquals') return values.includes(actual);
          if (operator === 'StringLike') return values.some((value) => glob(value).test(actual));
          throw new Error(`condition operator ${operator} is not modelled`);
        }),
      );
    const applies = (statement: Json) =>
      [statement.Action].flat().some((pattern: string) => glob(pattern, 'i').test(action)) &&
      [statement.Resource].flat().some((pattern: string) => glob(pattern).test(resource)) &&
      conditionsHold(statement.Condition);
    if (statements.some((statement) => statement.Effect === 'Deny' && applies(statement))) return false;
    return statements.some((statement) => statement.Effect === 'Allow' && applies(statement));
  }

  /** The template's gateway response of a type (status and body), or API Gateway's default status with no body. */
  gatewayResponse(type: string, defaultStatus: number, message: string): GatewayResult {
    const found = this.ofType('AWS::ApiGateway::GatewayResponse').find(([, r]) => r.Properties?.ResponseType === type)?.[1];
    if (!found) return { statusCode: defaultStatus, headers: {}, body: JSON.stringify({ message }) };
    const p = this.resolve(found.Properties ?? {}) as Json;
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries<string>(p.ResponseParameters ?? {}))
      headers[name.replace(/^gatewayresponse\.header\./, '')] = value.replace(/^'(.*)'$/s, '$1');
    const template: string =
      p.ResponseTemplates?.['application/json'] ?? JSON.stringify({ message: '$context.error.messageString' });
    return {
      statusCode: Number(p.StatusCode ?? defaultStatus),
      headers,
      body: template.replaceAll('$context.error.messageString', JSON.stringify(message)),
    };
  }
}

/** What API Gateway answers. */
export interface GatewayResult {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

/** A function invocation's outcome, as the runner reports it. */
export type InvokeOutcome = { result: unknown } | { error: { errorType: string; errorMessage: string } };

/** A request to the REST API. */
export interface GatewayRequest {
  method: string;
  /** The path below the stage, e.g. `/v1/whoami`. */
  path: string;
  headers?: Record<string, string>;
  query?: Record<string, string>;
  body?: unknown;
  sourceIp?: string;
}

/** What happened on the way, for assertions and failure messages. */
export interface GatewayTrace {
  method: DeployedMethod;
  authorizer?: { event: Json; outcome: InvokeOutcome };
  integration?: { event: Json; outcome: InvokeOutcome };
}

/**
 * The REST API as API Gateway serves it, from the template: match the resource, find the method, run its Lambda
 * authorizer first (TOKEN: identity header, validation expression, policy on the method ARN), then the proxy
 * integration with the authorizer's context. `invoke` runs a function by logical id. The authorizer result cache
 * is not modelled: every request runs the authorizer (the template's TTL is reported in `DeployedAuthorizer`).
 */
export class RestApiGateway {
  constructor(
    private readonly stack: DeployedStack,
    private readonly invoke: (functionLogicalId: string, event: Json) => Promise<InvokeOutcome>,
  ) {}

  async request(request: GatewayRequest): Promise<GatewayResult & { trace: GatewayTrace }> {
    const stack = this.stack;
    const matched = stack.matchResource(request.path);
    if (!matched) throw new Error(`no resource of the template matches ${request.path}`);
    const method = stack.findMethod(request.method, matched.resourcePath);
    const trace: GatewayTrace = { method };
    const stage = stack.stageName();
    const requestId = randomUUID();
    const headers: Record<string, string> = {
      Host: `${stack.apiId}.execute-api.${stack.region}.amazonaws.com`,
      'User-Agent': 'keysmith-artifact-test',
      'X-Forwarded-For': request.sourceIp ?? '203.0.113.7',
      ...(request.body !== undefined ? { 'Content-Type': 'application/json' } : {}),
      ...request.headers,
    };
    const done = (result: GatewayResult) => ({ ...result, trace });
    let authorizerContext: Json | null = null;

    if (method.authorizationType === 'CUSTOM') {
      if (!method.authorizerLogicalId) throw new Error(`method ${method.logicalId} is CUSTOM without an AuthorizerId`);
      const authorizer = stack.authorizer(method.authorizerLogicalId);
      if (authorizer.type !== 'TOKEN')
        throw new Error(`authorizer ${authorizer.logicalId} is ${authorizer.type}; only TOKEN is modelled`);
      const headerName = /^method\.request\.header\.(.+)$/.exec(authorizer.identitySource)?.[1];
      if (!headerName)
        throw new Error(`authorizer ${authorizer.logicalId} identity source ${authorizer.identitySource} is not a header`);
      const token = Object.entries(headers).find(([name]) => name.toLowerCase() === headerName.toLowerCase())?.[1];
      // API Gateway refuses a missing or non-matching identity without invoking the function.
      if (!token || (authorizer.validationExpression && !new RegExp(authorizer.validationExpression).test(token)))
        return done(stack.gatewayResponse('UNAUTHORIZED', 401, 'Unauthorized'));
      const methodArn = `arn:aws:execute-api:${stack.region}:${stack.accountId}:${stack.apiId}/${stage}/${request.method}${request.path}`;
      const event = { type: 'TOKEN', authorizationToken: token, methodArn };
      const outcome = await this.invoke(authorizer.functionLogicalId, event);
      trace.authorizer = { event, outcome };
      if ('error' in outcome)
        return done(
          outcome.error.errorMessage === 'Unauthorized'
            ? stack.gatewayResponse('UNAUTHORIZED', 401, 'Unauthorized')
            : stack.gatewayResponse('AUTHORIZER_FAILURE', 500, 'Internal server error'),
        );
      const policy = outcome.result as Json;
      if (typeof policy?.principalId !== 'string' || !policy.policyDocument)
        return done(stack.gatewayResponse('AUTHORIZER_CONFIGURATION_ERROR', 500, 'Internal server error'));
      if (!allows(policy.policyDocument, methodArn))
        return done(stack.gatewayResponse('ACCESS_DENIED', 403, 'User is not authorized to access this resource'));
      authorizerContext = { ...(policy.context ?? {}), principalId: policy.principalId, integrationLatency: 1 };
    }

    const body =
      request.body === undefined ? null : typeof request.body === 'string' ? request.body : JSON.stringify(request.body);
    const now = new Date();
    const event = {
      resource: method.resourcePath,
      path: request.path,
      httpMethod: request.method,
      headers,
      multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, [value]])),
      queryStringParameters: request.query && Object.keys(request.query).length > 0 ? request.query : null,
      multiValueQueryStringParameters:
        request.query && Object.keys(request.query).length > 0
          ? Object.fromEntries(Object.entries(request.query).map(([name, value]) => [name, [value]]))
          : null,
      pathParameters: Object.keys(matched.pathParameters).length > 0 ? matched.pathParameters : null,
      stageVariables: null,
      body,
      isBase64Encoded: false,
      requestContext: {
        accountId: stack.accountId,
        apiId: stack.apiId,
        resourceId: method.logicalId,
        resourcePath: method.resourcePath,
        httpMethod: request.method,
        path: `/${stage}${request.path}`,
        stage,
        requestId,
        extendedRequestId: requestId,
        requestTime: now.toUTCString(),
        requestTimeEpoch: now.getTime(),
        protocol: 'HTTP/1.1',
        domainName: headers.Host,
        identity: { sourceIp: request.sourceIp ?? '203.0.113.7', userAgent: headers['User-Agent'] },
        authorizer: authorizerContext,
      },
    };
    const outcome = await this.invoke(method.integrationFunction, event);
    trace.integration = { event, outcome };
    // A function error behind a proxy integration: API Gateway's 502 "Internal server error" (no type of its own).
    if ('error' in outcome) return done(stack.gatewayResponse('DEFAULT_5XX', 502, 'Internal server error'));
    const response = outcome.result as Json;
    // A proxy response API Gateway cannot read is a 502, whatever the function meant.
    if (!response || !Number.isInteger(response.statusCode) || (response.body !== undefined && typeof response.body !== 'string'))
      return done(stack.gatewayResponse('DEFAULT_5XX', 502, 'Internal server error'));
    return done({ statusCode: response.statusCode, headers: response.headers ?? {}, body: response.body ?? '' });
  }
}

/** An IAM wildcard pattern (`*`, `?`) as a regular expression. */
const glob = (pattern: string, flags = '') =>
  new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    flags,
  );

/** Whether an IAM policy document allows `execute-api:Invoke` on the method ARN (an explicit Deny wins). */
function allows(document: Json, methodArn: string): boolean {
  const applies = (statement: Json) =>
    [statement.Action].flat().some((action: string) => glob(action).test('execute-api:Invoke')) &&
    [statement.Resource].flat().some((resource: string) => glob(resource).test(methodArn));
  const statements: Json[] = [document.Statement].flat();
  if (statements.some((statement) => statement.Effect === 'Deny' && applies(statement))) return false;
  return statements.some((statement) => statement.Effect === 'Allow' && applies(statement));
}
