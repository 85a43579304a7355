//! Findings: what a check proves, with the control it concerns and the path that explains it.

use std::fmt;

use rampart_core::ControlId;
use serde::Serialize;

/// How bad a finding is. `Warning` marks doubts about the input (a dangling reference, a
/// value unknown until apply); it never fails a run on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The promise of the page is broken in a way an attacker can use.
    High,
    /// The promise is broken, or one step from being broken.
    Medium,
    /// Hygiene: worth fixing, not a broken promise by itself.
    Low,
    /// The input is incomplete or inconsistent; the result may be wrong.
    Warning,
}

impl Severity {
    /// Whether a finding of this severity fails `rampart net check` (exit 1).
    pub fn is_violation(self) -> bool {
        !matches!(self, Self::Warning)
    }

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Medium => "medium",
            Self::Low => "low",
            Self::Warning => "warning",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of an explanation: a resource and what it did to the traffic, in the style of
/// Reachability Analyzer's explanations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hop {
    /// The resource (interface, route table, network ACL, security group, peering…).
    pub resource: String,
    /// What it contributed: the rule or route that admitted the traffic, or why it stopped.
    pub detail: String,
}

impl Hop {
    /// A hop.
    pub fn new(resource: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.resource, self.detail)
    }
}

/// A stable rule of the checker, as SARIF and the JSON output name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Rule {
    /// A stable id such as `NET-2/cross-environment-flow`.
    pub id: &'static str,
    /// One sentence: what the rule checks.
    pub summary: &'static str,
    /// The CIS AWS Foundations Benchmark v3.0.0 recommendation, where one applies.
    pub cis: Option<&'static str>,
}

/// One result of a check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule that produced it.
    pub rule: Rule,
    /// The control of the security page it concerns, if any (input warnings have none).
    pub control: Option<ControlId>,
    /// Other controls the same fact breaks (an exposed SSH port is ACC-4 and ACC-5).
    pub related: Vec<ControlId>,
    /// How bad it is.
    pub severity: Severity,
    /// The resource it is about.
    pub resource: String,
    /// The input file it came from, where known (for SARIF locations).
    pub file: Option<String>,
    /// What is wrong, in one or two sentences.
    pub message: String,
    /// The explaining path, source first.
    pub path: Vec<Hop>,
}

impl Finding {
    /// A finding without a path.
    pub fn new(
        rule: Rule,
        control: Option<ControlId>,
        severity: Severity,
        resource: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            rule,
            control,
            related: Vec::new(),
            severity,
            resource: resource.into(),
            file: None,
            message: message.into(),
            path: Vec::new(),
        }
    }

    /// Adds the explaining path.
    pub fn with_path(mut self, path: Vec<Hop>) -> Self {
        self.path = path;
        self
    }

    /// Adds related controls.
    pub fn with_related(mut self, related: &[ControlId]) -> Self {
        self.related = related.to_vec();
        self
    }

    /// Names the input file.
    pub fn in_file(mut self, file: impl Into<String>) -> Self {
        self.file = Some(file.into());
        self
    }

    /// Whether the finding concerns `control`, directly or as a related control.
    pub fn concerns(&self, control: ControlId) -> bool {
        self.control == Some(control) || self.related.contains(&control)
    }
}

/// The rules, in one place so SARIF can list them all.
pub mod rules {
    use super::Rule;

    macro_rules! rules {
        ($($name:ident = $id:literal, $cis:expr, $summary:literal;)*) => {
            $(
                #[doc = $summary]
                pub const $name: Rule = Rule { id: $id, summary: $summary, cis: $cis };
            )*
            /// Every rule.
            pub const ALL: &[Rule] = &[$($name),*];
        };
    }

    rules! {
        VPC_WITHOUT_ENVIRONMENT = "NET-1/vpc-without-environment", None,
            "Every VPC belongs to exactly one environment.";
        ENVIRONMENT_CONFLICT = "NET-1/environment-conflict", None,
            "A VPC's environment tag agrees with the configured mapping.";
        MIXED_ENVIRONMENTS = "NET-1/mixed-environments", None,
            "Resources of one environment do not live in another environment's VPC.";
        UNDECLARED_PEERING = "NET-1/undeclared-peering", None,
            "Every VPC peering is declared in the configuration.";
        CROSS_ENVIRONMENT_FLOW = "NET-2/cross-environment-flow", None,
            "No traffic can flow between two different environments.";
        PUBLIC_RESOURCE = "ACC-4/public-resource", None,
            "Only the declared front door is reachable from the internet.";
        PORT_OUTSIDE_ALLOW_LIST = "NET-3/port-outside-allow-list", None,
            "The front door exposes only the allowed ports to the internet.";
        ADMIN_PORT_BYPASSES_GATEWAY = "ACC-5/admin-port-bypasses-gateway", None,
            "Administrative ports are reachable only from the gateway.";
        PROVIDER_CAN_REACH_US = "EXT-2/provider-can-reach-us", None,
            "The database provider cannot open connections to our resources.";
        NO_FLOW_TO_PROVIDER = "EXT-2/no-flow-to-provider", None,
            "Each environment peered with the provider reaches its database ports.";
        PROVIDER_PEERING_MISSING = "EXT-2/provider-peering-missing", None,
            "The declared provider peering exists in the inventory.";
        DEFAULT_GROUP_ALLOWS_TRAFFIC = "CIS-5.4/default-security-group-allows-traffic",
            Some("CIS AWS Foundations v3.0.0 5.4"),
            "The default security group of every VPC restricts all traffic.";
        ADMIN_PORT_OPEN_TO_WORLD = "CIS-5.2/admin-port-open-to-world",
            Some("CIS AWS Foundations v3.0.0 5.2, 5.3"),
            "No security group admits 0.0.0.0/0 or ::/0 on an administrative port.";
        NACL_ADMIN_PORT_OPEN_TO_WORLD = "CIS-5.1/nacl-admin-port-open-to-world",
            Some("CIS AWS Foundations v3.0.0 5.1"),
            "No network ACL admits 0.0.0.0/0 on an administrative port.";
        PEERING_ROUTE_TOO_WIDE = "CIS-5.5/peering-route-too-wide",
            Some("CIS AWS Foundations v3.0.0 5.5"),
            "Routes through a peering cover only the peer's address blocks.";
        DANGLING_REFERENCE = "input/dangling-reference", None,
            "Every id the inventory references exists in it.";
        UNKNOWN_UNTIL_APPLY = "input/unknown-until-apply", None,
            "Values of a Terraform plan known only after apply are not guessed.";
        UNRESOLVED_PREFIX_LIST = "input/unresolved-prefix-list", None,
            "Prefix lists referenced by rules are listed in the configuration.";
        NOT_MODELLED = "input/not-modelled", None,
            "Route targets rampart does not model (transit gateways, endpoints) are reported.";
    }
}
