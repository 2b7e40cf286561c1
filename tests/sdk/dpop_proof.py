"""Builds DPoP proofs (RFC 9449) with PyJWT and cryptography, independently of trustbridge.

Usage: dpop_proof.py '<spec JSON>' where the spec is
  {"htu": URL, "iat": SECONDS, "cases": {NAME: {"htm"?, "htu"?, "iat"?, "alg"?, "signer"?}}}
Every case is signed by one fresh P-256 key whose public JWK is in the header, except
`"signer": "other"` (signed by a second key, header still naming the first) and
`"alg": "none"` (unsigned). Prints one JSON line: {"jkt": RFC 7638 thumbprint, "proofs": {NAME:
proof}}.
"""

import base64
import hashlib
import json
import sys
import uuid

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(jwk: dict) -> str:
    """RFC 7638 §3: required members, lexicographic order, no whitespace, SHA-256."""
    members = {k: jwk[k] for k in ("crv", "kty", "x", "y")}
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":"))
    return b64(hashlib.sha256(canonical.encode()).digest())


def main() -> None:
    spec = json.loads(sys.argv[1])
    key = ec.generate_private_key(ec.SECP256R1())
    other = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
    proofs = {}
    for name, case in spec["cases"].items():
        claims = {
            "htm": case.get("htm", "POST"),
            "htu": case.get("htu", spec["htu"]),
            "iat": case.get("iat", spec["iat"]),
            "jti": str(uuid.uuid4()),
        }
        alg = case.get("alg", "ES256")
        headers = {"typ": "dpop+jwt", "jwk": jwk}
        if alg == "none":
            header = dict(headers, alg="none")
            proofs[name] = ".".join(
                [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), ""]
            )
            continue
        signer = other if case.get("signer") == "other" else key
        proofs[name] = jwt.encode(claims, signer, algorithm=alg, headers=headers)
    print(json.dumps({"jkt": thumbprint(jwk), "proofs": proofs}))


if __name__ == "__main__":
    main()
