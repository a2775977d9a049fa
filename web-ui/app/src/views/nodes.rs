//! The node admin's page of other nodes: this node's address, nodes nearby on the LAN, links
//! (approve, link by address, unlink).

use leptos::prelude::*;
use veche_protocol::wire::{LinkState, LinksInfo, NearbyNode, Request, Response};
use veche_ui_core::i18n::Arg;

use crate::components::{BTN_PRIMARY, BTN_SECONDARY, INPUT, LABEL};
use crate::device::{Cmd, DeviceHandle, sleep_ms};
use crate::i18n::use_i18n;
use crate::views::spawn_ui;

fn state_id(state: LinkState) -> &'static str {
    match state {
        LinkState::Linked => "link-state-linked",
        LinkState::WaitingForThem => "link-state-waiting-for-them",
        LinkState::WaitingForUs => "link-state-waiting-for-us",
    }
}

fn state_attr(state: LinkState) -> &'static str {
    match state {
        LinkState::Linked => "linked",
        LinkState::WaitingForThem => "waiting-for-them",
        LinkState::WaitingForUs => "waiting-for-us",
    }
}

fn short(peer: &str) -> String {
    format!("…{}", &peer[peer.len().saturating_sub(8)..])
}

#[component]
pub fn NodesAdmin() -> impl IntoView {
    let handle = expect_context::<DeviceHandle>();
    let i18n = use_i18n();
    let nearby = RwSignal::new(Vec::<NearbyNode>::new());
    let links = RwSignal::new(None::<LinksInfo>);
    let address = RwSignal::new(String::new());
    let alive = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let load = {
        let handle = handle.clone();
        move || {
            let handle = handle.clone();
            async move {
                if let Ok(Response::Nearby(list)) =
                    handle.ask(|reply| Cmd::Call { request: Request::Nearby, reply }).await
                {
                    nearby.set(list);
                }
                if let Ok(Response::Links(info)) =
                    handle.ask(|reply| Cmd::Call { request: Request::Links, reply }).await
                {
                    links.set(Some(info));
                }
            }
        }
    };
    {
        // Refresh while the page is open.
        let alive = alive.clone();
        let load = load.clone();
        leptos::task::spawn_local(async move {
            while alive.load(std::sync::atomic::Ordering::Relaxed) {
                load().await;
                sleep_ms(2000).await;
            }
        });
    }
    on_cleanup({
        let alive = alive.clone();
        move || alive.store(false, std::sync::atomic::Ordering::Relaxed)
    });
    let act = {
        let handle = handle.clone();
        let load = load.clone();
        move |request: Request| {
            let handle = handle.clone();
            let load = load.clone();
            spawn_ui(async move {
                handle.ask(|reply| Cmd::Call { request, reply }).await?;
                load().await;
                Ok(())
            });
        }
    };
    let link_state = move |peer: &str| {
        links.with(|l| l.as_ref().and_then(|l| l.links.iter().find(|x| x.peer_id == peer).map(|x| x.state)))
    };
    let act_nearby = act.clone();
    let act_links = act.clone();
    let act_address = act.clone();
    view! {
        <section class="rounded-2xl bg-white p-5 shadow-sm ring-1 ring-slate-200 space-y-5" data-testid="nodes-admin">
            <div>
                <h2 class="font-semibold text-slate-900">{move || i18n.t("nodes-title")}</h2>
                <p class="mt-1 text-sm text-slate-600">{move || i18n.t("nodes-hint")}</p>
            </div>
            <div>
                <h3 class="text-sm font-semibold text-slate-700">{move || i18n.t("nodes-own-address")}</h3>
                <ul class="mt-1 space-y-1" role="list">
                    <For each=move || links.with(|l| l.as_ref().map(|l| l.own_addrs.clone()).unwrap_or_default()) key=|a| a.clone() let:addr>
                        <li class="break-all font-mono text-xs text-slate-600" data-testid="node-address">{addr}</li>
                    </For>
                </ul>
            </div>
            <div>
                <h3 class="text-sm font-semibold text-slate-700">{move || i18n.t("nodes-nearby")}</h3>
                <Show when=move || nearby.with(Vec::is_empty)>
                    <p class="text-sm text-slate-400">{move || i18n.t("nodes-none-nearby")}</p>
                </Show>
                <ul class="divide-y divide-slate-100" role="list">
                    <For each=move || nearby.get() key=|n| (n.peer_id.clone(), n.verified) let:node>
                        {
                            let peer = node.peer_id.clone();
                            let peer_for_state = peer.clone();
                            let act = act_nearby.clone();
                            let state = move || link_state(&peer_for_state);
                            let fallback_state = state.clone();
                            view! {
                                <li class="flex items-center justify-between gap-3 py-2" data-testid="nearby-row">
                                    <div class="min-w-0">
                                        <p class="truncate text-sm font-medium text-slate-900" data-testid="nearby-name">{node.name.clone()}</p>
                                        <p class="text-xs text-slate-500">
                                            <span class="font-mono">{short(&node.peer_id)}</span>" · "
                                            {move || i18n.t(if node.verified { "node-verified" } else { "node-unverified" })}
                                        </p>
                                    </div>
                                    <Show when=move || !matches!(state(), Some(LinkState::Linked | LinkState::WaitingForThem))
                                        fallback=move || {
                                            let state = fallback_state.clone();
                                            view! { <span class="text-xs text-slate-500">{move || state().map(|s| i18n.t(state_id(s)))}</span> }
                                        }>
                                        <button class=BTN_SECONDARY data-testid="nearby-link" on:click={
                                            let act = act.clone();
                                            let peer = peer.clone();
                                            move |_| act(Request::Link { target: peer.clone() })
                                        }>{move || i18n.t("node-link")}</button>
                                    </Show>
                                </li>
                            }
                        }
                    </For>
                </ul>
            </div>
            <div>
                <h3 class="text-sm font-semibold text-slate-700">{move || i18n.t("nodes-links")}</h3>
                <Show when=move || links.with(|l| l.as_ref().is_none_or(|l| l.links.is_empty()))>
                    <p class="text-sm text-slate-400">{move || i18n.t("nodes-no-links")}</p>
                </Show>
                <ul class="divide-y divide-slate-100" role="list">
                    <For each=move || links.with(|l| l.as_ref().map(|l| l.links.clone()).unwrap_or_default())
                        key=|l| (l.peer_id.clone(), state_attr(l.state), l.connected, l.name.clone(), l.queued) let:link>
                        {
                            let act = act_links.clone();
                            let act2 = act_links.clone();
                            let peer = link.peer_id.clone();
                            let peer2 = link.peer_id.clone();
                            let waiting_for_us = link.state == LinkState::WaitingForUs;
                            let name = if link.name.is_empty() { short(&link.peer_id) } else { link.name.clone() };
                            view! {
                                <li class="flex items-center justify-between gap-3 py-2" data-testid="link-row" data-state=state_attr(link.state)>
                                    <div class="min-w-0">
                                        <p class="truncate text-sm font-medium text-slate-900" data-testid="link-name">{name}</p>
                                        <p class="text-xs text-slate-500">
                                            {move || i18n.t(state_id(link.state))}" · "
                                            {move || i18n.t(if link.connected { "node-connected" } else { "node-not-connected" })}
                                            {(link.queued > 0).then(|| view! {
                                                " · "<span data-testid="link-queued">{move || i18n.t_with("node-queued", &[("count", Arg::Num(link.queued as i64))])}</span>
                                            })}
                                        </p>
                                    </div>
                                    <div class="flex gap-2">
                                        <Show when=move || waiting_for_us>
                                            <button class=BTN_PRIMARY data-testid="link-approve" on:click={
                                                let act = act.clone();
                                                let peer = peer.clone();
                                                move |_| act(Request::Link { target: peer.clone() })
                                            }>{move || i18n.t("link-approve")}</button>
                                        </Show>
                                        <button class="text-sm font-semibold text-rose-600 hover:text-rose-500" data-testid="link-unlink" on:click={
                                            let act = act2.clone();
                                            let peer = peer2.clone();
                                            move |_| act(Request::Unlink { peer_id: peer.clone() })
                                        }>{move || i18n.t("node-unlink")}</button>
                                    </div>
                                </li>
                            }
                        }
                    </For>
                </ul>
            </div>
            <form class="space-y-2" on:submit=move |ev| {
                ev.prevent_default();
                let target = address.get_untracked().trim().to_string();
                if !target.is_empty() {
                    act_address(Request::Link { target });
                    address.set(String::new());
                }
            }>
                <label for="link-address" class=LABEL>{move || i18n.t("link-by-address")}</label>
                <div class="flex gap-2">
                    <input id="link-address" data-testid="link-address" class=INPUT placeholder="/ip4/…/udp/7801/quic-v1/p2p/12D3Koo…"
                        prop:value=move || address.get() on:input=move |ev| address.set(event_target_value(&ev))/>
                    <button type="submit" class=BTN_SECONDARY data-testid="link-address-submit">{move || i18n.t("node-link")}</button>
                </div>
            </form>
        </section>
    }
}
