//! Scenario: roles in practice. The owner makes an admin; the admin removes a member; a member may
//! not remove the owner; a member leaves and an owner's device completes the removal; removed and
//! departed members can no longer send, and the rest keep talking.

use veche_tests::{Client, Node, TempDir};

#[test]
fn owner_admin_member_remove_and_leave() -> anyhow::Result<()> {
    let tmp = TempDir::new("roles");
    let node = Node::start(tmp.path(), &["--registration", "open"])?;
    let names = ["owner", "admin", "member", "leaver"];
    let clients: Vec<Client> = names.iter().map(|n| Client::new(tmp.path(), n, &node.url)).collect();
    for (client, name) in clients.iter().zip(names) {
        client.run(&["register", "--name", name])?;
    }
    let [owner, admin, member, leaver] = &clients[..] else { unreachable!() };
    let group = owner.run(&["group", "create", "Council"])?["chat"].as_str().unwrap().to_string();
    for c in [admin, member, leaver] {
        owner.run(&["add", &group, &c.account()?])?;
    }
    owner.run(&["role", &group, &admin.account()?, "admin"])?;
    let roles = |c: &Client| -> anyhow::Result<Vec<(String, String)>> {
        let mut out: Vec<(String, String)> = c.run(&["members", &group])?["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["name"].as_str().unwrap().to_string(), m["role"].as_str().unwrap().to_string()))
            .collect();
        out.sort();
        Ok(out)
    };
    assert!(roles(member)?.contains(&("admin".into(), "admin".into())));

    // A member may not remove the owner (refused on the device before it reaches the node).
    let refused = member.fail(&["remove", &group, &owner.account()?])?;
    assert!(refused["error"].as_str().unwrap().contains("policy"), "{refused}");
    // An admin may not change roles.
    assert!(admin.fail(&["role", &group, &member.account()?, "admin"]).is_ok());
    // The admin removes the member.
    admin.run(&["remove", &group, &member.account()?])?;
    assert!(member.fail(&["send", &group, "still here?"]).is_ok(), "a removed member cannot send");

    // The leaver leaves. Before an owner's or admin's device sees it, a newcomer joins by link:
    // that commit makes the leave proposal stale, yet the owner's device still completes the
    // removal when it next syncs.
    let link = owner.run(&["invite", "create", &group])?["link"].as_str().unwrap().to_string();
    leaver.run(&["leave", &group])?;
    let newcomer = Client::new(tmp.path(), "newcomer", &node.url);
    newcomer.run(&["register", "--name", "newcomer"])?;
    newcomer.run(&["join", &link])?;
    owner.run(&["send", &group, "goodbye, leaver"])?;
    assert_eq!(
        roles(owner)?,
        vec![
            ("admin".to_string(), "admin".to_string()),
            ("newcomer".to_string(), "member".to_string()),
            ("owner".to_string(), "owner".to_string())
        ]
    );
    assert!(leaver.fail(&["send", &group, "wait"]).is_ok(), "a member who left cannot send");
    admin.run(&["send", &group, "just us now"])?;
    let texts: Vec<String> = owner.texts(&group)?.into_iter().map(|(_, _, t)| t).collect();
    assert_eq!(texts, vec!["goodbye, leaver", "just us now"]);

    // The removed member is re-added while offline: their device rejoins from the Welcome.
    owner.run(&["add", &group, &member.account()?])?;
    owner.run(&["send", &group, "welcome back"])?;
    let seen: Vec<String> = member.texts(&group)?.into_iter().map(|(_, _, t)| t).collect();
    assert_eq!(seen.last().map(String::as_str), Some("welcome back"));

    // A device added and removed again while offline: its stale Welcome does not block it.
    let late = Client::new(tmp.path(), "late", &node.url);
    late.run(&["register", "--name", "late"])?;
    owner.run(&["add", &group, &late.account()?])?;
    owner.run(&["remove", &group, &late.account()?])?;
    late.run(&["whoami"])?;
    assert_eq!(late.run(&["chats"])?["chats"].as_array().unwrap().len(), 0);

    // The admin leaves; a plain member's device commits that leave itself and can send at once.
    admin.run(&["leave", &group])?;
    newcomer.run(&["send", &group, "bye, admin"])?;
    assert!(!roles(&newcomer)?.iter().any(|(name, _)| name == "admin"), "the leave was committed");
    Ok(())
}
