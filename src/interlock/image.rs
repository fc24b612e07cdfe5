//! Interlock's images and what `upgrade` does to them. Pure.
//!
//! Interlock runs four images, one per role: `ucp-interlock` (the core),
//! `ucp-interlock-extension`, `ucp-interlock-proxy` and `ucp-interlock-config`, under the org
//! `docker/` (UCP) or `mirantis/` (MKE 3.3+), tagged with the UCP/MKE version. An upgrade
//! moves each image to the same name with another tag (and, with `--repository`, another
//! org), so a registry mirror's host or a private org stays what it was. References are
//! read with the docker reference grammar (`[host[:port]/]path[:tag][@digest]`); a tag is
//! `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.

use std::fmt;

/// The repository names (last path component) of Interlock's images.
pub const INTERLOCK_IMAGES: [&str; 4] = [
    "ucp-interlock",
    "ucp-interlock-extension",
    "ucp-interlock-proxy",
    "ucp-interlock-config",
];

/// The config keys of an extension that name an image.
pub const IMAGE_KEYS: [&str; 3] = ["Image", "ProxyImage", "ConfigImage"];

/// An image reference split as the docker reference grammar does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Everything before the tag: `[host[:port]/]path`.
    pub name: String,
    /// The tag, if any.
    pub tag: Option<String>,
    /// The digest (`sha256:...`), if any.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Splits `reference`; `None` for an image ID (`sha256:...`) or an empty string.
    pub fn parse(reference: &str) -> Option<ImageRef> {
        if reference.is_empty() || reference.starts_with("sha256:") {
            return None;
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest.to_owned())),
            None => (reference, None),
        };
        // A colon after the last slash starts the tag; one before it is a registry port.
        let last_slash = rest.rfind('/').map_or(0, |at| at + 1);
        let (name, tag) = match rest[last_slash..].split_once(':') {
            Some((repository, tag)) => (
                format!("{}{repository}", &rest[..last_slash]),
                Some(tag.to_owned()),
            ),
            None => (rest.to_owned(), None),
        };
        Some(ImageRef { name, tag, digest })
    }

    /// The last path component: `ucp-interlock-proxy` for `docker/ucp-interlock-proxy`.
    pub fn repository(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }

    /// The org: the path component before the repository (`mirantis` for
    /// `registry:5000/mirantis/ucp-agent`), what `upgrade --repository` replaces; `None`
    /// for a name without one.
    pub fn org(&self) -> Option<&str> {
        let (prefix, _) = self.name.rsplit_once('/')?;
        prefix.rsplit('/').next()
    }

    /// Whether this is one of Interlock's images.
    pub fn is_interlock(&self) -> bool {
        INTERLOCK_IMAGES.contains(&self.repository())
    }

    /// The same image with tag `version`, its org replaced by `repository` when given, and
    /// no digest (the digest pins the old version).
    pub fn moved(&self, target: &Upgrade) -> ImageRef {
        let name = match &target.repository {
            Some(org) => match self.name.rsplit_once('/') {
                Some((prefix, repository)) => match prefix.rsplit_once('/') {
                    // A registry host (or more path) stays; only the org is replaced.
                    Some((host, _)) => format!("{host}/{org}/{repository}"),
                    None => format!("{org}/{repository}"),
                },
                None => format!("{org}/{}", self.name),
            },
            None => self.name.clone(),
        };
        ImageRef {
            name,
            tag: Some(target.version.clone()),
            digest: None,
        }
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// The Interlock version an image runs: its tag, when it is one of Interlock's images.
pub fn interlock_version(image: &str) -> Option<String> {
    ImageRef::parse(image)
        .filter(ImageRef::is_interlock)
        .and_then(|image| image.tag)
}

/// Where `upgrade` moves Interlock's images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// The tag to move to.
    pub version: String,
    /// The org to move to (`mirantis`), if another.
    pub repository: Option<String>,
}

/// Why an `upgrade` target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    /// Not a tag by the docker reference grammar.
    #[error(
        "`{0}` is not a valid image tag: a tag is 1 to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`"
    )]
    InvalidTag(String),
    /// Not an org name by the docker reference grammar.
    #[error(
        "`{0}` is not a valid repository org: lowercase letters and digits, separated by `.`, `_`, `__` or dashes"
    )]
    InvalidRepository(String),
}

impl crate::error::Diagnostic for UpgradeError {
    fn code(&self) -> &'static str {
        match self {
            UpgradeError::InvalidTag(_) => "invalid_tag",
            UpgradeError::InvalidRepository(_) => "invalid_repository",
        }
    }

    fn hint(&self) -> Option<String> {
        Some(match self {
            UpgradeError::InvalidTag(_) => {
                "pass the MKE version the images are tagged with, e.g. `--to 3.7.12`".into()
            }
            UpgradeError::InvalidRepository(_) => {
                "pass the org only, e.g. `--repository mirantis`".into()
            }
        })
    }
}

