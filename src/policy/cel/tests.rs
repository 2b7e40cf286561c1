use proptest::prelude::*;
use serde_json::json;

use super::*;

fn claims(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(m) => m,
        other => panic!("claims must be an object, got {other}"),
    }
}

fn k8s_claims() -> serde_json::Map<String, serde_json::Value> {
    claims(json!({
        "iss": "https://k8s.example",
        "sub": "system:serviceaccount:team-a:builder",
        "repository_owner_id": "1234567",
        "run_number": 42,
        "big": u64::MAX,
        "ratio": 0.5,
        "admin": true,
        "nothing": null,
        "groups": ["dev", "ops"],
        "kubernetes.io": {
            "namespace": "team-a",
            "serviceaccount": {"name": "builder", "uid": "u-1"}
        }
    }))
}

struct Case {
    name: &'static str,
    expr: &'static str,
    want: Result<bool, &'static str>,
}

#[test]
fn conditions() {
    let cases = [
        Case {
            name: "string equality",
            expr: r#"claims.repository_owner_id == "1234567""#,
            want: Ok(true),
        },
        Case {
            name: "string inequality",
            expr: r#"claims.repository_owner_id == "7654321""#,
            want: Ok(false),
        },
        Case {
            name: "dotted claim name via index, then startsWith",
            expr: r#"claims["kubernetes.io"].namespace.startsWith("team-")"#,
            want: Ok(true),
        },
        Case {
            name: "comprehension variables are bound",
            expr: r#"claims.groups.exists(g, g == "ops")"#,
            want: Ok(true),
        },
        Case {
            name: "in operator on lists",
            expr: r#""dev" in claims.groups"#,
            want: Ok(true),
        },
        Case {
            name: "has() on a present claim",
            expr: "has(claims.admin) && claims.admin",
            want: Ok(true),
        },
        Case {
            name: "has() on a missing claim is false, not an error",
            expr: "has(claims.missing)",
            want: Ok(false),
        },
        Case {
            name: "ints compare with ints",
            expr: "claims.run_number > 40",
            want: Ok(true),
        },
        Case {
            name: "u64 beyond i64 is a uint",
            expr: "claims.big == 18446744073709551615u",
            want: Ok(true),
        },
        Case {
            name: "floats",
            expr: "claims.ratio < 1.0",
            want: Ok(true),
        },
        Case {
            name: "null",
            expr: "claims.nothing == null",
            want: Ok(true),
        },
        Case {
            name: "missing claim errors",
            expr: r#"claims.missing == "x""#,
            want: Err("No such key"),
        },
        Case {
            name: "string claim ordered against an int errors",
            expr: "claims.repository_owner_id > 1234567",
            want: Err("no matching overload"),
        },
        // CEL's heterogeneous equality: a string never equals an int, so this is false (deny),
        // not an error. (And `!=` across types is true: policy authors should compare like types.)
        Case {
            name: "string claim equal to an int is false",
            expr: "claims.repository_owner_id == 1234567",
            want: Ok(false),
        },
        Case {
            name: "startsWith on an int errors",
            expr: r#"claims.run_number.startsWith("4")"#,
            want: Err(""),
        },
        Case {
            name: "unknown function errors",
            expr: "nosuchfunction(claims.sub)",
            want: Err(""),
        },
        Case {
            name: "non-bool result errors",
            expr: "claims.sub",
            want: Err("not a bool"),
        },
        Case {
            name: "division by zero errors",
            expr: "claims.run_number / 0 == 1",
            want: Err(""),
        },
    ];
    let claims = k8s_claims();
    for case in cases {
        let expr = Expression::compile(case.expr).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let got = expr.eval_bool(&claims);
        match (&got, case.want) {
            (Ok(got), Ok(want)) => assert_eq!(*got, want, "{}", case.name),
            (Err(e), Err(fragment)) => assert!(e.0.contains(fragment), "{}: {e}", case.name),
            _ => panic!("{}: got {got:?}, want {:?}", case.name, case.want),
        }
    }
}

