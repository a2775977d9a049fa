// Browser end-to-end: two members in two browser contexts and a native client chat in one group
// through a real node. Runs twice: English on a desktop viewport, Russian on a 360 px phone.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startNode, launchBrowser, client, dirContains, tempDir, artifacts } from "./harness.mjs";

const runs = [
  { lang: "en", locale: "en-US", viewport: { width: 1280, height: 800 }, mobile: false, composer: "Message" },
  { lang: "ru", locale: "ru-RU", viewport: { width: 360, height: 740 }, mobile: true, composer: "Сообщение" },
];

const tid = (id) => `[data-testid="${id}"]`;

for (const run of runs) {
  test(`two browsers and a native client chat (${run.lang}, ${run.viewport.width}px)`, { timeout: 240000 }, async () => {
    const node = await startNode();
    const browser = await launchBrowser();
    const shot = (page, name) => page.screenshot({ path: join(artifacts, `${run.lang}-${name}.png`) });
    try {
      const contextOptions = { locale: run.locale, viewport: run.viewport, isMobile: run.mobile, hasTouch: run.mobile };
      const ctxA = await browser.newContext(contextOptions);
      const ctxB = await browser.newContext(contextOptions);
      const a = await ctxA.newPage();
      const b = await ctxB.newPage();
      for (const [name, page] of [["A", a], ["B", b]]) {
        page.on("pageerror", (e) => console.error(`[${name} page error]`, e.message));
        page.on("console", (m) => { if (m.type() === "error") console.error(`[${name} console]`, m.text()); });
      }

      // A opens the admin link printed by `veche run`, onboards and becomes the node admin.
      await a.goto(node.adminLink.replace(/^http:\/\/[^/]+/, node.url));
      await a.locator(tid("join-name")).fill("Alice");
      await shot(a, "join-admin");
      await a.locator(tid("join-submit")).click();
      await a.locator(tid("chat-list")).waitFor();
      assert.equal(await a.getAttribute("html", "lang"), run.lang);
      await a.locator(tid("conn-state") + '[data-state="online"]').first().waitFor();

      // A creates a group and an invite link.
      await a.locator(tid("new-group")).click();
      await a.locator(tid("group-name")).fill("Book club");
      await a.locator(tid("group-description")).fill("Thursdays at the library");
      await shot(a, "create-group");
      await a.locator(tid("create-group-submit")).click();
      await a.locator(tid("chat-name")).filter({ hasText: "Book club" }).waitFor();
      assert.equal(await a.locator(tid("composer")).getAttribute("placeholder"), run.composer);
      await a.locator(tid("open-invite")).click();
      await a.locator(tid("invite-create")).click();
      const link = await a.locator(tid("invite-link")).inputValue();
      assert.match(link, new RegExp(`^${node.url}/join#i=[0-9a-f]+&s=[A-Za-z0-9_-]+&g=[0-9a-f]+&f=[A-Za-z0-9_-]{43}$`));
      assert.ok(await a.locator(tid("invite-qr") + " svg").count() === 1, "a QR code is shown");
      await a.locator(tid("invite-row")).first().waitFor();
      await shot(a, "invite-dialog");
      await a.keyboard.press("Escape");
      await a.locator(tid("invite-dialog")).waitFor({ state: "detached" });

      // B opens the link, sees the group, onboards and joins.
      await b.goto(link);
      await b.locator(tid("join-title")).filter({ hasText: "Book club" }).waitFor();
      await shot(b, "join-page");
      await b.locator(tid("join-name")).fill("Boris");
      await b.locator(tid("join-submit")).click();
      await b.locator(tid("chat-name")).filter({ hasText: "Book club" }).waitFor({ timeout: 30000 });

      // A -> B: B sees Alice's name before the message; the time it takes is measured.
      const hello = `Hello from Alice ${run.lang} ${Date.now()}`;
      await a.locator(tid("composer")).fill(hello);
      await a.locator(tid("composer")).press("Enter");
      const inB = b.locator(tid("message") + '[data-own="false"]').filter({ hasText: hello });
      await inB.waitFor({ timeout: 20000 });
      assert.equal(await inB.locator(tid("msg-sender")).innerText(), "Alice");
      const mine = a.locator(tid("message") + '[data-own="true"]').filter({ hasText: hello });
      await mine.locator(tid("msg-delivery") + '[data-state="stored"]').waitFor();

      // B -> A, with a line break (Shift+Enter).
      const reply = `Привет, Alice! ${run.lang} ${Date.now()}`;
      await b.locator(tid("composer")).fill(reply.split(", ")[0] + ",");
      await b.locator(tid("composer")).press("Shift+Enter");
      await b.locator(tid("composer")).pressSequentially(reply.split(", ")[1]);
      await b.locator(tid("send")).click();
      const inA = a.locator(tid("message") + '[data-own="false"]').filter({ hasText: reply.split(", ")[1] });
      await inA.waitFor({ timeout: 20000 });
      assert.equal(await inA.locator(tid("msg-sender")).innerText(), "Boris");
      assert.equal(await inA.locator(tid("msg-text")).innerText(), reply.replace(", ", ",\n"));
      await shot(a, "chat-a");
      await shot(b, "chat-b");

      // A native client joins by the same link; its message reaches both browsers.
      const carol = tempDir("veche-e2e-carol-");
      client(carol, "register", "--name", "Carol", "--invite", link);
      const joined = JSON.parse(client(carol, "join", link));
      const fromCarol = `Carol from the terminal ${run.lang}`;
      client(carol, "send", joined.chat, fromCarol);
      for (const page of [a, b]) {
        const m = page.locator(tid("message") + '[data-own="false"]').filter({ hasText: fromCarol });
        await m.waitFor({ timeout: 20000 });
        assert.equal(await m.locator(tid("msg-sender")).innerText(), "Carol");
      }
      // ... and Carol reads what a browser writes after she joined (MLS: not what came before).
      const welcome = `Welcome, Carol ${run.lang}`;
      await a.locator(tid("composer")).fill(welcome);
      await a.locator(tid("send")).click();
      await a.locator(tid("message") + '[data-own="true"]').filter({ hasText: welcome })
        .locator(tid("msg-delivery") + '[data-state="stored"]').waitFor();
      const read = client(carol, "read", joined.chat);
      assert.ok(read.includes(welcome), `the native client decrypts the browser's message: ${read}`);
      assert.ok(!read.includes(hello), "messages from before Carol joined stay unreadable to her");

      // B reloads: still signed in, history still there (IndexedDB), in order.
      await b.reload();
      await b.locator(tid("chat-name")).filter({ hasText: "Book club" }).waitFor();
      await b.locator(tid("message")).filter({ hasText: welcome }).waitFor();
      const texts = await b.locator(tid("msg-text")).allInnerTexts();
      const order = [hello, reply.split(", ")[1], fromCarol, welcome].map((t) => texts.findIndex((x) => x.includes(t)));
      assert.ok(order.every((i, k) => i >= 0 && (k === 0 || order[k - 1] < i)), `history after reload: ${texts}`);

      // A fresh navigation lands on the chat list.
      await a.goto(node.url + "/");
      await a.locator(tid("chat-row")).first().waitFor();
      await a.locator(tid("conn-state") + '[data-state="online"]').first().waitFor();
      if (run.mobile) {
        assert.ok(await a.locator(tid("chat-list")).isVisible(), "the chat list fills the phone screen");
      }
      await shot(a, "chat-list");
      await a.locator(tid("chat-row")).first().click();
      await a.locator(tid("open-chat-settings")).click();
      await a.locator(tid("member-row")).nth(2).waitFor();
      const members = await a.locator(tid("member-name")).allInnerTexts();
      assert.equal(members.length, 3, `members: ${members}`);
      await shot(a, "chat-settings");
      // A phone shows one pane at a time: the back button returns to the list.
      if (run.mobile) {
        await a.keyboard.press("Escape");
        await a.locator(tid("back")).click();
        await a.locator(tid("chat-list")).waitFor();
      }

      // The language switches live from the settings, and stays switched after a reload.
      const other = run.lang === "en" ? "ru" : "en";
      await a.goto(node.url + "/settings");
      await a.locator(tid("admin-badge")).waitFor(); // the admin link made Alice the node admin
      await a.locator(tid("lang-select")).selectOption(other);
      assert.equal(await a.getAttribute("html", "lang"), other);
      await a.reload();
      await a.locator(tid("settings")).waitFor();
      assert.equal(await a.locator(tid("lang-select")).inputValue(), other);
      await shot(a, "settings");

      // The node never saw the plaintexts.
      node.stop();
      await node.stopped();
      for (const text of [hello, reply.split(", ")[1], fromCarol, welcome]) {
        assert.ok(!dirContains(node.dataDir, text), `plaintext ${JSON.stringify(text)} found in the node's data dir`);
        assert.ok(!node.log().includes(text), "plaintext in the node's log");
      }
    } finally {
      await browser.close();
      node.stop();
    }
  });
}
