"""PyJWT validating trustbridge tokens purely from the tenant discovery document.

argv[1] is the tenant issuer URL, argv[2] the expected audience, the remaining arguments are
tokens. The script reads {issuer}/.well-known/openid-configuration, checks its issuer, then
verifies each token with PyJWKClient(jwks_uri) (one client, so its key cache is exercised):
signature, algorithm from id_token_signing_alg_values_supported, iss, aud, exp, nbf, iat.
Prints one JSON object: {"claims": [...]} or {"error": "..."}.
"""

import json
import sys

import jwt
import requests


def main():
    issuer, audience, tokens = sys.argv[1], sys.argv[2], sys.argv[3:]
    discovery = requests.get(issuer + "/.well-known/openid-configuration", timeout=10).json()
    if discovery["issuer"] != issuer:
        print(json.dumps({"error": "discovery issuer %r != %r" % (discovery["issuer"], issuer)}))
        return 1
    jwks = jwt.PyJWKClient(discovery["jwks_uri"], cache_keys=True)
    algorithms = discovery["id_token_signing_alg_values_supported"]
    claims = []
    for token in tokens:
        try:
            key = jwks.get_signing_key_from_jwt(token)
            claims.append(
                jwt.decode(
                    token,
                    key,
                    algorithms=algorithms,
                    audience=audience,
                    issuer=discovery["issuer"],
                    options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                )
            )
        except jwt.PyJWTError as e:
            print(json.dumps({"error": "%s: %s" % (type(e).__name__, e)}))
            return 1
    print(json.dumps({"claims": claims}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
