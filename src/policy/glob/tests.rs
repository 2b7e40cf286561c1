use proptest::prelude::*;

use super::*;

struct Case {
    pattern: &'static str,
    subject: &'static str,
    want: bool,
}

#[test]
fn table() {
    let cases = [
        Case {
            pattern: "repo:contoso/*:ref:refs/heads/**",
            subject: "repo:contoso/infra:ref:refs/heads/feature/x",
            want: true,
        },
        Case {
            pattern: "repo:contoso/*:ref:refs/heads/**",
            subject: "repo:contoso/infra:ref:refs/heads/main",
            want: true,
        },
        // `*` never crosses `/`.
        Case {
            pattern: "repo:contoso/*:ref:refs/heads/**",
            subject: "repo:contoso/a/b:ref:refs/heads/main",
            want: false,
        },
        // Neither `*` nor `**` crosses `:`: no jumping from one subject field into another.
        Case {
            pattern: "repo:contoso/*:ref:refs/heads/**",
            subject: "repo:evil:x/infra:ref:refs/heads/main",
            want: false,
        },
        Case {
            pattern: "repo:contoso/**",
            subject: "repo:contoso/infra:ref:refs/heads/main",
            want: false,
        },
        Case {
            pattern: "repo:contoso/**",
            subject: "repo:contoso/a/b/c",
            want: true,
        },
        // Runs may be empty.
        Case {
            pattern: "repo:contoso/*",
            subject: "repo:contoso/",
            want: true,
        },
        Case {
            pattern: "a**b",
            subject: "ab",
            want: true,
        },
        // Case-sensitive, whole-string.
        Case {
            pattern: "repo:Contoso/infra",
            subject: "repo:contoso/infra",
            want: false,
        },
        Case {
            pattern: "repo:contoso/infra",
            subject: "repo:contoso/infra:ref:refs/heads/main",
            want: false,
        },
        Case {
            pattern: "repo:contoso/infra",
            subject: "xrepo:contoso/infra",
            want: false,
        },
        Case {
            pattern: "repo:contoso/infra",
            subject: "repo:contoso/infra",
            want: true,
        },
        Case {
            pattern: "system:serviceaccount:team-*:*",
            subject: "system:serviceaccount:team-a:builder",
            want: true,
        },
        Case {
            pattern: "system:serviceaccount:team-*:*",
            subject: "system:serviceaccount:prod:builder",
            want: false,
        },
        // Literal characters that are special elsewhere stay literal.
        Case {
            pattern: "a.b?[c]",
            subject: "a.b?[c]",
            want: true,
        },
        Case {
            pattern: "a.b",
            subject: "axb",
            want: false,
        },
        // Non-ASCII is matched by character, not by byte.
        Case {
            pattern: "é*",
            subject: "éü",
            want: true,
        },
        Case {
            pattern: "*",
            subject: "",
            want: true,
        },
    ];
    for case in cases {
        let pattern = SubjectPattern::parse(case.pattern).unwrap();
        assert_eq!(
            pattern.matches(case.subject),
            case.want,
            "{:?} on {:?}",
            case.pattern,
            case.subject
        );
        assert_eq!(pattern.as_str(), case.pattern);
    }
}

#[test]
fn refuses_empty_and_long_star_runs() {
    let err = SubjectPattern::parse("").unwrap_err();
    assert!(err.0.contains("empty"), "{err}");
    for bad in ["***", "repo:x/***", "a****b"] {
        let err = SubjectPattern::parse(bad).unwrap_err();
        assert!(err.0.contains("run of"), "{bad}: {err}");
    }
}

#[test]
fn long_hostile_subjects_stay_fast() {
    // A classic exponential case for backtracking matchers.
    let pattern = SubjectPattern::parse(&"**a".repeat(30)).unwrap();
    let subject = "a".repeat(5000) + "b";
    assert!(!pattern.matches(&subject));
}

