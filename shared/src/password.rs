//! Passwords: argon2id hashing under a policy, verification in constant time, upgrade of
//! weaker stored hashes at login, and the rules new passwords must meet.

use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash as Phc};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use std::fmt;

/// Longest password we hash (bytes). Longer input is refused before any work is done.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Which argon2id parameters to use (see `HashingPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashProfile {
    /// OWASP's minimum: 19 MiB, t=2, p=1. The default.
    Production,
    /// Cheap parameters for test suites only; logged loudly at start.
    InsecureTest,
}

/// The policy new passwords must meet unless `PASSWORD_POLICY` says otherwise.
pub const DEFAULT_POLICY: &str = "min=8,max=128";

/// A stored argon2 hash in PHC form. Its `Debug` never prints the material.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wrap a PHC string read from storage (checked when used).
    pub fn from_stored(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string, for storage only.
    pub fn as_stored(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

/// argon2id parameters, production or (for tests only) cheap.
#[derive(Clone)]
pub struct HashingPolicy {
    params: Params,
    dummy: PasswordHash,
}

impl fmt::Debug for HashingPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "HashingPolicy(m={}, t={}, p={})",
            self.params.m_cost(),
            self.params.t_cost(),
            self.params.p_cost()
        )
    }
}

#[derive(Debug)]
pub struct HashError(String);

impl fmt::Display for HashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "password hashing failed: {}", self.0)
    }
}

impl std::error::Error for HashError {}

impl HashingPolicy {
    /// OWASP's argon2id minimum: m = 19 MiB, t = 2, p = 1.
    pub fn production() -> Self {
        Self::with_costs(
            Params::DEFAULT_M_COST,
            Params::DEFAULT_T_COST,
            Params::DEFAULT_P_COST,
        )
    }

    /// Cheap parameters that keep test suites quick. Never for production.
    pub fn insecure_for_tests() -> Self {
        Self::with_costs(256, 1, 1)
    }

    pub fn for_profile(profile: HashProfile) -> Self {
        match profile {
            HashProfile::Production => Self::production(),
            HashProfile::InsecureTest => Self::insecure_for_tests(),
        }
    }

    fn with_costs(m: u32, t: u32, p: u32) -> Self {
        // The costs above are constants within argon2's limits, so this cannot fail; fall back
        // to argon2's own defaults rather than panic if a future release tightens them.
        let params = Params::new(m, t, p, None).unwrap_or_default();
        let dummy = Self::dummy_for(&params);
        Self { params, dummy }
    }

    /// A well-formed hash with these parameters that no password matches. Verifying against it
    /// costs exactly what a real verify costs, so unknown emails take as long as known ones.
    fn dummy_for(params: &Params) -> PasswordHash {
        let b64 = base64::engine::general_purpose::STANDARD_NO_PAD;
        PasswordHash(format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            params.m_cost(),
            params.t_cost(),
            params.p_cost(),
            b64.encode(b"portcullis-dummy"),
            b64.encode([0u8; 32]),
        ))
    }

    fn hasher(&self) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone())
    }

    pub fn hash(&self, password: &str) -> Result<PasswordHash, HashError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(HashError("password too long".into()));
        }
        self.hasher()
            .hash_password(password.as_bytes())
            .map(|phc| PasswordHash(phc.to_string()))
            .map_err(|e| HashError(e.to_string()))
    }

    /// Constant-time check of `password` against `stored`. A malformed stored hash is `false`.
    /// The stored hash's own parameters are used, so hashes made under older policies verify.
    pub fn verify(&self, password: &str, stored: &PasswordHash) -> bool {
        if password.len() > MAX_PASSWORD_BYTES {
            return false;
        }
        match Phc::new(&stored.0) {
            Ok(phc) => self
                .hasher()
                .verify_password(password.as_bytes(), &phc)
                .is_ok(),
            Err(_) => false,
        }
    }

    /// Burn one verification's worth of work (for unknown emails).
    pub fn verify_dummy(&self, password: &str) {
        let _ = self.verify(password, &self.dummy);
    }

    /// Whether `stored` was made with weaker parameters (or another algorithm) than the policy.
    pub fn needs_rehash(&self, stored: &PasswordHash) -> bool {
        let Ok(phc) = Phc::new(&stored.0) else {
            return true;
        };
        if phc.algorithm.as_str() != "argon2id" {
            return true;
        }
        match Params::try_from(&phc) {
            Ok(p) => {
                p.m_cost() < self.params.m_cost()
                    || p.t_cost() < self.params.t_cost()
                    || p.p_cost() < self.params.p_cost()
            }
            Err(_) => true,
        }
    }
}

