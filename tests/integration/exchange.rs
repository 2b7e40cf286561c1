//! Both grants end to end: a token from the test issuer in, a verifiable trustbridge token out.

use serde_json::json;

use crate::support::{TestGateway, TestIssuer, clock, decode_parts};

async fn setup() -> (TestIssuer, TestGateway) {
    let clock = clock();
    let issuer = TestIssuer::start(clock.clone()).await;
    let gateway = TestGateway::start("basic", &[("ISSUER", &issuer.url)], clock).await;
    (issuer, gateway)
}

fn ci_claims(issuer: &TestIssuer, sub: &str) -> serde_json::Value {
    let mut claims = issuer.claims(sub, "api://trustbridge");
    claims["repository"] = json!("contoso/infra");
    claims["repository_owner_id"] = json!("1234567");
    claims
}

#[actix_web::test]
async fn client_credentials_grant_issues_a_verifiable_rfc9068_token() {
    let (issuer, gw) = setup().await;
    let assertion = issuer.mint(&ci_claims(
        &issuer,
        "repo:contoso/infra:ref:refs/heads/main",
    ));
    let (status, body) = gw
        .client_credentials(
            "6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f",
            &assertion,
            "api://payments/.default",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        body["expires_in"], 900,
        "credential maxTokenLifetime 15m wins"
    );
    assert_eq!(body["ext_expires_in"], 900);
    let token = body["access_token"].as_str().expect("access_token");

    let (header, _) = decode_parts(token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert!(header["kid"].is_string());

    let claims = gw.verify("contoso", token).await;
    assert_eq!(claims["iss"], format!("{}/contoso/v2.0", gw.url));
    assert_eq!(claims["aud"], "api://payments");
    assert_eq!(claims["client_id"], "6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f");
    assert_eq!(claims["azp"], claims["client_id"]);
    assert_eq!(claims["sub"], claims["oid"]);
    assert_eq!(claims["roles"], json!(["Payments.Read", "Payments.Write"]));
    assert_eq!(claims["idtyp"], "app");
    assert_eq!(claims["src_iss"], issuer.url);
    assert_eq!(claims["src_sub"], "repo:contoso/infra:ref:refs/heads/main");
    assert_eq!(claims["src_cred"], "infra-main");
    assert_eq!(claims["repository"], "contoso/infra");
    assert_eq!(claims["iat"], crate::support::T0);
    assert_eq!(claims["exp"], crate::support::T0 + 900);
    assert!(uuid::Uuid::parse_str(claims["jti"].as_str().expect("jti")).is_ok());
    assert!(uuid::Uuid::parse_str(claims["tid"].as_str().expect("tid")).is_ok());
}

#[actix_web::test]
async fn token_exchange_grant_finds_the_identity_from_the_token() {
    let (issuer, gw) = setup().await;
    let subject = issuer.mint(&ci_claims(
        &issuer,
        "repo:contoso/infra:ref:refs/heads/release/v2",
    ));
    let (status, body) = gw.token_exchange(&subject, "api://payments").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600, "server default lifetime");
    let claims = gw
        .verify("contoso", body["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(claims["src_cred"], "infra-release");
    assert_eq!(claims["client_id"], "6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f");
}

#[actix_web::test]
async fn scopes_down_scope_roles() {
    let (issuer, gw) = setup().await;
    let assertion = issuer.mint(&ci_claims(
        &issuer,
        "repo:contoso/infra:ref:refs/heads/main",
    ));
    let (status, body) = gw
        .client_credentials("deploy-bot", &assertion, "api://payments/Payments.Read")
        .await;
    assert_eq!(status, 200, "{body}");
    let claims = gw
        .verify("contoso", body["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(claims["roles"], json!(["Payments.Read"]));
}

fn k8s_claims(issuer: &TestIssuer, namespace: &str, sa: &str) -> serde_json::Value {
    let mut claims = issuer.claims(
        &format!("system:serviceaccount:{namespace}:{sa}"),
        "api://cluster",
    );
    claims["kubernetes.io"] = json!({
        "namespace": namespace,
        "serviceaccount": {"name": sa, "uid": uuid::Uuid::new_v4().to_string()},
    });
    claims
}

#[actix_web::test]
async fn workload_assigned_identities_are_distinct_and_stable() {
    let (issuer, gw) = setup().await;
    let mut oids = Vec::new();
    for (ns, sa) in [
        ("team-a", "builder"),
        ("team-a", "builder"),
        ("team-b", "builder"),
    ] {
        let (status, body) = gw
            .token_exchange(&issuer.mint(&k8s_claims(&issuer, ns, sa)), "api://payments")
            .await;
        assert_eq!(status, 200, "{body}");
        let claims = gw
            .verify("contoso", body["access_token"].as_str().expect("token"))
            .await;
        assert_eq!(claims["roles"], json!(["Payments.Read"]));
        oids.push((claims["oid"].clone(), claims["client_id"].clone()));
    }
    assert_eq!(oids[0], oids[1], "same service account, same identity");
    assert_ne!(
        oids[0].0, oids[2].0,
        "another service account, another identity"
    );
    assert_ne!(oids[0].0, oids[0].1, "object id and client id differ");

    // The condition still gates the template.
    let (status, body) = gw
        .token_exchange(
            &issuer.mint(&k8s_claims(&issuer, "kube-system", "x")),
            "api://payments",
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error_codes"], json!([70021]));
}

#[actix_web::test]
async fn user_assigned_managed_identity_by_name() {
    let (issuer, gw) = setup().await;
    let assertion =
        issuer.mint(&issuer.claims("repo:contoso/nightly:ref:refs/heads/main", "api://nightly"));
    let (status, body) = gw
        .client_credentials("nightly-job", &assertion, "api://ledger/.default")
        .await;
    assert_eq!(status, 200, "{body}");
    let claims = gw
        .verify("contoso", body["access_token"].as_str().expect("token"))
        .await;
    assert_eq!(claims["roles"], json!(["Ledger.Read"]));
}

#[actix_web::test]
async fn issuer_key_rotation_is_picked_up_on_unknown_kid() {
    let (issuer, gw) = setup().await;
    let first = issuer.mint(&ci_claims(
        &issuer,
        "repo:contoso/infra:ref:refs/heads/main",
    ));
    assert_eq!(
        gw.client_credentials("deploy-bot", &first, "api://payments/.default")
            .await
            .0,
        200
    );
    issuer.rotate_keys();
    let second = issuer.mint(&ci_claims(
        &issuer,
        "repo:contoso/infra:ref:refs/heads/main",
    ));
    let (status, body) = gw
        .client_credentials("deploy-bot", &second, "api://payments/.default")
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(issuer.hits("/.well-known/openid-configuration") >= 1);
    assert_eq!(
        issuer.hits("/keys"),
        2,
        "one initial fetch and one refresh for the new kid"
    );
}

#[actix_web::test]
async fn metrics_count_outcomes() {
    let (issuer, gw) = setup().await;
    let ok = issuer.mint(&ci_claims(
        &issuer,
        "repo:contoso/infra:ref:refs/heads/main",
    ));
    assert_eq!(
        gw.client_credentials("deploy-bot", &ok, "api://payments/.default")
            .await
            .0,
        200
    );
    let wrong = issuer.mint(&ci_claims(
        &issuer,
        "repo:contoso/other:ref:refs/heads/main",
    ));
    assert_eq!(
        gw.client_credentials("deploy-bot", &wrong, "api://payments/.default")
            .await
            .0,
        401
    );
    let (status, text) = gw.get_text("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        text.contains(r#"trustbridge_exchanges_total{grant="client_credentials",issuer="test",outcome="granted"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"trustbridge_exchanges_total{grant="client_credentials",issuer="test",outcome="subject_mismatch"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("trustbridge_exchange_duration_seconds_bucket"),
        "{text}"
    );
}

/// The token endpoint answers alike whether the request takes the fast path in front of the
/// router (a plain tenant segment) or the route table (an escaped one): both grants granted,
/// and the same refusal for a tenant that does not exist.
#[actix_web::test]
async fn fast_path_and_routed_token_requests_answer_alike() {
    let (issuer, gw) = setup().await;
    let claims = ci_claims(&issuer, "repo:contoso/infra:ref:refs/heads/main");
    for tenant in ["contoso", "%63ontoso", "contos%6F"] {
        let assertion = issuer.mint(&claims);
        let (status, body) = gw
            .post_token(
                tenant,
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", "6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", &assertion),
                    ("scope", "api://payments/.default"),
                ],
            )
            .await;
        assert_eq!(status, 200, "{tenant}: {body}");
        let token = body["access_token"].as_str().expect("access_token");
        let granted = gw.verify("contoso", token).await;
        assert_eq!(granted["aud"], "api://payments", "{tenant}");
        assert_eq!(granted["src_cred"], "infra-main", "{tenant}");

        let subject = issuer.mint(&claims);
        let (status, body) = gw
            .post_token(
                tenant,
                &[
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:token-exchange",
                    ),
                    ("subject_token", &subject),
                    ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                    ("resource", "api://payments"),
                ],
            )
            .await;
        assert_eq!(status, 200, "{tenant}: {body}");
        assert_eq!(
            body["issued_token_type"],
            "urn:ietf:params:oauth:token-type:access_token"
        );
    }
    let mut refusals = Vec::new();
    for tenant in ["nobody", "%6Eobody"] {
        let (status, body) = gw
            .post_token(tenant, &[("grant_type", "client_credentials")])
            .await;
        refusals.push((status, body["error"].clone(), body["error_codes"].clone()));
    }
    assert_eq!(refusals[0], refusals[1]);
    assert_ne!(refusals[0].0, 200);
}

/// The credential's claim mapping (`repository: claims.repository`, read directly from the
/// token's claims, see `policy::cel::direct`) on both grants: a present claim is copied into the
/// issued token as is, and a missing one is the interpreter's refusal, not an empty claim.
#[actix_web::test]
async fn claim_mappings_copy_a_present_claim_and_refuse_a_missing_one_on_both_grants() {
    let (issuer, gw) = setup().await;
    let subject = "repo:contoso/infra:ref:refs/heads/main";
    let present = ci_claims(&issuer, subject);
    let mut absent = present.clone();
    absent.as_object_mut().expect("claims").remove("repository");
    let mut nested = present.clone();
    nested["repository"] = json!({"name": "infra", "ids": [1, 2.5, null]});

    for grant in ["client_credentials", "token_exchange"] {
        let exchange = |claims: &serde_json::Value| {
            let token = issuer.mint(claims);
            let gw = &gw;
            async move {
                if grant == "client_credentials" {
                    gw.client_credentials(
                        "6f2d3b1e-0c4a-4d8e-9b7a-1a2b3c4d5e6f",
                        &token,
                        "api://payments/.default",
                    )
                    .await
                } else {
                    gw.token_exchange(&token, "api://payments").await
                }
            }
        };
        for (claims, want) in [
            (&present, json!("contoso/infra")),
            (&nested, nested["repository"].clone()),
        ] {
            let (status, body) = exchange(claims).await;
            assert_eq!(status, 200, "{grant}: {body}");
            let issued = gw
                .verify("contoso", body["access_token"].as_str().expect("token"))
                .await;
            assert_eq!(issued["repository"], want, "{grant}");
        }
        // Entra's answers: a client's assertion refused is 401, a subject token 400.
        let refused = if grant == "client_credentials" {
            401
        } else {
            400
        };
        let (status, body) = exchange(&absent).await;
        assert_eq!(status, refused, "{grant}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("claim mapping")),
            "{grant}: {body}"
        );
        assert!(body.get("access_token").is_none(), "{grant}: {body}");
    }
    let refusals: Vec<String> = gw
        .audit_records()
        .iter()
        .filter_map(|r| r["reason"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        refusals,
        ["claim_mapping_failed", "claim_mapping_failed"],
        "one refusal per grant, for the missing claim"
    );
}