#[test]
fn name_from_concatenates_strings() {
    let expr = Expression::compile(
        r#""k8s/" + claims["kubernetes.io"].namespace + "/" + claims["kubernetes.io"].serviceaccount.name"#,
    )
    .unwrap();
    assert_eq!(
        expr.eval_string(&k8s_claims()).unwrap(),
        "k8s/team-a/builder"
    );

    // A missing part is an error, never a partial name.
    let no_sa = claims(json!({"kubernetes.io": {"namespace": "team-a"}}));
    assert!(expr.eval_string(&no_sa).is_err());
}

#[test]
fn eval_string_refuses_empty_and_non_strings() {
    let c = k8s_claims();
    let empty = Expression::compile(r#""""#).unwrap();
    assert!(empty.eval_string(&c).unwrap_err().0.contains("empty"));
    let int = Expression::compile("claims.run_number").unwrap();
    assert!(int.eval_string(&c).unwrap_err().0.contains("not a string"));
}

#[test]
fn eval_json_converts_back() {
    let c = k8s_claims();
    let cases = [
        ("claims.sub", json!("system:serviceaccount:team-a:builder")),
        ("claims.run_number", json!(42)),
        ("claims.big", json!(u64::MAX)),
        ("claims.ratio", json!(0.5)),
        ("claims.admin", json!(true)),
        ("claims.nothing", json!(null)),
        ("claims.groups", json!(["dev", "ops"])),
        (
            r#"claims["kubernetes.io"].serviceaccount"#,
            json!({"name": "builder", "uid": "u-1"}),
        ),
        (r#"{"a": [1, "b"]}"#, json!({"a": [1, "b"]})),
    ];
    for (src, want) in cases {
        let expr = Expression::compile(src).unwrap();
        assert_eq!(expr.eval_json(&c).unwrap(), want, "{src}");
    }
    for bad in [r#"b"bytes""#, "{1: 2}", "claims.missing", "1.0 / 0.0"] {
        let expr = Expression::compile(bad).unwrap();
        assert!(expr.eval_json(&c).is_err(), "{bad}");
    }
}

#[test]
fn compile_errors() {
    let cases: [(&str, &str); 5] = [
        ("", "empty"),
        ("claims.sub ==", "invalid CEL expression"),
        ("claim.sub == \"x\"", "unknown variable \"claim\""),
        ("sub == \"x\"", "only read `claims`"),
        ("claims.groups.exists(g, h == 1)", "unknown variable \"h\""),
    ];
    for (src, fragment) in cases {
        let err = Expression::compile(src).unwrap_err();
        assert!(err.to_string().contains(fragment), "{src:?}: {err}");
    }
    let long = format!("claims.sub == \"{}\"", "a".repeat(MAX_SOURCE_LEN));
    assert!(
        Expression::compile(&long)
            .unwrap_err()
            .0
            .contains("at most 4096")
    );
    let deep = format!("{}true{}", "(".repeat(200), ")".repeat(200));
    assert!(Expression::compile(&deep).is_err());
}

#[test]
fn type_identifiers_are_not_variables() {
    let expr = Expression::compile("type(claims.sub) == string").unwrap();
    assert!(expr.eval_bool(&k8s_claims()).unwrap());
}

#[test]
fn deep_claims_deny_instead_of_overflowing() {
    let mut v = json!("leaf");
    for _ in 0..(MAX_CLAIMS_DEPTH + 5) {
        v = json!({ "a": v });
    }
    let c = claims(json!({ "deep": v }));
    let expr = Expression::compile("claims.deep == claims.deep").unwrap();
    assert!(expr.eval_bool(&c).unwrap_err().0.contains("nested deeper"));
}

/// Evaluation of the deepest accepted expression over the deepest accepted claims must fit in a
/// worker thread's default 2 MiB stack.
#[test]
fn worst_case_fits_in_a_worker_stack() {
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let mut v = json!("leaf");
            for _ in 0..(MAX_CLAIMS_DEPTH - 2) {
                v = json!([v]);
            }
            let c = claims(json!({ "deep": v }));
            let mut nested = String::from("claims.deep == claims.deep");
            let mut accepted = None;
            for _ in 0..200 {
                match Expression::compile(&nested) {
                    Ok(e) => accepted = Some(e),
                    Err(_) => break,
                }
                nested = format!("!(!({nested}))");
            }
            let expr = accepted.expect("some nesting compiles");
            let _ = expr.eval_bool(&c);
            let _ = expr.eval_json(&c);
        })
        .unwrap();
    handle.join().unwrap();
}

