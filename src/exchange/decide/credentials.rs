//! The credential checks of a decision: issuer, audience, subject, condition, network and
//! proof of possession, in that order, and which matching credential of an identity is the most
//! specific. Pure, like the rest of `decide`; the parent module picks identities.

use super::*;

/// The most specific enforce-mode credential that matches the token (see [`specificity`];
/// declaration order breaks ties), or the furthest failure among them. Audit-mode credentials
/// are never looked at: they never grant (`exchange::explain::audit_mode` evaluates them).
pub(crate) fn match_credentials<'a>(
    credentials: &'a [FederatedCredential],
    token: &ValidatedToken,
    at: Situation<'_>,
) -> Result<&'a FederatedCredential, (MismatchStage, String)> {
    let mut best: Option<(MismatchStage, String)> = None;
    let mut chosen: Option<&'a FederatedCredential> = None;
    for credential in credentials
        .iter()
        .filter(|c| c.mode == CredentialMode::Enforce)
    {
        if chosen.is_some_and(|c| specificity(credential) <= specificity(c)) {
            continue;
        }
        match check_credential(credential, token, at) {
            Ok(()) => chosen = Some(credential),
            Err(miss) => keep_best(&mut best, miss),
        }
    }
    chosen.ok_or_else(|| {
        best.unwrap_or((
            MismatchStage::Issuer,
            "the identity has no federated credentials".to_string(),
        ))
    })
}

/// How specifically a credential names its subject: an exact `subject` (2) over a
/// `subjectPattern` (1) over a condition-only credential (0). When several credentials of one
/// identity match a token, the most specific one grants, so its lifetime, claim mappings and
/// one-time use apply whatever the declaration order.
pub(crate) fn specificity(credential: &FederatedCredential) -> u8 {
    match credential.subject {
        SubjectRule::Exact(_) => 2,
        SubjectRule::Pattern(_) => 1,
        SubjectRule::Any => 0,
    }
}

/// Keeps the failure that got furthest; the first one wins ties.
pub(crate) fn keep_best(best: &mut Option<(MismatchStage, String)>, miss: (MismatchStage, String)) {
    if best.as_ref().is_none_or(|(stage, _)| miss.0 > *stage) {
        *best = Some(miss);
    }
}

/// Checks one credential against the token and the request: issuer, audience, subject,
/// condition, then allowed networks and proof of possession.
///
/// An audit-mode credential never matches (it fails at the issuer, the stage that says the
/// least): the decision never gets one to check, and this keeps it so if that ever changes.
pub fn check_credential(
    credential: &FederatedCredential,
    token: &ValidatedToken,
    at: Situation<'_>,
) -> Result<(), (MismatchStage, String)> {
    #[cfg(test)]
    CHECKED.with(|n| n.set(n.get() + 1));
    if credential.mode != CredentialMode::Enforce {
        return Err((
            MismatchStage::Issuer,
            format!(
                "credential '{}' is in audit mode: it never grants",
                credential.name
            ),
        ));
    }
    check_issuer(credential, token)?;
    check_audience(credential, token)?;
    check_subject(credential, token)?;
    check_condition(credential, token, at)?;
    check_network(credential, at)?;
    check_proof(credential, at)
}

/// The credential trusts the token's issuer.
pub(crate) fn check_issuer(
    credential: &FederatedCredential,
    token: &ValidatedToken,
) -> Result<(), (MismatchStage, String)> {
    if credential.issuer != token.issuer_name {
        return Err((
            MismatchStage::Issuer,
            format!(
                "no federated credential trusts issuer '{}'",
                echo(&token.iss)
            ),
        ));
    }
    Ok(())
}

/// The token's `aud` intersects the credential's audiences.
pub(crate) fn check_audience(
    credential: &FederatedCredential,
    token: &ValidatedToken,
) -> Result<(), (MismatchStage, String)> {
    if !token
        .aud
        .iter()
        .any(|aud| credential.audiences.iter().any(|a| a == aud))
    {
        return Err((
            MismatchStage::Audience,
            format!(
                "the token's audience {} is not accepted by credential '{}' (expects {})",
                list(&token.aud),
                credential.name,
                list(&credential.audiences)
            ),
        ));
    }
    Ok(())
}

