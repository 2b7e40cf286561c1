//! Platform presets: the safe defaults, issuer URL shapes and pinning advice of GitHub Actions,
//! GitLab CI, Kubernetes, Google, AWS and Microsoft Entra.
//!
//! Everything here is a pure function of the preset (and, where the platform has two kinds of
//! issuer, of the issuer URL). `compile` applies [`defaults`] to fields an Issuer leaves out and
//! reports [`check_issuer_url`] and [`ambiguous_issuer`] as load problems; a `policy check` lint
//! can read [`pinning_advice`] to tell what a well-pinned credential looks like. Nothing here
//! reads files, the network or the clock.
//!
//! The values come from each platform's documentation and from the decoded tokens kept in
//! `../shared/platform-claims` (see `docs/presets.md`): GitHub and AWS STS tokens live 5 min,
//! Google identity tokens at most 1 h, GitLab tokens as long as the job timeout, EKS projected
//! tokens 24 h, Entra managed-identity tokens about 24 h (up to 28 h for CAE-capable clients).

use std::time::Duration;

use serde::Deserialize;

/// Platform presets; each sets safe defaults for its platform's issuers. Policy files name
/// them in lowercase (`preset: github`), which is also what [`Preset::as_str`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Any OIDC issuer; no platform-specific defaults.
    #[default]
    Generic,
    /// GitHub Actions (github.com, GHEC enterprise issuers, GHES).
    Github,
    /// GitLab CI `id_tokens` (gitlab.com and self-managed).
    Gitlab,
    /// A Kubernetes service-account token issuer.
    Kubernetes,
    /// Google identity tokens (`https://accounts.google.com`).
    Gcp,
    /// AWS STS outbound federation and EKS issuers.
    Aws,
    /// Microsoft Entra v1 and v2 issuers.
    Azure,
}

impl Preset {
    /// The name used in policy files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::Github => "github",
            Self::Gitlab => "gitlab",
            Self::Kubernetes => "kubernetes",
            Self::Gcp => "gcp",
            Self::Aws => "aws",
            Self::Azure => "azure",
        }
    }
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

/// Defaults an Issuer of a preset gets for the fields it leaves out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PresetDefaults {
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// Longest accepted subject-token lifetime, `exp - iat`.
    pub max_token_lifetime: Duration,
    /// Oldest accepted subject token, `now - iat` (plus leeway).
    pub max_token_age: Duration,
    /// The header `typ` the platform always sets, if it sets one.
    pub required_type: Option<&'static str>,
}

/// What an issuer without a preset (or `generic`) gets.
pub const GENERIC_DEFAULTS: PresetDefaults = PresetDefaults {
    leeway: MINUTE,
    max_token_lifetime: Duration::from_secs(24 * 3600),
    max_token_age: Duration::from_secs(24 * 3600),
    required_type: None,
};

