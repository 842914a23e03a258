/**
 * The peer for the bundle-size and load-time comparison: the smallest useful REST TOKEN authorizer built on
 * aws-jwt-verify (one issuer, JWKS fetched over https and cached). Not used by Keysmith.
 */

import { JwtVerifier } from 'aws-jwt-verify';
import type { APIGatewayAuthorizerResult, APIGatewayTokenAuthorizerEvent } from 'aws-lambda';

const verifier = JwtVerifier.create({
  issuer: process.env.ISSUER ?? 'https://issuer.example',
  audience: process.env.AUDIENCE ?? 'https://api.example',
  jwksUri: process.env.JWKS_URI ?? 'https://issuer.example/.well-known/jwks.json',
});

export async function handler(event: APIGatewayTokenAuthorizerEvent): Promise<APIGatewayAuthorizerResult> {
  const token = event.authorizationToken.replace(/^Bearer +/i, '');
  let sub: string;
  try {
    sub = String((await verifier.verify(token)).sub);
  } catch {
    throw new Error('Unauthorized');
  }
  const [apiArn, stage] = event.methodArn.split('/');
  return {
    principalId: sub,
    policyDocument: {
      Version: '2012-10-17',
      Statement: [{ Action: 'execute-api:Invoke', Effect: 'Allow', Resource: `${apiArn}/${stage}/*` }],
    },
  };
}
