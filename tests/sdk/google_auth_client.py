"""google-auth external_account (identity_pool) credentials against trustbridge.

argv[1] is a credential configuration JSON file (type external_account, token_url = the tenant
token endpoint, credential_source.file = the subject token file), as `gcloud iam
workload-identity-pools create-cred-config` would write it; argv[2], when given, a
space-separated scope list passed the way Google client libraries pass theirs. The credentials
are loaded with google.auth.load_credentials_from_file, exactly as google.auth.default() does
for GOOGLE_APPLICATION_CREDENTIALS, and refreshed. Prints one JSON object.
"""

import datetime
import json
import sys

import google.auth
import google.auth.transport.requests


def main():
    scopes = sys.argv[2].split() if len(sys.argv) > 2 else None
    credentials, _ = google.auth.load_credentials_from_file(sys.argv[1], scopes=scopes)
    credentials.refresh(google.auth.transport.requests.Request())
    # google-auth keeps expiry as naive UTC.
    expiry = credentials.expiry.replace(tzinfo=datetime.timezone.utc)
    now = datetime.datetime.now(datetime.timezone.utc)
    print(
        json.dumps(
            {
                "type": type(credentials).__module__ + "." + type(credentials).__name__,
                "access_token": credentials.token,
                "valid": credentials.valid,
                "expires_in": int((expiry - now).total_seconds()),
            }
        )
    )


if __name__ == "__main__":
    main()