/// Defaults for an issuer of `preset` at `issuer` (the URL matters for `aws`, whose EKS cluster
/// issuers mint Kubernetes tokens: 24 h, no `typ`).
pub fn defaults(preset: Preset, issuer: &str) -> PresetDefaults {
    let day = Duration::from_secs(24 * 3600);
    match preset {
        Preset::Generic => GENERIC_DEFAULTS,
        // GitHub's token service clock runs a few seconds ahead (iat/nbf slightly in the
        // future); 30 s absorbs that while keeping a 5-minute token's window tight.
        Preset::Github => PresetDefaults {
            leeway: Duration::from_secs(30),
            max_token_lifetime: HOUR,
            max_token_age: 15 * MINUTE,
            required_type: Some("JWT"),
        },
        // Lifetime is the job timeout; self-managed instances keep their own clocks.
        Preset::Gitlab => PresetDefaults {
            leeway: MINUTE,
            max_token_lifetime: day,
            max_token_age: day,
            required_type: Some("JWT"),
        },
        // Projected tokens: 1 h by default, EKS 24 h; the kube-api-access token (1 year) is
        // refused by the lifetime cap, as it should be. The API server sets no `typ`.
        Preset::Kubernetes => PresetDefaults {
            leeway: MINUTE,
            max_token_lifetime: day,
            max_token_age: day,
            required_type: None,
        },
        Preset::Gcp => PresetDefaults {
            leeway: Duration::from_secs(30),
            max_token_lifetime: HOUR,
            max_token_age: HOUR,
            required_type: Some("JWT"),
        },
        Preset::Aws if is_eks_issuer(issuer) => defaults(Preset::Kubernetes, issuer),
        // GetWebIdentityToken: 60 s to 1 h, 300 s by default.
        Preset::Aws => PresetDefaults {
            leeway: Duration::from_secs(30),
            max_token_lifetime: HOUR,
            max_token_age: HOUR,
            required_type: Some("JWT"),
        },
        // Managed-identity tokens live about 24 h (observed 24 h 5 min); CAE-capable clients
        // get up to 28 h. Microsoft's own libraries tolerate 5 min of skew; 1 min is enough for
        // a service with a synchronised clock.
        Preset::Azure => PresetDefaults {
            leeway: MINUTE,
            max_token_lifetime: 28 * HOUR,
            max_token_age: 28 * HOUR,
            required_type: Some("JWT"),
        },
    }
}

// === URL shapes ===

/// `https://` stripped, split into authority and the path after it (`None` when the URL has no
/// `/` after the host at all, `Some("")` for a bare trailing slash).
fn split(issuer: &str) -> Option<(&str, Option<&str>)> {
    let rest = issuer.strip_prefix("https://")?;
    Some(match rest.split_once('/') {
        Some((authority, path)) => (authority, Some(path)),
        None => (rest, None),
    })
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_guid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, len)| g.len() == len && g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Whether `issuer` is an EKS cluster issuer, `https://oidc.eks.<region>.amazonaws.com/id/<id>`.
pub fn is_eks_issuer(issuer: &str) -> bool {
    let Some((host, Some(path))) = split(issuer) else {
        return false;
    };
    let region = host
        .strip_prefix("oidc.eks.")
        .and_then(|h| {
            h.strip_suffix(".amazonaws.com")
                .or_else(|| h.strip_suffix(".amazonaws.com.cn"))
        })
        .filter(|r| is_label(r));
    let id = path
        .strip_prefix("id/")
        .filter(|id| id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()));
    region.is_some() && id.is_some()
}

fn is_aws_sts_issuer(issuer: &str) -> bool {
    matches!(split(issuer), Some((host, None))
        if host.strip_suffix(".tokens.sts.global.api.aws").is_some_and(is_label))
}

fn github_shape(issuer: &str) -> bool {
    let Some((host, path)) = split(issuer) else {
        return false;
    };
    let github_com = host == "token.actions.githubusercontent.com";
    let ghe_com = host
        .strip_prefix("token.actions.")
        .and_then(|h| h.strip_suffix(".ghe.com"))
        .is_some_and(is_label);
    match path {
        // The base issuer, or the enterprise issuer with one slug segment.
        None => github_com || ghe_com,
        Some(slug) if github_com || ghe_com => is_label(slug),
        // GitHub Enterprise Server: the appliance's token service.
        Some(path) => path == "_services/token",
    }
}

fn azure_shape(issuer: &str) -> bool {
    match split(issuer) {
        Some(("sts.windows.net", Some(path))) => path
            .strip_suffix('/')
            .is_some_and(|tid| is_guid(tid) && !tid.contains('/')),
        Some(("login.microsoftonline.com", Some(path))) => {
            path.strip_suffix("/v2.0").is_some_and(is_guid)
        }
        _ => false,
    }
}

