use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The deployment environment stamped on every record (seed 002).
///
/// Read from the `ENVIRONMENT` variable; anything but the four names below is
/// an error rather than a silent default, so a typo in a deployment manifest is
/// found at start-up instead of in next month's report.
///
/// ```
/// use costtrace_core::Environment;
/// assert_eq!("production".parse::<Environment>().unwrap(), Environment::Production);
/// assert!("prod".parse::<Environment>().is_err());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Production,
    Staging,
    Cicd,
    #[default]
    Development,
}

impl Environment {
    pub const ALL: [Environment; 4] = [
        Environment::Production,
        Environment::Staging,
        Environment::Cicd,
        Environment::Development,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Production => "production",
            Environment::Staging => "staging",
            Environment::Cicd => "cicd",
            Environment::Development => "development",
        }
    }

    /// Reads `ENVIRONMENT`; unset or empty means `development`.
    pub fn from_env() -> Result<Self, EnvironmentError> {
        match std::env::var("ENVIRONMENT") {
            Ok(v) if v.trim().is_empty() => Ok(Environment::Development),
            Ok(v) => v.parse(),
            Err(std::env::VarError::NotPresent) => Ok(Environment::Development),
            Err(std::env::VarError::NotUnicode(_)) => Err(EnvironmentError {
                value: "<not UTF-8>".into(),
            }),
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `ENVIRONMENT` held a value that is not one of the four known names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "ENVIRONMENT is {value:?}, which is not a known environment: use one of production, staging, cicd, development"
)]
pub struct EnvironmentError {
    pub value: String,
}

impl FromStr for Environment {
    type Err = EnvironmentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Environment::ALL
            .into_iter()
            .find(|e| e.as_str() == s.trim())
            .ok_or_else(|| EnvironmentError {
                value: s.to_owned(),
            })
    }
}