impl Upgrade {
    /// Validates `--to` and `--repository`.
    pub fn parse(version: &str, repository: Option<&str>) -> Result<Upgrade, UpgradeError> {
        if !valid_tag(version) {
            return Err(UpgradeError::InvalidTag(version.to_owned()));
        }
        if let Some(org) = repository.filter(|org| !valid_path_component(org)) {
            return Err(UpgradeError::InvalidRepository(org.to_owned()));
        }
        Ok(Upgrade {
            version: version.to_owned(),
            repository: repository.map(str::to_owned),
        })
    }

    /// The image `image` moves to; `None` when it is not one of Interlock's images.
    pub fn target_of(&self, image: &str) -> Option<String> {
        ImageRef::parse(image)
            .filter(ImageRef::is_interlock)
            .map(|image| image.moved(self).to_string())
    }
}

/// `[\w][\w.-]{0,127}`: the reference grammar's tag.
pub fn valid_tag(tag: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    tag.len() <= 128
        && chars.next().is_some_and(word)
        && chars.all(|c| word(c) || c == '.' || c == '-')
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`: the reference grammar's path component.
fn valid_path_component(component: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !component.starts_with(alnum) || !component.ends_with(alnum) {
        return false;
    }
    let mut separator = String::new();
    for c in component.chars() {
        if alnum(c) {
            let allowed = separator.is_empty()
                || separator == "."
                || separator == "_"
                || separator == "__"
                || separator.chars().all(|s| s == '-');
            if !allowed {
                return false;
            }
            separator.clear();
        } else {
            separator.push(c);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upgrade(version: &str, repository: Option<&str>) -> Upgrade {
        Upgrade::parse(version, repository).expect("valid")
    }

    #[test]
    fn references_split_as_the_grammar_says() {
        let parse = |r: &str| ImageRef::parse(r).unwrap();
        assert_eq!(
            parse("registry.local:5000/docker/ucp-interlock:3.2.5@sha256:ab"),
            ImageRef {
                name: "registry.local:5000/docker/ucp-interlock".into(),
                tag: Some("3.2.5".into()),
                digest: Some("sha256:ab".into()),
            }
        );
        assert_eq!(parse("registry.local:5000/ucp-interlock").tag, None);
        assert_eq!(
            parse("ucp-interlock-proxy").repository(),
            "ucp-interlock-proxy"
        );
        assert_eq!(ImageRef::parse("sha256:0123"), None);
        assert!(!parse("nginx:1.25").is_interlock());
        assert_eq!(
            parse("registry.local:5000/mirantis/ucp-agent:3.8.0").org(),
            Some("mirantis")
        );
        assert_eq!(parse("docker/ucp-interlock").org(), Some("docker"));
        assert_eq!(parse("ucp-interlock").org(), None);
    }

    #[test]
    fn an_upgrade_moves_tag_and_org_and_keeps_the_registry() {
        let to = upgrade("3.8.0", Some("mirantis"));
        assert_eq!(
            to.target_of("docker/ucp-interlock-proxy:3.2.5").as_deref(),
            Some("mirantis/ucp-interlock-proxy:3.8.0")
        );
        assert_eq!(
            to.target_of("mirror.example:5000/docker/ucp-interlock:3.2.5@sha256:ab")
                .as_deref(),
            Some("mirror.example:5000/mirantis/ucp-interlock:3.8.0")
        );
        assert_eq!(
            to.target_of("ucp-interlock-extension").as_deref(),
            Some("mirantis/ucp-interlock-extension:3.8.0")
        );
        assert_eq!(
            upgrade("3.2.6", None)
                .target_of("docker/ucp-interlock:3.2.5")
                .as_deref(),
            Some("docker/ucp-interlock:3.2.6")
        );
        assert_eq!(to.target_of("nginx:1.25"), None);
        assert_eq!(to.target_of("sha256:0123"), None);
        assert_eq!(
            interlock_version("mirantis/ucp-interlock:3.7.1").as_deref(),
            Some("3.7.1")
        );
        assert_eq!(interlock_version("nginx:1.25"), None);
    }

    #[test]
    fn tags_and_orgs_follow_the_reference_grammar() {
        for good in ["3.8.0", "latest", "_x", "3.2.5-rc1", &"a".repeat(128)] {
            assert!(valid_tag(good), "{good}");
        }
        for bad in ["", ".3", "-rc", "3.8.0!", "v/1", "a:b", &"a".repeat(129)] {
            assert!(!valid_tag(bad), "{bad}");
        }
        assert_eq!(
            Upgrade::parse("3.8.0:", None),
            Err(UpgradeError::InvalidTag("3.8.0:".into()))
        );
        for good in ["mirantis", "my-org", "a__b", "a.b", "a---b"] {
            assert!(Upgrade::parse("1", Some(good)).is_ok(), "{good}");
        }
        for bad in ["Mirantis", "a/b", "-a", "a_", "a___b", "a._b", ""] {
            assert!(Upgrade::parse("1", Some(bad)).is_err(), "{bad}");
        }
    }
}