#[test]
fn expressions_are_shareable() {
    let expr = Arc::new(Expression::compile("claims.admin").unwrap());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let expr = Arc::clone(&expr);
            std::thread::spawn(move || expr.eval_bool(&k8s_claims()).unwrap())
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap());
    }
    assert_eq!(expr.source(), "claims.admin");
    assert_eq!(format!("{:?}", expr), "Expression(\"claims.admin\")");
}

fn json_strategy() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        "\\PC{0,8}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map("[a-z.]{0,4}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn expr_strategy() -> impl Strategy<Value = String> {
    let atoms = prop_oneof![
        Just("claims".to_string()),
        Just("claims.a".to_string()),
        Just("claims[\"b.c\"]".to_string()),
        Just("1".to_string()),
        Just("\"s\"".to_string()),
        Just("1.5".to_string()),
        Just("null".to_string()),
        Just("[1, \"x\"]".to_string()),
        Just("{\"k\": 1}".to_string()),
    ];
    atoms.prop_recursive(3, 16, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} == {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} + {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} / {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} in {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}[{b}]")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}.startsWith({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a}.matches({b})")),
            inner.clone().prop_map(|a| format!("size({a})")),
            inner.clone().prop_map(|a| format!("{a}.exists(x, x == 1)")),
            inner.clone().prop_map(|a| format!("{a}.map(x, x + x)")),
            inner.clone().prop_map(|a| format!("int({a})")),
            inner.prop_map(|a| format!("!{a}")),
        ]
    })
}

proptest! {
    #[test]
    fn compile_never_panics(src in "\\PC{0,64}") {
        let _ = Expression::compile(&src);
    }

    #[test]
    fn eval_never_panics(src in expr_strategy(), value in json_strategy()) {
        if let Ok(expr) = Expression::compile(&src) {
            let c = claims(json!({ "a": value.clone(), "b.c": value }));
            let _ = expr.eval_bool(&c);
            let _ = expr.eval_string(&c);
            let _ = expr.eval_json(&c);
        }
    }
}