/// Checks that `issuer` has the shape `preset`'s platform gives its issuers. Only called for
/// issuers not marked `allowInsecureHttp` (loopback test issuers stand in for platforms).
///
/// Errors: a message naming the accepted shapes.
pub fn check_issuer_url(preset: Preset, issuer: &str) -> Result<(), String> {
    let ok = match preset {
        Preset::Generic | Preset::Kubernetes => true,
        Preset::Gitlab => issuer.starts_with("https://"),
        Preset::Github => github_shape(issuer),
        Preset::Gcp => issuer == "https://accounts.google.com",
        Preset::Aws => is_aws_sts_issuer(issuer) || is_eks_issuer(issuer),
        Preset::Azure => azure_shape(issuer),
    };
    if ok {
        return Ok(());
    }
    let shapes = match preset {
        Preset::Github => {
            "https://token.actions.githubusercontent.com, \
             https://token.actions.githubusercontent.com/<enterprise> (GHEC unique issuer), \
             https://token.actions.<subdomain>.ghe.com[/<enterprise>], or \
             https://<host>/_services/token (GitHub Enterprise Server)"
        }
        Preset::Gcp => {
            "exactly https://accounts.google.com (GKE cluster issuers under \
             container.googleapis.com use preset: kubernetes)"
        }
        Preset::Aws => {
            "https://<id>.tokens.sts.global.api.aws (STS outbound federation) or \
             https://oidc.eks.<region>.amazonaws.com/id/<32 hex> (EKS)"
        }
        Preset::Azure => {
            "https://sts.windows.net/<tenant-guid>/ (v1 tokens) or \
             https://login.microsoftonline.com/<tenant-guid>/v2.0 (v2 tokens); a tenant id, \
             never common/organizations"
        }
        Preset::Gitlab => "an https instance URL such as https://gitlab.com",
        Preset::Generic | Preset::Kubernetes => "any https URL",
    };
    Err(format!(
        "{issuer:?} is not an issuer of preset {}: expected {shapes} (issuer URL shapes are not \
         checked when allowInsecureHttp: true)",
        preset.as_str()
    ))
}

/// Whether `issuer` names the in-cluster API server (`https://kubernetes.default.svc`,
/// `...svc.cluster.local` and the like), an issuer countless clusters share: its tokens only
/// identify a cluster when its keys are pinned with `jwksFile`.
pub fn ambiguous_issuer(issuer: &str) -> bool {
    let Ok(url) = url::Url::parse(issuer) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    matches!(
        host.as_str(),
        "kubernetes" | "kubernetes.default" | "kubernetes.default.svc"
    ) || host.starts_with("kubernetes.default.svc.")
        || host == "cluster.local"
        || host.ends_with(".cluster.local")
}

// === pinning advice ===

/// What a well-pinned federated credential looks like for one platform: input for a
/// `policy check` lint and for the documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinningAdvice {
    /// The preset.
    pub preset: Preset,
    /// Immutable claims a credential should pin (in `subject` or `condition`).
    pub pin_claims: &'static [&'static str],
    /// Claims that must not carry trust on their own (name-based, reusable, caller-chosen).
    pub weak_claims: &'static [&'static str],
    /// Subject forms the platform issues (`*` marks a variable part).
    pub subject_forms: &'static [&'static str],
    /// Advice lines, each one sentence.
    pub advice: &'static [&'static str],
}

const GENERIC_ADVICE: PinningAdvice = PinningAdvice {
    preset: Preset::Generic,
    pin_claims: &["sub"],
    weak_claims: &[],
    subject_forms: &[],
    advice: &[
        "Require an audience dedicated to trustbridge.",
        "Pin sub exactly, or the issuer's immutable identifiers in a condition.",
    ],
};

