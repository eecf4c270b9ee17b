// A real OpenID Provider for test/oidc_test.ts: the npm `oidc-provider`
// (a certified implementation) over https with the test's certificate,
// on the port given. Runs under Node as a child process. Its users and
// their groups are read from a JSON file at every sign-in, so a test can
// change someone's groups between sign-ins. Configuration in OIDC_TEST
// (JSON): { port, cert, key, jwk, users, clientId, secret? }: with `secret`,
// also a confidential client `<clientId>-confidential` that authenticates
// at the token endpoint with client_secret_basic.
import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import Provider from "oidc-provider";

const cfg = JSON.parse(process.env.OIDC_TEST);
const issuer = `https://127.0.0.1:${cfg.port}`;
const client = {
  client_id: cfg.clientId,
  application_type: "native",
  token_endpoint_auth_method: "none",
  grant_types: [
    "authorization_code",
    "refresh_token",
    "urn:ietf:params:oauth:grant-type:device_code",
  ],
  response_types: ["code"],
  redirect_uris: ["http://127.0.0.1/callback"],
};
const confidential = {
  ...client,
  client_id: `${cfg.clientId}-confidential`,
  client_secret: cfg.secret,
  token_endpoint_auth_method: "client_secret_basic",
};
const provider = new Provider(issuer, {
  clients: cfg.secret ? [client, confidential] : [client],
  jwks: { keys: [cfg.jwk] },
  features: { devInteractions: { enabled: true }, deviceFlow: { enabled: true } },
  scopes: ["openid", "offline_access", "email", "groups"],
  claims: { email: ["email", "email_verified"], groups: ["groups"] },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  ttl: {
    IdToken: 300,
    AccessToken: 300,
    RefreshToken: 3600,
    DeviceCode: 300,
    Interaction: 300,
    Session: 3600,
    Grant: 3600,
  },
  findAccount(_ctx, id) {
    const users = JSON.parse(readFileSync(cfg.users, "utf8"));
    if (!(id in users)) return Promise.resolve(undefined);
    return Promise.resolve({
      accountId: id,
      claims: () => ({
        sub: id,
        email: `${id}@example.com`,
        email_verified: true,
        groups: users[id],
      }),
    });
  },
  async loadExistingGrant(ctx) {
    // Consent is given once for everything the client asks (a test user clicks through).
    const grant = new provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope("openid offline_access email groups");
    await grant.save();
    return grant;
  },
});
provider.on("server_error", (_ctx, err) => console.error("server_error", err));
const server = createServer({ cert: cfg.cert, key: cfg.key }, provider.callback());
server.listen(cfg.port, "127.0.0.1", () => console.log(`listening ${issuer}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
