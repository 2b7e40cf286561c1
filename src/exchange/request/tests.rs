use super::*;

fn cc(extra: &str) -> String {
    format!(
        "grant_type=client_credentials&client_id=deploy-bot&client_assertion_type={}&client_assertion=eyJ.x.y{extra}",
        url::form_urlencoded::byte_serialize(JWT_BEARER.as_bytes()).collect::<String>()
    )
}

fn te(extra: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "grant_type={}&subject_token=eyJ.a.b&subject_token_type={}{extra}",
        enc(TOKEN_EXCHANGE),
        enc(TOKEN_TYPE_JWT)
    )
}

fn parse(body: &str) -> Result<ExchangeRequest, RequestError> {
    ExchangeRequest::parse("contoso", body.as_bytes())
}

#[test]
fn client_credentials_with_default_scope() {
    let req = parse(&cc("&scope=api%3A%2F%2Fpayments%2F.default")).expect("valid");
    assert_eq!(req.grant, GrantType::ClientCredentials);
    assert_eq!(req.client_id.as_deref(), Some("deploy-bot"));
    assert_eq!(req.subject_token, "eyJ.x.y");
    assert_eq!(req.target.resource, "api://payments");
    assert_eq!(req.target.roles, RequestedRoles::All);
    assert!(req.target.from_scope);
}

#[test]
fn specific_roles_are_collected_once() {
    let req = parse(&cc(
        "&scope=api%3A%2F%2Fpayments%2FPayments.Read+api%3A%2F%2Fpayments%2FPayments.Write+api%3A%2F%2Fpayments%2FPayments.Read",
    ))
    .expect("valid");
    assert_eq!(
        req.target.roles,
        RequestedRoles::Specific(vec!["Payments.Read".into(), "Payments.Write".into()])
    );
}

#[test]
fn client_credentials_requires_its_fields() {
    let enc_type = url::form_urlencoded::byte_serialize(JWT_BEARER.as_bytes()).collect::<String>();
    let cases = [
        (
            "client_id=a&client_assertion=x&scope=a/.default".to_string(),
            RequestError::Missing("grant_type"),
        ),
        (
            format!(
                "grant_type=client_credentials&client_assertion_type={enc_type}&client_assertion=x&scope=a/.default"
            ),
            RequestError::Missing("client_id"),
        ),
        (
            "grant_type=client_credentials&client_id=a&client_assertion=x&scope=a/.default".into(),
            RequestError::Missing("client_assertion_type"),
        ),
        (
            format!(
                "grant_type=client_credentials&client_id=a&client_assertion_type={enc_type}&scope=a/.default"
            ),
            RequestError::Missing("client_assertion"),
        ),
        (
            format!(
                "grant_type=client_credentials&client_id=a&client_assertion_type={enc_type}&client_assertion=x"
            ),
            RequestError::Missing("scope"),
        ),
    ];
    for (body, want) in cases {
        assert_eq!(parse(&body).unwrap_err(), want, "{body}");
    }
}

#[test]
fn refuses_wrong_assertion_type_secrets_and_unknown_grants() {
    let body = "grant_type=client_credentials&client_id=a&client_assertion_type=saml&client_assertion=x&scope=a/.default";
    assert!(matches!(
        parse(body),
        Err(RequestError::Invalid {
            name: "client_assertion_type",
            ..
        })
    ));
    assert!(matches!(
        parse(&cc("&scope=a/.default&client_secret=s")),
        Err(RequestError::Invalid {
            name: "client_secret",
            ..
        })
    ));
    assert_eq!(
        parse("grant_type=password&username=a").unwrap_err(),
        RequestError::UnsupportedGrant
    );
}

#[test]
fn duplicate_parameters_are_refused() {
    let err = parse(&cc("&scope=a/.default&client_id=other")).unwrap_err();
    assert_eq!(err, RequestError::Duplicate("client_id".into()));
}

#[test]
fn too_many_parameters_and_non_utf8_are_refused() {
    let mut body = cc("&scope=a/.default");
    for i in 0..40 {
        body.push_str(&format!("&x{i}=1"));
    }
    assert_eq!(parse(&body).unwrap_err(), RequestError::TooManyParameters);
    assert_eq!(
        ExchangeRequest::parse("t", b"grant_type=\xff\xfe").unwrap_err(),
        RequestError::NotForm
    );
}

