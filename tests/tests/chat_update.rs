//! Scenario: a group is renamed. The owner and admins may rename it and change its description;
//! members may not; direct chats have no name; bad names are refused; members see the new name.

use veche_tests::{Client, Node, TempDir};

#[test]
fn owner_and_admins_rename_a_group() -> anyhow::Result<()> {
    let tmp = TempDir::new("rename");
    let node = Node::start(tmp.path(), &["--registration", "open"])?;
    let names = ["owner", "admin", "member"];
    let clients: Vec<Client> = names.iter().map(|n| Client::new(tmp.path(), n, &node.url)).collect();
    for (client, name) in clients.iter().zip(names) {
        client.run(&["register", "--name", name])?;
    }
    let [owner, admin, member] = &clients[..] else { unreachable!() };
    let group = owner.run(&["group", "create", "Council"])?["chat"].as_str().unwrap().to_string();
    for c in [admin, member] {
        owner.run(&["add", &group, &c.account()?])?;
    }
    owner.run(&["role", &group, &admin.account()?, "admin"])?;

    let renamed = owner.run(&["group", "update", &group, "--name", "Town council", "--description", "Mondays"])?;
    assert_eq!(renamed["name"], "Town council");
    let seen = |c: &Client| -> anyhow::Result<(String, String)> {
        let chats = c.run(&["chats"])?;
        let chat = chats["chats"].as_array().unwrap().iter().find(|x| x["chat"] == group.as_str()).unwrap().clone();
        Ok((chat["name"].as_str().unwrap().to_string(), chat["description"].as_str().unwrap_or("").to_string()))
    };
    assert_eq!(seen(member)?.0, "Town council");

    // An admin may rename; the description stays unless given.
    admin.run(&["group", "update", &group, "--name", "Council of the town"])?;
    assert_eq!(seen(owner)?.0, "Council of the town");

    // A member may not; nor may anyone give an empty or overlong name.
    let refused = member.fail(&["group", "update", &group, "--name", "Mine now"])?;
    assert_eq!(refused["code"], "Forbidden", "{refused}");
    let refused = owner.fail(&["group", "update", &group, "--name", "   "])?;
    assert_eq!(refused["code"], "BadRequest", "{refused}");
    let long = "x".repeat(101);
    let refused = owner.fail(&["group", "update", &group, "--name", &long])?;
    assert_eq!(refused["code"], "BadRequest", "{refused}");
    assert_eq!(seen(member)?.0, "Council of the town");

    // A direct chat has no name to change.
    let dm = owner.run(&["dm", &member.account()?])?["chat"].as_str().unwrap().to_string();
    let refused = owner.fail(&["group", "update", &dm, "--name", "Us"])?;
    assert_eq!(refused["code"], "BadRequest", "{refused}");
    Ok(())
}
