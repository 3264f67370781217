// A real OpenID provider for tests/test_oauth.py: node-oidc-provider (OpenID Certified), run on Node 22.
//
// Why: the gateway's OAuth resource server must be proven against an authorization server someone else
// wrote. This script only configures one: client_credentials, JWT access tokens (RFC 9068) bound to the
// resource indicator the client asks for (RFC 8707), signed with the keys the test hands it.
//
// Environment:
//   OIDC_PROVIDER  the installed oidc-provider package's folder (ES modules ignore NODE_PATH)
//   PORT        port to listen on (127.0.0.1); the issuer is http://127.0.0.1:PORT
//   JWKS_FILE   a JSON file {"keys": [private JWKs]}: the signing keys (the first of each alg signs);
//               the test rotates keys by restarting this script with another file
//   CLIENTS     JSON [{client_id, client_secret, scope, alg?}]: client_credentials clients; `alg` is the
//               access tokens' signing algorithm for that client (default RS256)
//   SCOPES      space-separated scopes every resource server grants (default "mcp:tools mcp:read")
//   TOKEN_TTL   access token lifetime in seconds (default 300)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const { default: Provider } = await import(pathToFileURL(join(process.env.OIDC_PROVIDER, 'lib', 'index.js')).href);

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const jwks = JSON.parse(readFileSync(process.env.JWKS_FILE, 'utf8'));
const clients = JSON.parse(process.env.CLIENTS || '[]');
const scopes = process.env.SCOPES || 'mcp:tools mcp:read';
const ttl = Number(process.env.TOKEN_TTL || 300);
const algByClient = new Map(clients.map((c) => [c.client_id, c.alg || 'RS256']));

const provider = new Provider(issuer, {
  jwks,
  clients: clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    scope: c.scope,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  scopes: ['openid', ...scopes.split(' ')],
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Any resource the client names is a resource server here, its URL the audience: the gateway must
      // itself refuse a token issued for another resource.
      getResourceServerInfo: (ctx, resourceIndicator, client) => ({
        scope: scopes,
        audience: resourceIndicator,
        accessTokenTTL: ttl,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: algByClient.get(client.clientId) || 'RS256' } },
      }),
    },
  },
});

provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`oidc-provider listening at ${issuer}\n`);
});
