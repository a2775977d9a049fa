// Browser end-to-end: calls as they really go, each member in a browser of their own (separate
// processes, as on separate devices: Alice and Bob in Chromium, Carol in Firefox). Someone starts a call and the others join 5 s and
// 30 s later; a member leaves and rejoins; a tab reloads mid-call; a member turns the camera off
// and on. After each step, every member's video keeps being decoded by every other member
// (frames rising over a two-second window, per tile).
import { test } from "node:test";
import {
  startNode, launchBrowser, member, onboardWithLink, createGroup, createInvite, joinByLink, joinCall, tid, keepsDecoding,
} from "./harness.mjs";
import { launchFirefox, firefoxMember, click, waitFor } from "./engines.mjs";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/// Every member decodes every other member's camera.
async function everyoneSeesEveryone(members) {
  for (const m of members) {
    const others = members.filter((o) => o !== m).map((o) => o.name);
    const rates = await keepsDecoding(m.page, m.name, others);
    console.log(`${m.name} decodes ${Object.entries(rates).map(([n, f]) => `${n} ${f}`).join(", ")} frames in 2 s`);
  }
}

async function inCall(page, count) {
  await waitFor(page, tid("call-panel"));
  await waitFor(page, tid("call-participants") + `[data-count="${count}"]`, { timeout: 30000 });
}

test("late joiners, leaving and rejoining, a reload and a camera turned off and on: video keeps flowing both ways", { timeout: 420000 }, async () => {
  const node = await startNode();
  const browsers = [];
  try {
    const people = [];
    for (const name of ["Alice", "Bob", "Carol"]) {
      const browser = name === "Carol" ? await launchFirefox() : await launchBrowser();
      browsers.push(browser);
      const { page } = name === "Carol" ? await firefoxMember(browser, name) : await member(browser, name);
      people.push({ name, page });
    }
    const [alice, bob, carol] = people;
    await onboardWithLink(alice.page, node.adminLink.replace(/^http:\/\/[^/]+/, node.url), "Alice");
    await waitFor(alice.page, tid("chat-list"));
    await createGroup(alice.page, "Evening");
    const link = await createInvite(alice.page);
    await joinByLink(bob.page, link, "Bob");
    await joinByLink(carol.page, link, "Carol");

    // Alice starts the call; Bob joins 5 s later, Carol 30 s after Alice.
    await joinCall(alice.page);
    await inCall(alice.page, 1);
    const started = Date.now();
    await sleep(5000);
    await joinCall(bob.page);
    await inCall(bob.page, 2);
    await everyoneSeesEveryone([alice, bob]);
    await sleep(Math.max(0, 30000 - (Date.now() - started)));
    await joinCall(carol.page);
    await inCall(carol.page, 3);
    console.log(`Carol joined ${Math.round((Date.now() - started) / 1000)} s after Alice`);
    await everyoneSeesEveryone(people);

    // Bob leaves and comes back.
    await click(bob.page, tid("call-leave"));
    await waitFor(bob.page, tid("call-panel"), { state: "detached" });
    await inCall(alice.page, 2);
    await sleep(2000);
    await joinCall(bob.page);
    await inCall(bob.page, 3);
    console.log("Bob left and rejoined");
    await everyoneSeesEveryone(people);

    // Carol's tab reloads mid-call; she opens the call again.
    await carol.page.reload();
    await waitFor(carol.page, tid("composer"), { timeout: 30000 });
    await inCall(alice.page, 2);
    await joinCall(carol.page);
    await inCall(carol.page, 3);
    console.log("Carol reloaded and rejoined");
    await everyoneSeesEveryone(people);

    // Alice turns her camera off (nobody gets her video) and on again.
    await click(alice.page, tid("call-camera"));
    await waitFor(alice.page, tid("call-camera") + '[aria-pressed="true"]', { timeout: 10000 });
    await sleep(3000);
    await click(alice.page, tid("call-camera"));
    await waitFor(alice.page, tid("call-camera") + '[aria-pressed="false"]', { timeout: 10000 });
    console.log("Alice turned her camera off and on");
    await everyoneSeesEveryone(people);
  } finally {
    for (const b of browsers) await b.close();
    node.stop();
  }
});
