//! Scenario: the node's and the native client's state files are readable by their owner only, and
//! the one-time admin link is written to a private file in the data dir and printed once on stdout,
//! never to the (tracing) log.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use veche_tests::{Client, Node, TempDir};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[test]
fn state_files_are_private_and_the_admin_link_is_not_logged() -> anyhow::Result<()> {
    let tmp = TempDir::new("private-files");
    let mut node = Node::start(tmp.path(), &[])?;
    let link = node.admin_link.clone().expect("a first start prints the admin link");

    assert_eq!(mode(&node.data_dir), 0o700, "data dir");
    assert_eq!(mode(&node.data_dir.join("veche.redb")), 0o600, "veche.redb");
    let link_file = node.data_dir.join("admin-link.txt");
    assert_eq!(mode(&link_file), 0o600, "admin-link.txt");
    assert_eq!(std::fs::read_to_string(&link_file)?.trim(), link, "the file holds the printed link");

    let owner = Client::new(tmp.path(), "owner", &node.url);
    owner.run(&["register", "--name", "Owner", "--invite", &link])?;
    assert_eq!(mode(&owner.state), 0o700, "client state dir");
    assert_eq!(mode(&owner.state.join("client.redb")), 0o600, "client.redb");

    // The link's secret (its fragment) never reaches the log, also not once it has been used.
    let secret = link.split_once('#').map(|(_, fragment)| fragment).expect("a link has a fragment");
    let log = node.log();
    assert!(log.contains("node started"), "logs are being written");
    assert!(!log.contains(secret), "the admin link's secret is in the node's log");

    // Files an older version created with the umask's mode are tightened when opened again.
    node.terminate()?;
    std::fs::set_permissions(node.data_dir.join("veche.redb"), std::fs::Permissions::from_mode(0o644))?;
    std::fs::set_permissions(owner.state.join("client.redb"), std::fs::Permissions::from_mode(0o644))?;
    node.restart()?;
    assert_eq!(mode(&node.data_dir.join("veche.redb")), 0o600, "veche.redb after a restart");
    // An admin exists now: no new link is printed, and the used one's file is gone.
    assert!(node.admin_link.is_none() || node.admin_link.as_deref() == Some(link.as_str()));
    assert!(!link_file.exists(), "admin-link.txt outlived its link");
    owner.run(&["whoami"])?;
    assert_eq!(mode(&owner.state.join("client.redb")), 0o600, "client.redb after reopening");
    Ok(())
}