/// The rules a new password must meet, parsed from `PASSWORD_POLICY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordRules {
    pub min_len: usize,
    pub max_len: usize,
    pub upper: bool,
    pub lower: bool,
    pub digit: bool,
    pub special: bool,
}

/// The default follows NIST SP 800-63B §3.1.1.2: at least 8 characters, up to 128 (every
/// character allowed, spaces included), NO composition rules (they push people to
/// `Password1!`), and the list of common and breached passwords (`check_new`) instead.
/// `PASSWORD_POLICY` can add composition rules for deployments that must have them.
impl Default for PasswordRules {
    fn default() -> Self {
        Self {
            min_len: 8,
            max_len: 128,
            upper: false,
            lower: false,
            digit: false,
            special: false,
        }
    }
}

impl PasswordRules {
    /// `min=8,max=128,upper,lower,digit,special` — any subset; unknown words are errors.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut rules = Self {
            min_len: 8,
            max_len: 128,
            upper: false,
            lower: false,
            digit: false,
            special: false,
        };
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once('=') {
                Some(("min", n)) => {
                    rules.min_len = n.parse().map_err(|_| format!("bad min length {n:?}"))?
                }
                Some(("max", n)) => {
                    rules.max_len = n.parse().map_err(|_| format!("bad max length {n:?}"))?
                }
                None if part == "upper" => rules.upper = true,
                None if part == "lower" => rules.lower = true,
                None if part == "digit" => rules.digit = true,
                None if part == "special" => rules.special = true,
                _ => return Err(format!("unknown rule {part:?}")),
            }
        }
        if rules.min_len == 0 || rules.min_len > rules.max_len || rules.max_len > MAX_PASSWORD_BYTES
        {
            return Err("lengths must satisfy 1 <= min <= max <= 1024".into());
        }
        Ok(rules)
    }

    /// A password being set (sign-up, change, reset, the CLI): the rules, and not one of the
    /// common or breached passwords (`crate::breached`).
    pub fn check_new(&self, password: &str) -> Result<(), String> {
        self.check(password)?;
        if crate::breached::is_common(password) {
            return Err(
                "is one of the most common passwords (found in breaches); choose another".into(),
            );
        }
        Ok(())
    }

    /// `Ok` or the unmet rules, in words (never the password).
    pub fn check(&self, password: &str) -> Result<(), String> {
        let mut unmet = Vec::new();
        let chars = password.chars().count();
        if chars < self.min_len {
            unmet.push(format!("at least {} characters", self.min_len));
        }
        if chars > self.max_len {
            unmet.push(format!("at most {} characters", self.max_len));
        }
        if self.upper && !password.chars().any(char::is_uppercase) {
            unmet.push("an upper-case letter".into());
        }
        if self.lower && !password.chars().any(char::is_lowercase) {
            unmet.push("a lower-case letter".into());
        }
        if self.digit && !password.chars().any(|c| c.is_ascii_digit()) {
            unmet.push("a digit".into());
        }
        if self.special
            && !password
                .chars()
                .any(|c| !c.is_alphanumeric() && !c.is_whitespace())
        {
            unmet.push("a special character".into());
        }
        if unmet.is_empty() {
            Ok(())
        } else {
            Err(format!("needs {}", unmet.join(", ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_verifies_the_right_password_only() {
        let policy = HashingPolicy::insecure_for_tests();
        let hash = policy.hash("Correct-horse-1").unwrap();
        assert!(
            hash.as_stored()
                .starts_with("$argon2id$v=19$m=256,t=1,p=1$")
        );
        assert!(policy.verify("Correct-horse-1", &hash));
        assert!(!policy.verify("correct-horse-1", &hash));
        assert!(!policy.verify("", &hash));
        assert!(!policy.verify(
            "Correct-horse-1",
            &PasswordHash::from_stored("not a hash".into())
        ));
    }

    #[test]
    fn production_parameters_are_at_least_owasp() {
        let policy = HashingPolicy::production();
        assert!(policy.params.m_cost() >= 19 * 1024);
        assert!(policy.params.t_cost() >= 2);
        assert_eq!(policy.params.p_cost(), 1);
        assert!(
            policy
                .dummy
                .as_stored()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
    }

    #[test]
    fn weaker_hashes_need_rehash_and_equal_ones_do_not() {
        let weak = HashingPolicy::insecure_for_tests();
        let strong = HashingPolicy::production();
        let weak_hash = weak.hash("Pa55word!").unwrap();
        assert!(strong.needs_rehash(&weak_hash));
        assert!(!weak.needs_rehash(&weak_hash));
        // a weaker hash still verifies under the stronger policy (its own params are used)
        assert!(strong.verify("Pa55word!", &weak_hash));
        assert!(strong.needs_rehash(&PasswordHash::from_stored("garbage".into())));
        let argon2i = "$argon2i$v=19$m=19456,t=2,p=1$cG9ydGN1bGxpcy1kdW1teQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert!(strong.needs_rehash(&PasswordHash::from_stored(argon2i.into())));
    }

    #[test]
    fn dummy_hash_is_well_formed_and_matches_nothing() {
        let policy = HashingPolicy::insecure_for_tests();
        assert!(Phc::new(policy.dummy.as_stored()).is_ok());
        assert!(!policy.verify("", &policy.dummy));
        assert!(!policy.verify("Correct-horse-1", &policy.dummy));
    }

    #[test]
    fn overlong_passwords_are_refused_without_hashing() {
        let policy = HashingPolicy::insecure_for_tests();
        let long = "A1!a".repeat(300);
        assert!(policy.hash(&long).is_err());
        let hash = policy.hash("Correct-horse-1").unwrap();
        assert!(!policy.verify(&long, &hash));
    }

    #[test]
    fn debug_never_prints_hash_material() {
        let hash = HashingPolicy::insecure_for_tests()
            .hash("Correct-horse-1")
            .unwrap();
        let printed = format!("{hash:?}");
        assert_eq!(printed, "PasswordHash(<redacted>)");
        assert!(!printed.contains("argon2"));
    }

    #[test]
    fn default_rules_follow_nist_length_over_composition() {
        let rules = PasswordRules::parse(DEFAULT_POLICY).unwrap();
        assert_eq!(rules, PasswordRules::default());
        for fine in ["Str0ng!pass", "all lower case words", "correcthorsebattery"] {
            assert!(rules.check_new(fine).is_ok(), "{fine}");
        }
        assert_eq!(
            rules.check("Sh0rt!").unwrap_err(),
            "needs at least 8 characters"
        );
        // Common and breached passwords are refused whatever their composition.
        for common in ["password", "Password1", "qwertyuiop", "iloveyou"] {
            assert!(rules.check_new(common).is_err(), "{common}");
        }
        assert!(rules.check_new(&"x".repeat(129)).is_err());
        // Composition rules remain available.
        let strict = PasswordRules::parse("min=8,upper,lower,digit,special").unwrap();
        assert_eq!(
            strict.check("abc").unwrap_err(),
            "needs at least 8 characters, an upper-case letter, a digit, a special character"
        );
    }

    #[test]
    fn rules_are_configurable() {
        let rules = PasswordRules::parse("min=12,digit").unwrap();
        assert!(rules.check("twelve chars1").is_ok());
        assert!(rules.check("short1").is_err());
        assert!(PasswordRules::parse("min=0").is_err());
        assert!(PasswordRules::parse("min=9,max=8").is_err());
        assert!(PasswordRules::parse("emoji").is_err());
    }
}
