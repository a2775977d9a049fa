//! Scenario: sign-in is a fresh signed challenge bound to the node. Wrong signatures, signatures
//! replayed from another connection, a second sign-in on one connection, registering a taken
//! device, invalid names, and registration without an invite where one is needed are refused.

use std::time::Duration;
use veche_protocol::ids::{AccountId, DeviceId};
use veche_protocol::wire::{ErrorCode, Request};
use veche_tests::raw::{RawConn, RawDevice};
use veche_tests::{Node, TempDir};

fn code(answer: &veche_tests::raw::Answer) -> Option<ErrorCode> {
    answer.as_ref().err().map(|e| e.code)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_replayed_signatures_are_refused() -> anyhow::Result<()> {
    let tmp = TempDir::new("auth");
    let node = Node::start(tmp.path(), &[])?;
    let admin_link = veche_protocol::link::InviteLink::parse(node.admin_link.as_deref().unwrap())?;
    let token = veche_protocol::wire::InviteToken { invite: admin_link.invite, secret: admin_link.secret };

    // Registration needs an invite on this node (the default policy).
    let key = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let device = DeviceId(key.verifying_key().to_bytes());
    let mut conn = RawConn::open(&node.url).await?;
    let sign = |conn: &RawConn, name: &str| {
        let payload = veche_protocol::auth::register_payload(
            &conn.hello.node_id,
            &conn.hello.challenge,
            &device,
            &AccountId(device.0),
            name,
            None,
        );
        veche_protocol::auth::sign(&key, &payload)
    };
    let signature = sign(&conn, "Eve");
    let answer = conn
        .call(Request::Register {
            device,
            account: AccountId(device.0),
            display_name: "Eve".into(),
            invite: None,
            signature,
            binding: veche_protocol::auth::ChannelBinding::Unbound,
        })
        .await?;
    assert_eq!(code(&answer), Some(ErrorCode::InviteRequired));
    // Names are validated (1-64 characters).
    let signature = sign(&conn, "");
    let answer = conn
        .call(Request::Register {
            device,
            account: AccountId(device.0),
            display_name: "".into(),
            invite: Some(token.clone()),
            signature,
            binding: veche_protocol::auth::ChannelBinding::Unbound,
        })
        .await?;
    assert_eq!(code(&answer), Some(ErrorCode::BadRequest));
    let long = "я".repeat(65);
    let signature = sign(&conn, &long);
    let answer = conn
        .call(Request::Register {
            device,
            account: AccountId(device.0),
            display_name: long,
            invite: Some(token.clone()),
            signature,
            binding: veche_protocol::auth::ChannelBinding::Unbound,
        })
        .await?;
    assert_eq!(code(&answer), Some(ErrorCode::BadRequest));

    // The admin link works once.
    let admin = RawDevice::register(&node.url, "Admin", Some(token.clone())).await?;
    let answer = conn
        .call(Request::Register {
            device,
            account: AccountId(device.0),
            display_name: "Eve".into(),
            invite: Some(token),
            signature: sign(&conn, "Eve"),
            binding: veche_protocol::auth::ChannelBinding::Unbound,
        })
        .await?;
    assert_eq!(code(&answer), Some(ErrorCode::InviteUsedUp), "the one-time admin link is spent");

    // Sign-in with a signature over another connection's challenge (a replay) fails.
    let admin_device = admin.device();
    let mut first = RawConn::open(&node.url).await?;
    let payload =
        veche_protocol::auth::sign_in_payload(&first.hello.node_id, &first.hello.challenge, &admin_device, None);
    let captured = veche_protocol::auth::sign(&admin.key, &payload);
    let mut second = RawConn::open(&node.url).await?;
    let answer = second
        .call(Request::SignIn {
            device: admin_device,
            signature: captured.clone(),
            binding: veche_protocol::auth::ChannelBinding::Unbound,
        })
        .await?;
    assert_eq!(code(&answer), Some(ErrorCode::BadSignature), "replayed challenge");
    // The genuine sign-in works once; the challenge is then spent.
    assert!(
        first
            .call(Request::SignIn {
                device: admin_device,
                signature: captured.clone(),
                binding: veche_protocol::auth::ChannelBinding::Unbound
            })
            .await?
            .is_ok()
    );
    let answer = first
        .call(Request::SignIn {
            device: admin_device,
            signature: captured,
            binding: veche_protocol::auth::ChannelBinding::Unbound,
        })
        .await?;
    assert_eq!(code(&answer), Some(ErrorCode::ChallengeUsed));
    assert!(first.call(Request::Me).await?.is_ok());

    // A signature by another key, truncated signatures, unknown devices.
    let mut conn = RawConn::open(&node.url).await?;
    let payload =
        veche_protocol::auth::sign_in_payload(&conn.hello.node_id, &conn.hello.challenge, &admin_device, None);
    let forged = veche_protocol::auth::sign(&key, &payload);
    assert_eq!(
        code(
            &conn
                .call(Request::SignIn {
                    device: admin_device,
                    signature: forged,
                    binding: veche_protocol::auth::ChannelBinding::Unbound
                })
                .await?
        ),
        Some(ErrorCode::BadSignature)
    );
    assert_eq!(
        code(
            &conn
                .call(Request::SignIn {
                    device: admin_device,
                    signature: vec![1, 2, 3],
                    binding: veche_protocol::auth::ChannelBinding::Unbound
                })
                .await?
        ),
        Some(ErrorCode::BadSignature)
    );
    // Third failure closes the connection.
    assert_eq!(
        code(
            &conn
                .call(Request::SignIn {
                    device: admin_device,
                    signature: vec![0; 64],
                    binding: veche_protocol::auth::ChannelBinding::Unbound
                })
                .await?
        ),
        Some(ErrorCode::BadSignature)
    );
    assert!(conn.closed_within(Duration::from_secs(5)).await, "three failed sign-ins close the connection");

    let mut conn = RawConn::open(&node.url).await?;
    let payload = veche_protocol::auth::sign_in_payload(&conn.hello.node_id, &conn.hello.challenge, &device, None);
    let signature = veche_protocol::auth::sign(&key, &payload);
    assert_eq!(
        code(
            &conn
                .call(Request::SignIn { device, signature, binding: veche_protocol::auth::ChannelBinding::Unbound })
                .await?
        ),
        Some(ErrorCode::NotFound),
        "unregistered device"
    );
    Ok(())
}