#[test]
fn scope_errors() {
    for (scope, fragment) in [
        ("payments", "<resource>/.default"),
        (
            "api%3A%2F%2Fa%2F.default+api%3A%2F%2Fb%2F.default",
            "same resource",
        ),
        (
            "api%3A%2F%2Fa%2F.default+api%3A%2F%2Fa%2FRead",
            "cannot be combined",
        ),
        ("openid", "no resource"),
        ("%2F.default", "<resource>/.default"),
    ] {
        let err = parse(&cc(&format!("&scope={scope}"))).unwrap_err();
        assert!(
            matches!(&err, RequestError::Scope(m) if m.contains(fragment)),
            "{scope}: {err}"
        );
    }
}

#[test]
fn token_exchange_targets() {
    let req = parse(&te("&resource=api%3A%2F%2Fpayments")).expect("resource");
    assert_eq!(req.grant, GrantType::TokenExchange);
    assert_eq!(req.client_id, None);
    assert_eq!(req.target.resource, "api://payments");
    assert!(!req.target.from_scope);

    let req = parse(&te(
        "&audience=api%3A%2F%2Fpayments%2F.default&resource=api%3A%2F%2Fpayments",
    ))
    .expect("same");
    assert_eq!(req.target.resource, "api://payments");

    let req = parse(&te("&scope=api%3A%2F%2Fpayments%2FPayments.Read")).expect("scope");
    assert_eq!(
        req.target.roles,
        RequestedRoles::Specific(vec!["Payments.Read".into()])
    );

    let req = parse(&te(
        "&audience=api%3A%2F%2Fpayments&scope=api%3A%2F%2Fpayments%2FPayments.Read",
    ))
    .expect("both");
    assert_eq!(
        req.target.roles,
        RequestedRoles::Specific(vec!["Payments.Read".into()])
    );

    assert!(matches!(
        parse(&te("&resource=api%3A%2F%2Fa&audience=api%3A%2F%2Fb")),
        Err(RequestError::Target(_))
    ));
    assert!(matches!(
        parse(&te(
            "&resource=api%3A%2F%2Fa&scope=api%3A%2F%2Fb%2F.default"
        )),
        Err(RequestError::Target(_))
    ));
    assert_eq!(parse(&te("")).unwrap_err(), RequestError::Missing("scope"));
}

#[test]
fn token_exchange_type_checks() {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let body = format!(
        "grant_type={}&subject_token=x&subject_token_type=urn%3Asaml&resource=a",
        enc(TOKEN_EXCHANGE)
    );
    assert!(matches!(
        parse(&body),
        Err(RequestError::Invalid {
            name: "subject_token_type",
            ..
        })
    ));
    let body = format!(
        "grant_type={}&subject_token=x&resource=a",
        enc(TOKEN_EXCHANGE)
    );
    assert_eq!(
        parse(&body).unwrap_err(),
        RequestError::Missing("subject_token_type")
    );
    assert!(matches!(
        parse(&te(
            "&resource=a&requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Arefresh_token"
        )),
        Err(RequestError::Invalid {
            name: "requested_token_type",
            ..
        })
    ));
    assert!(matches!(
        parse(&te("&resource=a&actor_token=x")),
        Err(RequestError::Invalid {
            name: "actor_token",
            ..
        })
    ));
    let ok = parse(&te(&format!(
        "&resource=a&requested_token_type={}",
        enc(TOKEN_TYPE_ACCESS_TOKEN)
    )));
    assert!(ok.is_ok());
}

