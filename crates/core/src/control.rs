//! The controls of the security page (`shared/docs/controls.md`), one id per statement.

use serde::{Deserialize, Serialize};

/// The section of the security page a control belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ControlSection {
    /// "Encryption".
    Encryption,
    /// "Monitoring and Logging".
    Logging,
    /// "Database Backups".
    Backups,
    /// "Access Control".
    AccessControl,
    /// "Network security".
    Network,
    /// "External accesses to our infrastructure".
    External,
}

impl ControlSection {
    /// The heading as the page prints it.
    pub fn title(self) -> &'static str {
        match self {
            Self::Encryption => "Encryption",
            Self::Logging => "Monitoring and Logging",
            Self::Backups => "Database Backups",
            Self::AccessControl => "Access Control",
            Self::Network => "Network security",
            Self::External => "External accesses to our infrastructure",
        }
    }
}

macro_rules! controls {
    ($( $variant:ident = $id:literal, $section:ident, $statement:literal; )*) => {
        /// One statement of the security page, as a control with a stable id.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum ControlId {
            $(
                #[doc = $statement]
                #[serde(rename = $id)]
                $variant,
            )*
        }

        impl ControlId {
            /// Every control, in the order of the page.
            pub const ALL: &'static [ControlId] = &[$(ControlId::$variant),*];

            /// The stable id, such as `ENC-2`.
            pub fn id(self) -> &'static str {
                match self { $(ControlId::$variant => $id,)* }
            }

            /// What the page promises, paraphrased.
            pub fn statement(self) -> &'static str {
                match self { $(ControlId::$variant => $statement,)* }
            }

            /// The section of the page.
            pub fn section(self) -> ControlSection {
                match self { $(ControlId::$variant => ControlSection::$section,)* }
            }

            /// Parses an id such as `ACC-2`.
            pub fn parse(id: &str) -> Option<Self> {
                match id { $($id => Some(ControlId::$variant),)* _ => None }
            }
        }
    };
}

controls! {
    Enc1 = "ENC-1", Encryption, "We use encryption everywhere we can.";
    Enc2 = "ENC-2", Encryption, "The application is HTTPS-only; HTTP requests are redirected to HTTPS.";
    Enc3 = "ENC-3", Encryption, "Teams reach the infrastructure with SSH.";
    Log1 = "LOG-1", Logging, "Application logs are collected and stored continuously.";
    Log2 = "LOG-2", Logging, "Logs never contain user information.";
    Log3 = "LOG-3", Logging, "Internal access by employees is monitored.";
    Log4 = "LOG-4", Logging, "Changes to databases are monitored.";
    Log5 = "LOG-5", Logging, "Application logs are kept between 15 and 30 days.";
    Bak1 = "BAK-1", Backups, "A base backup every 6 hours, kept 2 to 5 days.";
    Bak2 = "BAK-2", Backups, "Daily backups kept 7 to 365 days.";
    Bak3 = "BAK-3", Backups, "Weekly backups kept 4 to 52 weeks.";
    Bak4 = "BAK-4", Backups, "Monthly backups kept 13 to 36 months.";
    Bak5 = "BAK-5", Backups, "Access to backups is monitored and restricted to developers and infrastructure.";
    Acc1 = "ACC-1", AccessControl, "One unique account per person for internal tools.";
    Acc2 = "ACC-2", AccessControl, "MFA is enforced where possible.";
    Acc3 = "ACC-3", AccessControl, "Least privilege for services and people.";
    Acc4 = "ACC-4", AccessControl, "Most infrastructure is not visible from the internet.";
    Acc5 = "ACC-5", AccessControl, "Internal servers are reached through a gateway.";
    Acc6 = "ACC-6", AccessControl, "The gateway is restricted to a subset of employees.";
    Acc7 = "ACC-7", AccessControl, "Gateway access is reviewed frequently to detect intrusion and abuse.";
    Net1 = "NET-1", Network, "Environments live in separate networks, linked only by explicit peerings.";
    Net2 = "NET-2", Network, "Environments never communicate with each other.";
    Net3 = "NET-3", Network, "The attack surface is minimal: fewest ports, private where possible.";
    Ext1 = "EXT-1", External, "Third parties must request access before touching data or servers.";
    Ext2 = "EXT-2", External, "The peering with the database provider is one-way.";
}

impl std::fmt::Display for ControlId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_twenty_five_controls_with_unique_ids() {
        assert_eq!(ControlId::ALL.len(), 25);
        let mut ids: Vec<_> = ControlId::ALL.iter().map(|c| c.id()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 25);
    }

    #[test]
    fn ids_round_trip_through_parse() {
        for c in ControlId::ALL {
            assert_eq!(ControlId::parse(c.id()), Some(*c));
        }
        assert_eq!(ControlId::parse("ENC-9"), None);
    }
}
