// Two OpenID Connect servers for the log-in tests, from the certified `oidc-provider` package:
// one like HelseID (pushed authorization requests, private_key_jwt and DPoP with a server nonce
// required; an HPR number claim) and one like ID-porten (acr levels and the `pid` claim).
//
// node tests/oidc_provider.mjs '<config JSON>' (tests/oidc_servers.py writes it). Prints
// "ready" once both listen. The log-in page takes any account name the config lists, with the
// level of assurance the person "chose". POST /__test/tamper {"aud"|"nonce": ...} makes the
// next ID token carry that value, re-signed with the server's own key: a forged token that
// comes through the real flow.
import { createRequire } from "node:module";
import { randomBytes } from "node:crypto";

const require = createRequire(process.env.OIDC_PROVIDER_DIR + "/node_modules/");
const { default: Provider } = await import(require.resolve("oidc-provider"));
const jose = await import(require.resolve("jose"));

const config = JSON.parse(process.argv[2]);

const escape = (text) =>
  String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title, body) {
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>${title}</title></head>
<body><main><h1>${title}</h1>${body}</main></body></html>`;
}

async function formBody(ctx) {
  const chunks = [];
  for await (const chunk of ctx.req) chunks.push(chunk);
  return Object.fromEntries(new URLSearchParams(Buffer.concat(chunks).toString()));
}

async function start(name, spec) {
  const { privateKey } = await jose.generateKeyPair("RS256", { extractable: true });
  const signing = { ...(await jose.exportJWK(privateKey)), kid: `${name}-1`, alg: "RS256", use: "sig" };
  const issuer = `http://127.0.0.1:${spec.port}`;
  let tamper = null;
  const provider = new Provider(issuer, {
    clients: spec.clients,
    jwks: { keys: [signing] },
    findAccount: (ctx, id) =>
      spec.accounts[id] && {
        accountId: id,
        claims: () => ({ sub: id, ...spec.accounts[id] }),
      },
    claims: spec.claims,
    scopes: Object.keys(spec.claims),
    acrValues: spec.acr_values,
    conformIdTokenClaims: false,
    // Heimvakt's key set is on the loopback address, which the server refuses to fetch from
    // (its SSRF protection) unless told that here, as a test may.
    fetch: (url, options) => {
      delete options.dispatcher;
      return fetch(url, options);
    },
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: spec.require_par },
      dPoP: { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => spec.dpop_nonce },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: (ctx, form) => {
          ctx.body = page("Log out", `${form}<button type="submit" form="op.logoutForm" name="logout" value="yes">Yes, log me out</button>`);
        },
        postLogoutSuccessSource: (ctx) => {
          ctx.body = page("Logged out", "<p>You are logged out.</p>");
        },
      },
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    // Heimvakt's clients are first-party: no consent screen, the grant covers what was asked.
    loadExistingGrant: async (ctx) => {
      const grantId =
        ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope(Object.keys(spec.claims).join(" "));
      await grant.save();
      return grant;
    },
    renderError: (ctx, out) => {
      ctx.type = "html";
      ctx.body = page("Error", `<p>${escape(out.error)}: ${escape(out.error_description)}</p>`);
    },
  });
  provider.proxy = false;
  for (const event of ["pushed_authorization_request.error", "grant.error", "server_error", "authorization.error", "end_session.error"]) {
    provider.on(event, (ctx, error) =>
      console.error(`${name} ${event}: ${error.message} ${error.error_detail ?? ""} ${error.cause ?? ""}`),
    );
  }

  provider.use(async (ctx, next) => {
    const interaction = ctx.path.match(/^\/interaction\/([^/]+)(\/login)?$/);
    if (interaction && ctx.method === "GET") {
      const details = await provider.interactionDetails(ctx.req, ctx.res);
      const levels = (spec.acr_values || [])
        .map((acr) => `<option value="${acr}">${acr}</option>`)
        .join("");
      ctx.type = "html";
      ctx.body = page(
        `Log in to ${name}`,
        `<form method="post" action="/interaction/${details.uid}/login">
<label for="account">Account</label><input id="account" name="account" autofocus>
${levels ? `<label for="acr">Level</label><select id="acr" name="acr">${levels}</select>` : ""}
<button type="submit">Log in</button></form>`,
      );
      return;
    }
    if (interaction && interaction[2] && ctx.method === "POST") {
      const body = await formBody(ctx);
      const login = { accountId: body.account };
      if (body.acr) login.acr = body.acr;
      await provider.interactionFinished(ctx.req, ctx.res, { login }, { mergeWithLastSubmission: false });
      ctx.respond = false;
      return;
    }
    if (ctx.path === "/__test/tamper" && ctx.method === "POST") {
      const chunks = [];
      for await (const chunk of ctx.req) chunks.push(chunk);
      tamper = JSON.parse(Buffer.concat(chunks).toString());
      ctx.status = 204;
      return;
    }
    await next();
    if (ctx.path === "/token" && tamper && ctx.body && ctx.body.id_token) {
      const claims = { ...jose.decodeJwt(ctx.body.id_token), ...tamper };
      tamper = null;
      ctx.body = {
        ...ctx.body,
        id_token: await new jose.SignJWT(claims)
          .setProtectedHeader({ alg: "RS256", kid: signing.kid })
          .sign(privateKey),
      };
    }
  });
  await new Promise((resolve) => provider.listen(spec.port, "127.0.0.1", resolve));
}

for (const [name, spec] of Object.entries(config)) await start(name, spec);
console.log("ready");