#[test]
fn google_auth_sts_request_targets_the_audience() {
    // The exact parameters google-auth's identity_pool credentials send (values urlencoded).
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let google = |scope: &str| {
        format!(
            "audience=api%3A%2F%2Fledger&grant_type={}&requested_token_type={}&subject_token=eyJ.a.b&subject_token_type={}{scope}",
            enc(TOKEN_EXCHANGE),
            enc(TOKEN_TYPE_ACCESS_TOKEN),
            enc(TOKEN_TYPE_JWT),
        )
    };
    for scope in [
        "",
        "&scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform",
        "&scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform+https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fdevstorage.read_only",
    ] {
        let req = parse(&google(scope)).expect(scope);
        assert_eq!(req.target.resource, "api://ledger", "{scope}");
        assert_eq!(req.target.roles, RequestedRoles::All, "{scope}");
    }
    // Google scopes beside trustbridge roles: the roles still down-scope.
    let req = parse(&google(
        "&scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform+api%3A%2F%2Fledger%2FLedger.Read",
    ))
    .expect("mixed");
    assert_eq!(
        req.target.roles,
        RequestedRoles::Specific(vec!["Ledger.Read".into()])
    );
    // Only Google scopes and no audience: nothing names a resource.
    let err = parse(&te(
        "&scope=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform",
    ))
    .unwrap_err();
    assert!(
        matches!(&err, RequestError::Target(m) if m.contains("audience")),
        "{err}"
    );
}

#[test]
fn surrounding_whitespace_of_tokens_is_dropped() {
    // azure-identity's WorkloadIdentityCredential sends its token file as is, newline included.
    let req = parse(&cc("%0A&scope=api%3A%2F%2Fpayments%2F.default")).expect("valid");
    assert_eq!(req.subject_token, "eyJ.x.y");
    let body = te("&resource=a").replace("subject_token=eyJ.a.b", "subject_token=+eyJ.a.b%0D%0A");
    assert_eq!(parse(&body).expect("valid").subject_token, "eyJ.a.b");
    // Whitespace alone is no token.
    let body = te("&resource=a").replace("subject_token=eyJ.a.b", "subject_token=%0A");
    assert_eq!(
        parse(&body).unwrap_err(),
        RequestError::Missing("subject_token")
    );
    let body = cc("&scope=a%2F.default").replace("client_assertion=eyJ.x.y", "client_assertion=+");
    assert_eq!(
        parse(&body).unwrap_err(),
        RequestError::Missing("client_assertion")
    );
}

proptest::proptest! {
    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
        let _ = ExchangeRequest::parse("t", &body);
    }

    #[test]
    fn arbitrary_form_text_never_panics(body in "[a-z_=&%+./:0-9A-F]{0,300}") {
        let _ = ExchangeRequest::parse("t", body.as_bytes());
    }
}

/// The pairs `form_urlencoded::parse` yields, owned, for comparison.
fn reference_pairs(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes())
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect()
}

fn fast_pairs(text: &str) -> Vec<(String, String)> {
    super::form_pairs(text)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect()
}

#[test]
fn form_pairs_decode_as_form_urlencoded_does() {
    for text in [
        "",
        "&",
        "&&a=1&&",
        "a",
        "a=",
        "=b",
        "=",
        "a=b=c",
        "a+b=c+d",
        "a%20b=%41%42%zz%",
        "a=%E2%9C%93&b=%FF",
        "grant_type=client_credentials&client_assertion=eyJ.eyJ.sig&scope=api%3A%2F%2Fx%2F.default",
        "ü=ö&x=%C3%BC",
    ] {
        assert_eq!(fast_pairs(text), reference_pairs(text), "{text:?}");
    }
}

#[test]
fn a_plain_value_is_borrowed_and_an_escaped_one_decoded() {
    let text = "client_assertion=eyJhbGciOiJSUzI1NiJ9.e30.c2ln&scope=api%3A%2F%2Fx+y";
    let pairs: Vec<_> = super::form_pairs(text).collect();
    assert!(matches!(pairs[0].1, std::borrow::Cow::Borrowed(_)));
    assert_eq!(pairs[1].1, "api://x y");
}

proptest::proptest! {
    #[test]
    fn form_pairs_equal_form_urlencoded_on_any_text(text in "[a-z=&%+2AEFz\u{e9}\u{1F600}]{0,64}") {
        proptest::prop_assert_eq!(fast_pairs(&text), reference_pairs(&text));
    }

    #[test]
    fn form_pairs_equal_form_urlencoded_on_any_string(text in ".{0,64}") {
        proptest::prop_assert_eq!(fast_pairs(&text), reference_pairs(&text));
    }
}
