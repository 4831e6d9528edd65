//! The embedders this toolkit ships, by the names every CLI (`--embed`), training config
//! (`mr.embedder`, `eval.embedder`) and reproduction profile uses, and where their weights live.
//! The one place a weight file name is written; the networks themselves are in `mr-embed`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An embedder name. Serialized (TOML, JSON) and parsed as its kebab-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmbedderName {
    /// The FID Inception-v3 (TF inception-2015-12-05 weights), 2048-d.
    InceptionFid,
    /// EfficientNet-Lite0 with ImageNet weights, 1280-d.
    EffnetLite0,
    /// The small CIFAR-10 classifier trained in this project, 128-d.
    SmallCnn,
    /// The small classifier trained on MNIST, 64-d.
    SmallCnnMnist,
    /// The small classifier trained on Fashion-MNIST, 64-d.
    SmallCnnFmnist,
}

impl EmbedderName {
    /// Every embedder, in the order help texts list them.
    pub const ALL: [EmbedderName; 5] = [
        EmbedderName::InceptionFid,
        EmbedderName::EffnetLite0,
        EmbedderName::SmallCnn,
        EmbedderName::SmallCnnMnist,
        EmbedderName::SmallCnnFmnist,
    ];

    /// The name (`inception-fid`, …).
    pub const fn as_str(self) -> &'static str {
        match self {
            EmbedderName::InceptionFid => "inception-fid",
            EmbedderName::EffnetLite0 => "effnet-lite0",
            EmbedderName::SmallCnn => "small-cnn",
            EmbedderName::SmallCnnMnist => "small-cnn-mnist",
            EmbedderName::SmallCnnFmnist => "small-cnn-fmnist",
        }
    }

    /// The weight file's name: fetched by `cargo xtask fetch <name>` for the pretrained networks,
    /// bundled in `mr-embed` (and overridable by a file of this name) for the small CNNs.
    pub const fn weights_file(self) -> &'static str {
        match self {
            EmbedderName::InceptionFid => "default_1.pt",
            EmbedderName::EffnetLite0 => "efficientnet-lite0-57934424.pth",
            EmbedderName::SmallCnn => "small-cnn-cifar10.mpk",
            EmbedderName::SmallCnnMnist => "small-cnn-mnist.mpk",
            EmbedderName::SmallCnnFmnist => "small-cnn-fmnist.mpk",
        }
    }

    /// Whether the weights must be fetched into the data root (else they ship in `mr-embed`).
    pub const fn fetched(self) -> bool {
        matches!(self, EmbedderName::InceptionFid | EmbedderName::EffnetLite0)
    }

    /// `weights/<name>/<file>`, relative to the data root.
    pub fn weights_rel(self) -> PathBuf {
        Path::new("weights")
            .join(self.as_str())
            .join(self.weights_file())
    }

    /// `<root>/weights/<name>/<file>`.
    pub fn weights_path(self, root: &Path) -> PathBuf {
        root.join(self.weights_rel())
    }

    /// The names, comma-separated (for help texts and errors).
    pub fn known() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for EmbedderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An embedder name that is not one of [`EmbedderName::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown embedder `{0}` (known: {known})", known = EmbedderName::known())]
pub struct UnknownEmbedder(pub String);

impl FromStr for EmbedderName {
    type Err = UnknownEmbedder;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| UnknownEmbedder(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_serde() {
        for e in EmbedderName::ALL {
            assert_eq!(e.as_str().parse::<EmbedderName>(), Ok(e));
            let json = serde_json::to_string(&e).unwrap();
            assert_eq!(json, format!("\"{e}\""));
            assert_eq!(serde_json::from_str::<EmbedderName>(&json).unwrap(), e);
        }
        let err = "inception".parse::<EmbedderName>().unwrap_err().to_string();
        assert!(err.contains("unknown embedder `inception`") && err.contains("small-cnn-fmnist"));
    }

    #[test]
    fn weight_paths() {
        let p = EmbedderName::EffnetLite0.weights_path(Path::new("/r"));
        assert_eq!(
            p,
            Path::new("/r/weights/effnet-lite0/efficientnet-lite0-57934424.pth")
        );
        assert!(EmbedderName::InceptionFid.fetched() && !EmbedderName::SmallCnn.fetched());
    }
}
