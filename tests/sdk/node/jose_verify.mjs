// npm `jose` validating trustbridge tokens purely from the tenant discovery document.
//
// argv: <issuer> <audience> <token>...; reads {issuer}/.well-known/openid-configuration, then
// verifies each token with one createRemoteJWKSet(jwks_uri) + jwtVerify (issuer, audience,
// algorithms from the discovery document, signature, exp/nbf). Prints one JSON object:
// {"claims": [...]} or {"error": "..."}. Node trusts the test CA through NODE_EXTRA_CA_CERTS.
import { createRemoteJWKSet, jwtVerify } from 'jose'

const [issuer, audience, ...tokens] = process.argv.slice(2)
try {
  const response = await fetch(`${issuer}/.well-known/openid-configuration`)
  const discovery = await response.json()
  if (discovery.issuer !== issuer) {
    throw new Error(`discovery issuer ${discovery.issuer} != ${issuer}`)
  }
  const jwks = createRemoteJWKSet(new URL(discovery.jwks_uri))
  const claims = []
  for (const token of tokens) {
    const { payload, protectedHeader } = await jwtVerify(token, jwks, {
      issuer: discovery.issuer,
      audience,
      algorithms: discovery.id_token_signing_alg_values_supported,
      typ: 'at+jwt',
      requiredClaims: ['exp', 'iat', 'sub'],
    })
    claims.push({ ...payload, _kid: protectedHeader.kid })
  }
  console.log(JSON.stringify({ claims }))
} catch (e) {
  console.log(JSON.stringify({ error: `${e.code ?? e.name}: ${e.message}` }))
  process.exitCode = 1
}
