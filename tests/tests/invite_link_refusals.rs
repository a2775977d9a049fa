//! Scenario: invite links that are expired, revoked, used up or forged are refused with a clear
//! message, both when registering and when joining; a valid link keeps working.

use veche_tests::{Client, Node, TempDir};

#[test]
fn expired_revoked_used_up_and_forged_links_are_refused() -> anyhow::Result<()> {
    let tmp = TempDir::new("links");
    let node = Node::start(tmp.path(), &[])?;
    let owner = Client::new(tmp.path(), "owner", &node.url);
    owner.run(&["register", "--name", "Owner", "--invite", node.admin_link.as_deref().unwrap()])?;
    let group = owner.run(&["group", "create", "Links"])?["chat"].as_str().unwrap().to_string();
    let link = |args: &[&str]| -> anyhow::Result<(String, String)> {
        let mut all = vec!["invite", "create", group.as_str()];
        all.extend_from_slice(args);
        let out = owner.run(&all)?;
        Ok((out["link"].as_str().unwrap().to_string(), out["id"].as_str().unwrap().to_string()))
    };

    let (expiring, _) = link(&["--expires", "1s"])?;
    let (revoked, revoked_id) = link(&[])?;
    let (single, _) = link(&["--uses", "1"])?;
    let (good, _) = link(&[])?;
    owner.run(&["invite", "revoke", &revoked_id])?;
    std::thread::sleep(std::time::Duration::from_millis(1200));

    let newcomer = Client::new(tmp.path(), "newcomer", &node.url);
    let refused = newcomer.fail(&["register", "--name", "New", "--invite", &expiring])?;
    assert_eq!(refused["code"], "InviteExpired");
    assert_eq!(refused["error"], "this invite link has expired");
    assert_eq!(newcomer.fail(&["register", "--name", "New", "--invite", &revoked])?["code"], "InviteRevoked");
    let mut forged = veche_protocol::link::InviteLink::parse(&good)?;
    forged.secret[0] ^= 1;
    let forged = forged.to_url();
    assert_eq!(newcomer.fail(&["register", "--name", "New", "--invite", &forged])?["code"], "InviteInvalid");
    assert_eq!(newcomer.fail(&["register", "--name", "New"])?["code"], "InviteRequired");

    newcomer.run(&["register", "--name", "New", "--invite", &single])?;
    assert_eq!(newcomer.fail(&["join", &expiring])?["code"], "InviteExpired");
    assert_eq!(newcomer.fail(&["join", &revoked])?["code"], "InviteRevoked");
    newcomer.run(&["join", &single])?;
    let late = Client::new(tmp.path(), "late", &node.url);
    late.run(&["register", "--name", "Late", "--invite", &good])?;
    assert_eq!(late.fail(&["join", &single])?["code"], "InviteUsedUp");
    late.run(&["join", &good])?;

    let invites = owner.run(&["invite", "list", &group])?;
    let invites = invites["invites"].as_array().unwrap();
    assert_eq!(invites.len(), 4);
    assert_eq!(invites.iter().filter(|i| i["revoked"] == true).count(), 1);
    assert_eq!(owner.run(&["members", &group])?["members"].as_array().unwrap().len(), 3);
    Ok(())
}
