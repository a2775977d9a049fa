//! The node's persistent ed25519 identity. Its libp2p PeerId is the node id.

use anyhow::Context;
use std::io::Write;
use std::path::Path;

/// The node key file inside the data dir.
pub const KEY_FILE: &str = "node.key";

/// Loads the node key, creating it on first start (readable by the owner only).
pub fn load_or_create(data_dir: &Path) -> anyhow::Result<libp2p::identity::Keypair> {
    let path = data_dir.join(KEY_FILE);
    let mut secret = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut secret = vec![0u8; 32];
            getrandom::fill(&mut secret).context("no randomness for the node key")?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&path).with_context(|| format!("creating {}", path.display()))?;
            file.write_all(&secret)?;
            file.sync_all()?;
            secret
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    anyhow::ensure!(secret.len() == 32, "{} is not a 32-byte key", path.display());
    libp2p::identity::Keypair::ed25519_from_bytes(&mut secret).context("invalid node key")
}
