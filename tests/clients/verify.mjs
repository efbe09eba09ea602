// Verifies a Portcullis access token the way an outside Node service would: jose's
// createRemoteJWKSet on the jwks_uri from the issuer's RFC 8414 metadata, then jwtVerify.
// The CA comes from NODE_EXTRA_CA_CERTS. Prints the subject.
//
// usage: node verify.mjs ISSUER AUDIENCE TOKEN
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [issuer, audience, token] = process.argv.slice(2);
const metadata = await (await fetch(`${issuer}/.well-known/oauth-authorization-server`)).json();
if (metadata.issuer !== issuer) throw new Error(`issuer ${metadata.issuer}`);
const jwks = createRemoteJWKSet(new URL(metadata.jwks_uri));
const { payload, protectedHeader } = await jwtVerify(token, jwks, {
  issuer,
  audience,
  typ: 'at+jwt',
  algorithms: ['ES256', 'EdDSA'],
  requiredClaims: ['exp', 'iat', 'nbf', 'sub', 'jti'],
});
console.log(payload.sub, protectedHeader.kid);
