"""azure-identity against trustbridge, exactly as an Entra workload would use it.

Run by tests/integration/sdk.rs with the gateway's throwaway CA in REQUESTS_CA_BUNDLE and
SSL_CERT_FILE. Prints one JSON object on stdout's last line; the Rust test asserts on it.

Modes (argv[1]):
  assertion  ClientAssertionCredential(tenant, client_id, func, authority=AUTHORITY); the
             callable returns the subject token read from SUBJECT_TOKEN_FILE.
  workload   WorkloadIdentityCredential() configured only by AZURE_FEDERATED_TOKEN_FILE,
             AZURE_AUTHORITY_HOST, AZURE_TENANT_ID and AZURE_CLIENT_ID, as on AKS.
  denied     as `assertion`, expecting ClientAuthenticationError.
  msal       msal.ConfidentialClientApplication(client_id, authority=AUTHORITY/TENANT,
             client_credential={"client_assertion": callable}, instance_discovery=False):
             msal reads the tenant discovery document first, then calls its token_endpoint.
argv[2] is the scope, e.g. api://payments/.default.
"""

import json
import os
import sys
import time

import msal
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientAssertionCredential, WorkloadIdentityCredential


def assertion_credential():
    return ClientAssertionCredential(
        tenant_id=os.environ["TENANT"],
        client_id=os.environ["CLIENT_ID"],
        func=subject_token,
        authority=os.environ["AUTHORITY"],
    )


def subject_token():
    with open(os.environ["SUBJECT_TOKEN_FILE"], encoding="utf-8") as f:
        return f.read().strip()


def with_msal(scope):
    # instance_discovery=False: otherwise msal asks login.microsoftonline.com whether the
    # authority is a known Entra instance before anything else.
    app = msal.ConfidentialClientApplication(
        os.environ["CLIENT_ID"],
        authority=os.environ["AUTHORITY"] + "/" + os.environ["TENANT"],
        client_credential={"client_assertion": subject_token},
        instance_discovery=False,
    )
    result = app.acquire_token_for_client(scopes=[scope])
    if "access_token" not in result:
        print(json.dumps({"outcome": "error", "result": result}))
        return 1
    print(
        json.dumps(
            {
                "outcome": "token",
                "access_token": result["access_token"],
                "expires_in": result["expires_in"],
            }
        )
    )
    return 0


def main():
    mode, scope = sys.argv[1], sys.argv[2]
    if mode == "msal":
        return with_msal(scope)
    credential = WorkloadIdentityCredential() if mode == "workload" else assertion_credential()
    try:
        token = credential.get_token(scope)
    except ClientAuthenticationError as e:
        print(json.dumps({"outcome": "ClientAuthenticationError", "message": e.message}))
        return 0 if mode == "denied" else 1
    print(
        json.dumps(
            {
                "outcome": "token",
                "access_token": token.token,
                "expires_in": token.expires_on - int(time.time()),
            }
        )
    )
    return 1 if mode == "denied" else 0


if __name__ == "__main__":
    sys.exit(main())
