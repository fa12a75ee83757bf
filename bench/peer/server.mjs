// The peer of bench/run: node-oidc-provider issuing ES256-signed JWT access tokens to one
// client_credentials client (client_secret_basic) for one resource, the same job as
// `svctoken serve`'s token endpoint.
//
// Environment: PEER_PORT (required), PEER_CLIENT_SECRET (required), PEER_CLIENT_ID (default
// "bench"), PEER_RESOURCE (default "urn:svctoken:bench:convex"), PEER_AUDIENCE (default
// "convex"). Listens on 127.0.0.1 only; prints "peer: listening on <url>" when ready.
// Run with NODE_ENV=production, as oidc-provider's documentation recommends for performance.

import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.PEER_PORT);
const secret = process.env.PEER_CLIENT_SECRET;
if (!Number.isInteger(port) || port <= 0 || !secret) {
  console.error('peer: PEER_PORT and PEER_CLIENT_SECRET are required');
  process.exit(2);
}
const clientId = process.env.PEER_CLIENT_ID ?? 'bench';
const resource = process.env.PEER_RESOURCE ?? 'urn:svctoken:bench:convex';
const audience = process.env.PEER_AUDIENCE ?? 'convex';
const issuer = `http://127.0.0.1:${port}`;

// A fresh P-256 key per run, like svctoken's first start.
const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const signingJwk = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-es256', use: 'sig', alg: 'ES256' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: secret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'ES256',
    },
  ],
  jwks: { keys: [signingJwk] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      getResourceServerInfo: (_ctx, indicator) => {
        if (indicator !== resource) {
          throw new Provider.errors.InvalidTarget();
        }
        return {
          scope: '',
          audience,
          accessTokenTTL: 300,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'ES256' } },
        };
      },
    },
  },
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`peer: listening on ${issuer} (NODE_ENV=${process.env.NODE_ENV ?? 'unset'})`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