const ADVICE: [PinningAdvice; 7] = [
    GENERIC_ADVICE,
    PinningAdvice {
        preset: Preset::Github,
        pin_claims: &["repository_owner_id", "repository_id"],
        weak_claims: &[
            "repository",
            "repository_owner",
            "actor",
            "actor_id",
            "job_workflow_ref",
        ],
        subject_forms: &[
            "repo:OWNER/REPO:ref:refs/heads/BRANCH",
            "repo:OWNER/REPO:environment:ENV",
            "repo:OWNER/REPO:pull_request",
            "repo:OWNER@OWNER_ID/REPO@REPO_ID:ref:refs/heads/BRANCH",
        ],
        advice: &[
            "Require trustbridge's own audience, not the default https://github.com/OWNER.",
            "Pin repository_owner_id and repository_id (decimal strings: compare as strings); \
             owner and repository names can be renamed or re-registered.",
            "Narrow with the ref, environment or event_name part of sub.",
            "Never grant deploy rights to ...:pull_request subjects.",
            "To require a reusable workflow, pin job_workflow_ref together with \
             job_workflow_sha.",
        ],
    },
    PinningAdvice {
        preset: Preset::Gitlab,
        pin_claims: &["project_id", "namespace_id"],
        weak_claims: &["project_path", "namespace_path", "user_login", "user_email"],
        subject_forms: &["project_path:GROUP/PROJECT:ref_type:branch:ref:BRANCH"],
        advice: &[
            "Require trustbridge's own audience (the job's id_tokens aud).",
            "Pin project_id (or namespace_id for a group), numeric strings; prefer \
             job_project_id where present (fork merge requests).",
            "For anything that deploys, require ref_protected == \"true\" or \
             environment_protected == \"true\".",
        ],
    },
    PinningAdvice {
        preset: Preset::Kubernetes,
        pin_claims: &["sub"],
        weak_claims: &["kubernetes.io.pod.uid", "kubernetes.io.node.name"],
        subject_forms: &["system:serviceaccount:NAMESPACE:SERVICEACCOUNT"],
        advice: &[
            "Require an audience dedicated to trustbridge: that also refuses the default \
             kube-api-access token (API-server audience, one-year lifetime).",
            "The identity is iss + namespace + service account, exactly what sub encodes; pin \
             sub or kubernetes.io.namespace and kubernetes.io.serviceaccount.name.",
            "Never pin pod or node names or uids: they change on every reschedule.",
        ],
    },
    PinningAdvice {
        preset: Preset::Gcp,
        pin_claims: &["sub"],
        weak_claims: &["email", "google.compute_engine.instance_name"],
        subject_forms: &["NUMERIC_SERVICE_ACCOUNT_ID"],
        advice: &[
            "https://accounts.google.com is shared by every Google customer: always pin sub, \
             the service account's unique numeric id.",
            "Do not pin email: names can be reused after deletion.",
            "For VM binding use google.compute_engine.instance_id and project_number.",
        ],
    },
    PinningAdvice {
        preset: Preset::Aws,
        pin_claims: &["sub", "https://sts.amazonaws.com/.aws_account"],
        weak_claims: &[
            "https://sts.amazonaws.com/.request_tags",
            "https://sts.amazonaws.com/.principal_tags",
        ],
        subject_forms: &[
            "arn:aws:iam::ACCOUNT:role/ROLE",
            "system:serviceaccount:NAMESPACE:SERVICEACCOUNT",
        ],
        advice: &[
            "Pin the account-specific issuer and trustbridge's own audience.",
            "Check sub (the role ARN) together with aws_account, and org_id for org-wide \
             policies: role ARNs are name-based.",
            "Never authorise on request_tags: the caller chooses them.",
            "For EKS issuers, follow the Kubernetes advice and never accept aud \
             sts.amazonaws.com.",
        ],
    },
    PinningAdvice {
        preset: Preset::Azure,
        pin_claims: &["tid", "oid"],
        weak_claims: &["xms_mirid", "xms_az_rid"],
        subject_forms: &["OBJECT_ID"],
        advice: &[
            "Pin tid and oid (the identity's immutable object id); appid/azp is a good second \
             check.",
            "xms_mirid and xms_az_rid are built from reusable resource names: log them, do \
             not trust them.",
            "A system-assigned identity gets a new oid whenever its resource is recreated.",
        ],
    },
];

/// The pinning advice for `preset`.
pub fn pinning_advice(preset: Preset) -> &'static PinningAdvice {
    ADVICE
        .iter()
        .find(|a| a.preset == preset)
        .unwrap_or(&ADVICE[0])
}

#[cfg(test)]
mod tests;