/// The reference model: the documented semantics written as an anchored regex.
fn reference(pattern: &str, subject: &str) -> bool {
    let mut re = String::from("^");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '*' {
            if chars.next_if_eq(&'*').is_some() {
                re.push_str("[^:]*");
            } else {
                re.push_str("[^/:]*");
            }
        } else {
            re.push_str(&regex::escape(&c.to_string()));
        }
    }
    re.push('$');
    regex::Regex::new(&re).unwrap().is_match(subject)
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("*".to_string()),
            Just("**".to_string()),
            Just("/".to_string()),
            Just(":".to_string()),
            "[ab.]{1,2}",
        ],
        1..8,
    )
    .prop_map(|parts| parts.concat())
    .prop_filter("no runs of three stars", |p| !p.contains("***"))
}

proptest! {
    #[test]
    fn agrees_with_reference(pattern in pattern_strategy(), subject in "[ab/:.]{0,12}") {
        let compiled = SubjectPattern::parse(&pattern).unwrap();
        prop_assert_eq!(compiled.matches(&subject), reference(&pattern, &subject));
    }

    #[test]
    fn literal_patterns_match_only_themselves(subject in "[^*]{1,20}", other in "\\PC{0,20}") {
        let compiled = SubjectPattern::parse(&subject).unwrap();
        prop_assert!(compiled.matches(&subject));
        prop_assert_eq!(compiled.matches(&other), other == subject);
    }

    #[test]
    fn parse_never_panics(pattern in "\\PC{0,40}", subject in "\\PC{0,40}") {
        if let Ok(p) = SubjectPattern::parse(&pattern) {
            let _ = p.matches(&subject);
        }
    }
}

// === intersects, wildcard_owner ===

fn all_subjects(max_len: usize) -> Vec<String> {
    let alphabet = ['a', 'b', '.', '/', ':'];
    let mut out = vec![String::new()];
    let mut frontier = vec![String::new()];
    for _ in 0..max_len {
        let mut next = Vec::new();
        for s in &frontier {
            for c in alphabet {
                next.push(format!("{s}{c}"));
            }
        }
        out.extend(next.iter().cloned());
        frontier = next;
    }
    out
}

#[test]
fn intersection_examples() {
    let p = |s: &str| SubjectPattern::parse(s).unwrap();
    let cases = [
        ("repo:a/*:ref:main", "repo:a/infra:ref:*", true),
        ("repo:a/*:ref:main", "repo:b/*:ref:main", false),
        ("repo:**", "repo:a/b/c:x", false), // ** never crosses ':'
        ("repo:**:x", "repo:a/b/c:x", true),
        ("repo:*:x", "repo:a/b:x", false), // * never crosses '/'
        ("*", "**", true),
        ("a*", "*b", true),
        ("a", "b", false),
    ];
    for (a, b, want) in cases {
        assert_eq!(p(a).intersects(&p(b)), want, "{a} vs {b}");
        assert_eq!(p(b).intersects(&p(a)), want, "{b} vs {a}");
    }
}

#[test]
fn wildcard_owner_examples() {
    let p = |s: &str| SubjectPattern::parse(s).unwrap();
    for bad in [
        "repo:*/infra:ref:main",
        "repo:**",
        "*:x",
        "**/a",
        "repo:con*/x:y",
    ] {
        assert!(p(bad).wildcard_owner(), "{bad}");
    }
    for good in [
        "repo:contoso/*:ref:refs/heads/main",
        "repo:contoso/**",
        "system:serviceaccount:*:*",
        "project_path:group/proj:ref_type:branch:ref:*",
    ] {
        assert!(!p(good).wildcard_owner(), "{good}");
    }
}

proptest! {
    #[test]
    fn intersects_agrees_with_enumeration(a in pattern_strategy(), b in pattern_strategy()) {
        let pa = SubjectPattern::parse(&a).unwrap();
        let pb = SubjectPattern::parse(&b).unwrap();
        let witnessed = all_subjects(4).iter().any(|s| pa.matches(s) && pb.matches(s));
        if witnessed {
            prop_assert!(pa.intersects(&pb), "{} and {} share a subject", a, b);
        }
        // Soundness the other way: when they intersect, the shortest witness is no longer than
        // the longer literal content plus one char per star; check within that bound.
        if pa.intersects(&pb) && a.len() + b.len() <= 4 {
            prop_assert!(witnessed, "{} and {} said to intersect", a, b);
        }
    }
}
