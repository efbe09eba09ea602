"""Verifies a Portcullis access token the way an outside Python service would: PyJWT's
PyJWKClient on the jwks_uri from the issuer's RFC 8414 metadata. Prints the subject.

usage: verify.py ISSUER AUDIENCE CA_FILE TOKEN
"""
import json
import ssl
import sys
import urllib.request

import jwt

issuer, audience, ca_file, token = sys.argv[1:5]
context = ssl.create_default_context(cafile=ca_file)
with urllib.request.urlopen(issuer + "/.well-known/oauth-authorization-server", context=context) as r:
    metadata = json.load(r)
assert metadata["issuer"] == issuer, metadata
client = jwt.PyJWKClient(metadata["jwks_uri"], ssl_context=context, cache_keys=False)
key = client.get_signing_key_from_jwt(token)
claims = jwt.decode(
    token,
    key.key,
    algorithms=["ES256", "EdDSA"],
    audience=audience,
    issuer=issuer,
    options={"require": ["exp", "iat", "nbf", "sub", "jti"]},
)
assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
print(claims["sub"])