/// The token's `sub` equals `subject` or matches `subjectPattern`.
pub(crate) fn check_subject(
    credential: &FederatedCredential,
    token: &ValidatedToken,
) -> Result<(), (MismatchStage, String)> {
    let sub = token.sub.as_deref();
    let subject_ok = match (&credential.subject, sub) {
        (SubjectRule::Any, _) => true,
        (SubjectRule::Exact(want), Some(sub)) => want == sub,
        (SubjectRule::Pattern(pattern), Some(sub)) => pattern.matches(sub),
        (_, None) => false,
    };
    if !subject_ok {
        let wanted = match &credential.subject {
            SubjectRule::Exact(s) => format!("'{s}'"),
            SubjectRule::Pattern(p) => format!("pattern '{}'", p.as_str()),
            SubjectRule::Any => String::new(),
        };
        return Err((
            MismatchStage::Subject,
            format!(
                "subject '{}' does not match {wanted} of credential '{}'",
                echo(sub.unwrap_or("")),
                credential.name
            ),
        ));
    }
    Ok(())
}

/// Every rule of the credential's CEL condition is true, evaluated with `request` bound to
/// the request's facts at `at.now`. The failing rule's message (or its source) is detail for
/// the audit trail and `policy explain`; callers are told the stage only.
pub(crate) fn check_condition(
    credential: &FederatedCredential,
    token: &ValidatedToken,
    at: Situation<'_>,
) -> Result<(), (MismatchStage, String)> {
    if credential.condition.is_empty() {
        return Ok(());
    }
    let vars = at.context.vars(at.now);
    for (k, rule) in credential.condition.iter().enumerate() {
        let failure = match rule.expression.eval_condition(&token.claims, &vars) {
            Ok(true) => continue,
            Ok(false) => "is false".to_string(),
            Err(e) => format!("could not be evaluated: {e}"),
        };
        // Words are built only for a failure: the granted path allocates nothing here.
        let which = if credential.condition.len() > 1 {
            format!("rule {} of the condition", k + 1)
        } else {
            "the condition".to_string()
        };
        let because = rule
            .message
            .as_deref()
            .map(|m| format!(": {}", crate::text::shown(m, MAX_MESSAGE)))
            .unwrap_or_default();
        return Err((
            MismatchStage::Condition,
            format!(
                "{which} of credential '{}' {failure}{because}",
                credential.name
            ),
        ));
    }
    Ok(())
}

/// The client address is inside one of the credential's `allowedNetworks` (when it has any).
/// An unknown address is inside none.
pub(crate) fn check_network(
    credential: &FederatedCredential,
    at: Situation<'_>,
) -> Result<(), (MismatchStage, String)> {
    if credential.allowed_networks.is_empty() {
        return Ok(());
    }
    let inside = at.context.client_ip.is_some_and(|ip| {
        credential
            .allowed_networks
            .iter()
            .any(|n| n.contains_ip(ip))
    });
    if inside {
        return Ok(());
    }
    let shown: Vec<String> = credential
        .allowed_networks
        .iter()
        .map(ToString::to_string)
        .collect();
    Err((
        MismatchStage::Network,
        format!(
            "client address {} is outside the allowedNetworks of credential '{}' {}",
            at.context
                .client_ip
                .map_or("(unknown)".to_string(), |ip| ip.to_string()),
            credential.name,
            list(&shown)
        ),
    ))
}

/// The request carried a valid DPoP proof when the credential requires one.
pub(crate) fn check_proof(
    credential: &FederatedCredential,
    at: Situation<'_>,
) -> Result<(), (MismatchStage, String)> {
    if credential.require_proof_of_possession && at.context.proof_key.is_none() {
        return Err((
            MismatchStage::ProofOfPossession,
            format!(
                "credential '{}' requires proof of possession and the request carried no DPoP \
                 proof",
                credential.name
            ),
        ));
    }
    Ok(())
}

// Credentials checked on this thread: the tests' structural measure of a decision's cost.
#[cfg(test)]
thread_local! {
    static CHECKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Runs `f` and counts the credentials it checked (through [`check_credential`]).
#[cfg(test)]
pub(crate) fn counted<R>(f: impl FnOnce() -> R) -> (R, usize) {
    CHECKED.with(|n| n.set(0));
    let out = f();
    (out, CHECKED.with(std::cell::Cell::get))
}