/// Chains that parse shallowly but build deep trees are refused at compile time, and the
/// longest accepted ones evaluate on a 2 MiB stack.
#[test]
fn deep_trees_are_refused_and_accepted_ones_fit() {
    let chains: [fn(usize) -> String; 3] = [
        |n| format!("claims.a{}", " + claims.a".repeat(n)),
        |n| format!("claims.a{} == 1", "[0]".repeat(n)),
        |n| format!("claims{} == 1", ".a".repeat(n)),
    ];
    for chain in chains {
        let too_deep = chain(200);
        let err = Expression::compile(&too_deep).unwrap_err();
        assert!(err.0.contains("deeper than"), "{err}");
        let mut n = 1;
        let mut longest = None;
        while let Ok(e) = Expression::compile(&chain(n)) {
            longest = Some(e);
            n += 1;
        }
        let expr = longest.expect("short chains compile");
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let c = claims(json!({"a": 1}));
                let _ = expr.eval_json(&c);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}

#[test]
fn iteration_inside_a_comprehension_is_refused_at_compile_time() {
    let quadratic = [
        "claims.groups.exists(g, claims.groups.exists(h, g == h))",
        "claims.groups.all(g, claims.groups.exists_one(h, g == h))",
        "claims.groups.map(g, claims.groups.filter(h, h == g)).size() > 0",
        "claims.groups.exists(g, g in claims.groups)",
        "claims.groups.exists(g, g in claims.roles)",
        "[1].exists(x, claims.groups.exists(g, g == x))",
    ];
    for source in quadratic {
        let err = Expression::compile(source).expect_err(source);
        assert!(
            err.0.contains("inside a comprehension's predicate"),
            "{source}: {err}"
        );
    }
    // One pass each, side by side or in sequence, and `in` over a literal list, stay linear.
    let linear = [
        "claims.groups.exists(g, g == \"dev\") && claims.roles.all(r, r != \"x\")",
        "claims.groups.filter(g, g != \"ops\").exists(g, g == \"dev\")",
        "claims.groups.exists(g, g in [\"dev\", \"admin\"])",
        "\"dev\" in claims.groups",
    ];
    for source in linear {
        Expression::compile(source).unwrap_or_else(|e| panic!("{source}: {e}"));
    }
}

#[test]
fn a_single_comprehension_over_the_largest_token_array_evaluates() {
    // A 16 KiB token holds at most ~6 000 values; the cap on converted values is above that.
    let big: Vec<u32> = (0..6000).collect();
    let claims = claims(json!({"ids": big}));
    let cases = [
        ("claims.ids.exists(i, i == 5999)", true),
        ("claims.ids.all(i, i >= 0)", true),
        ("claims.ids.exists_one(i, i == 17)", true),
        ("claims.ids.filter(i, i % 2 == 0).size() == 3000", true),
        ("claims.ids.map(i, i + 1).size() == 6000", true),
    ];
    for (source, want) in cases {
        let expr = Expression::compile(source).unwrap();
        let started = std::time::Instant::now();
        assert_eq!(
            expr.eval_bool(&claims).map_err(|e| e.0),
            Ok(want),
            "{source}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{source} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn claims_over_the_value_cap_deny() {
    let big = vec![0u8; MAX_CLAIM_VALUES];
    let claims = claims(json!({ "ids": big }));
    let expr = Expression::compile("claims.ids.size() > 0").unwrap();
    let err = expr.eval_bool(&claims).unwrap_err();
    assert!(err.0.contains("more than 8192 values"), "{err}");
}

// === request and the Kubernetes IP/CIDR library ===

fn vars(ip: Option<&str>, tls: bool) -> RequestVars {
    RequestVars {
        ip: ip.map(|s| s.parse().unwrap()),
        time: std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_767_225_600), // 2026-01-01
        tls,
    }
}

#[test]
fn conditions_read_the_request() {
    let table: [(&str, Option<&str>, Result<bool, &str>); 16] = [
        ("request.ip == '10.1.2.3'", Some("10.1.2.3"), Ok(true)),
        (
            "cidr('10.0.0.0/8').containsIP(request.ip)",
            Some("10.1.2.3"),
            Ok(true),
        ),
        (
            "cidr('10.0.0.0/8').containsIP(request.ip)",
            Some("11.1.2.3"),
            Ok(false),
        ),
        (
            "cidr('10.0.0.0/8').containsIP(ip(request.ip))",
            Some("10.9.9.9"),
            Ok(true),
        ),
        (
            "cidr('2001:db8::/32').containsIP(request.ip)",
            Some("2001:db8::1"),
            Ok(true),
        ),
        (
            "cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16')",
            None,
            Ok(true),
        ),
        (
            "cidr('10.0.0.0/8').containsCIDR(cidr('10.0.0.0/7'))",
            None,
            Ok(false),
        ),
        (
            "isIP('10.0.0.1') && !isIP('10.0.0') && !isIP('::ffff:1.2.3.4')",
            None,
            Ok(true),
        ),
        (
            "isCIDR('10.0.0.0/8') && !isCIDR('10.0.0.0/33')",
            None,
            Ok(true),
        ),
        (
            "ip('10.0.0.1') == ip('10.0.0.1') && ip('127.0.0.1').isLoopback()",
            None,
            Ok(true),
        ),
        (
            "string(cidr('10.1.2.3/8').masked()) == '10.0.0.0/8'",
            None,
            Ok(true),
        ),
        (
            "cidr('10.0.0.0/8').prefixLength() == 8 && ip('::1').family() == 6",
            None,
            Ok(true),
        ),
        ("request.tls", None, Ok(true)),
        (
            "request.time > timestamp('2025-06-01T00:00:00Z')",
            None,
            Ok(true),
        ),
        ("has(request.ip)", None, Ok(false)),
        ("ip('nope') == ip('nope')", None, Err("ip")),
    ];
    for (expr, ip, want) in table {
        let compiled =
            Expression::compile_condition(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        let got = compiled.eval_condition(&k8s_claims(), &vars(ip, true));
        match (got, want) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{expr}"),
            (Err(e), Err(part)) => assert!(e.0.contains(part), "{expr}: {e}"),
            (got, want) => panic!("{expr}: got {got:?}, want {want:?}"),
        }
    }
}

#[test]
fn request_is_checked_at_load() {
    let e = Expression::compile_condition("request.addr == '1'").unwrap_err();
    assert!(e.0.contains("\"addr\""), "{e}");
    let e = Expression::compile_condition("request['port'] == 1").unwrap_err();
    assert!(e.0.contains("\"port\""), "{e}");
    // Only conditions see `request`: claimMappings and nameFrom do not.
    let e = Expression::compile("request.ip").unwrap_err();
    assert!(e.0.contains("only conditions"), "{e}");
    // A condition that never names `request` does not pay for building it.
    assert!(
        !Expression::compile_condition("claims.sub != ''")
            .unwrap()
            .reads_request
    );
    assert!(
        Expression::compile_condition("request.tls")
            .unwrap()
            .reads_request
    );
}

#[test]
fn net_values_have_no_json_form_and_never_panic() {
    let e = Expression::compile("ip('10.0.0.1')").unwrap();
    assert!(e.eval_json(&k8s_claims()).is_err());
    let e = Expression::compile("cidr('10.0.0.0/8').containsIP('x')").unwrap();
    assert!(e.eval_bool(&k8s_claims()).is_err());
}

// === only the claims an expression names are converted ===

/// `expr` evaluated the way it was before named-claim conversion: every claim converted.
fn converting_every_claim(expr: &Expression) -> Expression {
    Expression {
        reads_claims: None,
        ..expr.clone()
    }
}

#[test]
fn expressions_know_which_claims_they_read_by_name() {
    let table: [(&str, Option<&[&str]>); 10] = [
        ("claims.sub == 'x'", Some(&["sub"])),
        (
            "has(claims.repository) ? claims.repository : 'unknown'",
            Some(&["repository"]),
        ),
        (
            r#"claims["kubernetes.io"].namespace.startsWith("team-")"#,
            Some(&["kubernetes.io"]),
        ),
        (
            "claims.groups.exists(g, g == 'ops') && claims.sub != ''",
            Some(&["groups", "sub"]),
        ),
        ("'a' == 'a'", Some(&[])),
        // Whole, computed or rebound: every claim is converted.
        ("size(claims) > 2", None),
        ("claims[claims.sub] == 1", None),
        ("claims.exists(k, k == 'sub')", None),
        ("[claims.sub].exists(claims, claims == 'x')", None),
        ("claims.all(k, k != '')", None),
    ];
    for (source, want) in table {
        let expr = Expression::compile(source).unwrap();
        let got: Option<Vec<&str>> = expr
            .reads_claims
            .as_ref()
            .map(|names| names.iter().map(String::as_str).collect());
        assert_eq!(got.as_deref(), want, "{source}");
    }
}

#[test]
fn named_claim_conversion_changes_no_outcome() {
    let sources = [
        "claims.sub == 'system:serviceaccount:team-a:builder'",
        "has(claims.missing)",
        "claims.missing == 'x'",
        r#"claims["kubernetes.io"].serviceaccount.name == "builder""#,
        "claims.groups.exists(g, g == 'ops')",
        "claims.run_number + 1 == 43",
        "claims.big > 0u",
        "claims.ratio < 1.0",
        "claims.nothing == null",
        "claims.admin",
        "claims.sub",
        "size(claims) > 2",
    ];
    let deep = {
        let mut v = json!("leaf");
        for _ in 0..MAX_CLAIMS_DEPTH + 2 {
            v = json!([v]);
        }
        v
    };
    let tokens = [
        k8s_claims(),
        claims(json!({"sub": "x"})),
        claims(json!({})),
        // Bounds apply to the whole token, named or not.
        claims(json!({"sub": "x", "unrelated": vec![0u8; MAX_CLAIM_VALUES]})),
        claims(json!({"sub": "x", "unrelated": deep})),
    ];
    for source in sources {
        let expr = Expression::compile(source).unwrap();
        let reference = converting_every_claim(&expr);
        for token in &tokens {
            let got = expr.eval_json(token).map_err(|e| e.0);
            let want = reference.eval_json(token).map_err(|e| e.0);
            assert_eq!(got, want, "{source} over {token:?}");
        }
    }
}

proptest! {
    #[test]
    fn named_claim_conversion_agrees_on_generated_tokens(
        sub in "[a-z:]{0,12}",
        groups in proptest::collection::vec("[a-z]{1,4}", 0..4),
        n in any::<i64>(),
        extra in proptest::option::of("[a-z]{0,6}"),
    ) {
        let mut token = claims(json!({"sub": sub, "groups": groups, "n": n}));
        if let Some(extra) = extra {
            token.insert("extra".into(), json!({"v": extra}));
        }
        for source in [
            "claims.sub.startsWith('a') || claims.groups.exists(g, g == 'ab')",
            "has(claims.extra) && claims.extra.v == claims.sub",
            "claims.n > 0 ? claims.sub : 'neg'",
            "claims['extra'].v",
        ] {
            let expr = Expression::compile(source).unwrap();
            let got = expr.eval_json(&token).map_err(|e| e.0);
            let want = converting_every_claim(&expr).eval_json(&token).map_err(|e| e.0);
            prop_assert_eq!(got, want, "{}", source);
        }
    }
}

// === direct claim reads (`direct`) ===

#[test]
fn direct_reads_are_recognised_only_for_one_claim_copied() {
    let unknown = || Json::String("unknown".into());
    let direct = [
        (
            "claims.repository",
            Some(Direct::Claim("repository".into())),
        ),
        (
            "claims[\"kubernetes.io\"]",
            Some(Direct::Claim("kubernetes.io".into())),
        ),
        (
            "has(claims.repository) ? claims.repository : \"unknown\"",
            Some(Direct::ClaimOr("repository".into(), unknown())),
        ),
        (
            "has(claims.r) ? claims[\"r\"] : 7",
            Some(Direct::ClaimOr("r".into(), Json::from(7))),
        ),
        (
            "has(claims.r) ? claims.r : null",
            Some(Direct::ClaimOr("r".into(), Json::Null)),
        ),
        ("has(claims.r) ? claims.other : \"u\"", None),
        ("has(claims.r) ? claims.r : claims.other", None),
        ("has(claims.r) ? claims.r : 1.5", None),
        ("has(claims.r) ? claims.r : b\"x\"", None),
        ("!has(claims.r) ? \"u\" : claims.r", None),
        ("has(claims.r)", None),
        ("claims.r.s", None),
        ("claims[claims.k]", None),
        ("claims", None),
        ("\"k8s/\" + claims.sub", None),
    ];
    for (source, want) in direct {
        let expr = Expression::compile(source).unwrap();
        assert_eq!(expr.direct, want, "{source}");
    }
}

#[test]
fn the_bundled_mapping_reads_directly_and_answers_as_the_interpreter() {
    let expr =
        Expression::compile("has(claims.repository) ? claims.repository : \"unknown\"").unwrap();
    assert!(expr.direct.is_some());
    let present = claims(json!({"repository": "contoso/infra"}));
    assert_eq!(expr.eval_json(&present).unwrap(), json!("contoso/infra"));
    let absent = claims(json!({"sub": "x"}));
    assert_eq!(expr.eval_json(&absent).unwrap(), json!("unknown"));
    // A missing claim without a default is the interpreter's error, word for word.
    let bare = Expression::compile("claims.repository").unwrap();
    let direct = bare.eval_json(&absent).unwrap_err().0;
    assert_eq!(direct, bare.eval_json_interpreted(&absent).unwrap_err().0);
    // Claims over the conversion bounds are refused before any direct read.
    let deep = (0..=MAX_CLAIMS_DEPTH).fold(json!(1), |inner, _| json!([inner]));
    let hostile = claims(json!({"repository": deep}));
    assert!(expr.eval_json(&hostile).is_err());
    assert_eq!(
        expr.eval_json(&hostile).unwrap_err().0,
        expr.eval_json_interpreted(&hostile).unwrap_err().0
    );
}

fn direct_shape_strategy() -> impl Strategy<Value = String> {
    let read = prop_oneof![
        Just("claims.a".to_string()),
        Just("claims[\"a\"]".to_string()),
        Just("claims[\"b.c\"]".to_string()),
    ];
    let literal = prop_oneof![
        Just("\"unknown\"".to_string()),
        Just("\"\"".to_string()),
        Just("0".to_string()),
        Just("-3".to_string()),
        Just("18446744073709551615u".to_string()),
        Just("true".to_string()),
        Just("null".to_string()),
        Just("2.5".to_string()),
    ];
    let tested = prop_oneof![Just("a"), Just("b")];
    prop_oneof![
        read.clone(),
        (tested, read, literal).prop_map(|(t, r, l)| format!("has(claims.{t}) ? {r} : {l}")),
    ]
}

proptest! {
    /// The direct read is an optimisation only: on any claims, for the shapes it takes and
    /// their near misses, `eval_json` says exactly what the interpreter says (the same value,
    /// or the same error).
    #[test]
    fn direct_reads_answer_as_the_interpreter(
        src in direct_shape_strategy(),
        a in proptest::option::of(json_strategy()),
        b in proptest::option::of(json_strategy()),
        other in json_strategy(),
    ) {
        let expr = Expression::compile(&src).unwrap();
        let mut c = serde_json::Map::new();
        if let Some(a) = a {
            c.insert("a".into(), a);
        }
        if let Some(b) = b {
            c.insert("b.c".into(), b.clone());
            c.insert("b".into(), b);
        }
        c.insert("other".into(), other);
        let direct = expr.eval_json(&c).map_err(|e| e.0);
        let interpreted = expr.eval_json_interpreted(&c).map_err(|e| e.0);
        prop_assert_eq!(direct, interpreted, "{}", src);
    }
}

// === request conditions answered directly ===

#[test]
fn direct_conditions_are_recognised_only_in_their_shapes() {
    let direct = |src: &str| {
        Expression::compile_condition(src)
            .unwrap()
            .direct_condition
            .is_some()
    };
    for src in [
        "cidr('10.0.0.0/8').containsIP(request.ip)",
        "request.time > timestamp('2020-01-01T00:00:00Z')",
        "request.time <= timestamp('2030-01-01T00:00:00+02:00')",
        "cidr('198.51.100.0/24').containsIP(request.ip) && request.time > timestamp('2020-01-01T00:00:00Z')",
        "cidr('2001:db8::/32').containsIP(request.ip) && cidr('2001:db8::/48').containsIP(request.ip) && request.time < timestamp('2100-01-01T00:00:00Z')",
    ] {
        assert!(direct(src), "{src}");
    }
    for src in [
        // Other operators, operands, orders and spellings stay with the interpreter.
        "cidr('10.0.0.0/8').containsIP(request.ip) || request.tls",
        "!cidr('10.0.0.0/8').containsIP(request.ip)",
        "cidr('10.0.0.0/8').containsIP(ip(request.ip))",
        "cidr('10.0.0.0/8').containsIP('10.1.2.3')",
        "cidr('10.0.0.0/8').containsCIDR(request.ip)",
        "cidr(request.ip).containsIP(request.ip)",
        "timestamp('2020-01-01T00:00:00Z') < request.time",
        "request.time == timestamp('2020-01-01T00:00:00Z')",
        "request.time > timestamp(request.ip)",
        "request.tls && cidr('10.0.0.0/8').containsIP(request.ip)",
        "claims.sub == 'x' && request.time > timestamp('2020-01-01T00:00:00Z')",
        // Literals the interpreter would refuse at evaluation.
        "cidr('10.0.0.0/33').containsIP(request.ip)",
        "cidr('not a network').containsIP(request.ip)",
        "request.time > timestamp('2020-01-01')",
        "request.time > timestamp('9999-12-31T23:59:60Z')",
        "request.time > timestamp('0000-12-31T23:00:00Z')",
    ] {
        assert!(!direct(src), "{src}");
    }
    // An address the interpreter cannot read back (IPv4-mapped IPv6: refused, as Kubernetes
    // does) is left to it, whose error the direct path must not turn into an answer.
    let mapped = RequestVars {
        ip: Some("::ffff:198.51.100.7".parse().unwrap()),
        ..vars(None, false)
    };
    for src in [
        "cidr('2001:db8::/32').containsIP(request.ip)",
        "cidr('198.51.100.0/24').containsIP(request.ip)",
    ] {
        let expr = Expression::compile_condition(src).unwrap();
        let claims = serde_json::Map::new();
        let err = expr.eval_condition(&claims, &mapped).unwrap_err();
        assert!(err.0.contains("containsIP"), "{src}: {err}");
    }
    // Claims over the bounds are refused first, as the interpreter's path does.
    let big: Vec<u32> = (0..9000).collect();
    let over = claims(json!({ "ids": big }));
    let expr = Expression::compile_condition("cidr('10.0.0.0/8').containsIP(request.ip)").unwrap();
    let err = expr
        .eval_condition(&over, &vars(Some("10.1.2.3"), false))
        .unwrap_err();
    assert!(err.0.contains("more than 8192 values"), "{err}");
    // Claim mappings never take a direct condition.
    let mapping = Expression::compile("claims.sub == 'x'").unwrap();
    assert!(mapping.direct_condition.is_none());
}

fn condition_strategy() -> impl Strategy<Value = String> {
    let network = prop_oneof![
        Just("10.0.0.0/8"),
        Just("198.51.100.0/24"),
        Just("198.51.100.7/32"),
        Just("0.0.0.0/0"),
        Just("2001:db8::/32"),
        Just("::/0"),
        Just("::ffff:0:0/96"),
        Just("10.0.0.0/33"),
        Just("010.0.0.0/8"),
    ];
    let time = prop_oneof![
        Just("2020-01-01T00:00:00Z"),
        Just("2026-01-01T00:00:00Z"),
        Just("2025-12-31T23:00:00-01:00"),
        Just("2026-01-01T00:00:00.000000001Z"),
        Just("9999-12-31T23:59:59.999999999Z"),
        Just("9999-12-31T23:59:60Z"),
        Just("0001-01-01T00:00:00Z"),
        Just("0001-01-01T00:00:00+00:01"),
    ];
    let op = prop_oneof![Just("<"), Just("<="), Just(">"), Just(">=")];
    let test = prop_oneof![
        network.prop_map(|n| format!("cidr('{n}').containsIP(request.ip)")),
        (op, time).prop_map(|(op, t)| format!("request.time {op} timestamp('{t}')")),
    ];
    proptest::collection::vec(test, 1..4).prop_map(|tests| tests.join(" && "))
}

fn address_strategy() -> impl Strategy<Value = Option<std::net::IpAddr>> {
    let v4 = any::<[u8; 4]>().prop_map(std::net::IpAddr::from);
    let near = prop_oneof![
        Just([10u8, 1, 2, 3]),
        Just([198, 51, 100, 7]),
        Just([198, 51, 101, 7])
    ]
    .prop_map(std::net::IpAddr::from);
    let v6 = any::<[u16; 8]>().prop_map(std::net::IpAddr::from);
    let db8 = any::<u16>().prop_map(|x| std::net::IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, x]));
    let mapped = any::<[u8; 4]>()
        .prop_map(|o| std::net::IpAddr::V6(std::net::Ipv4Addr::from(o).to_ipv6_mapped()));
    proptest::option::of(prop_oneof![v4, near, v6, db8, mapped])
}

proptest! {
    /// The direct condition is an optimisation only: for its shapes and near misses, on any
    /// request address (absent, IPv4, IPv6, IPv4-mapped) and time around the literals,
    /// `eval_condition` says exactly what the interpreter says.
    #[test]
    fn direct_conditions_answer_as_the_interpreter(
        src in condition_strategy(),
        ip in address_strategy(),
        seconds in prop_oneof![
            Just(1_577_836_800u64),
            Just(1_767_225_600u64),
            1_577_836_700u64..1_767_225_700,
        ],
        nanos in prop_oneof![Just(0u32), Just(1u32), 0u32..1_000_000_000],
        tls in any::<bool>(),
    ) {
        let expr = Expression::compile_condition(&src).unwrap();
        let request = RequestVars {
            ip,
            time: std::time::UNIX_EPOCH + std::time::Duration::new(seconds, nanos),
            tls,
        };
        let claims = serde_json::Map::new();
        let direct = expr.eval_condition(&claims, &request).map_err(|e| e.0);
        let interpreted = expr.eval_condition_interpreted(&claims, &request).map_err(|e| e.0);
        prop_assert_eq!(direct, interpreted, "{} {:?}", src, request);
    }
}
