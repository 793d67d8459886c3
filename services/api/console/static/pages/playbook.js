/* The shop's playbook: its stored versions, the overrides document to edit, and each problem the API
 * finds shown on the line of the document where it occurs. */
"use strict";

Console.ready.then(async () => {
  const { api, all, shopPath, h, t, fmt, notice, problems } = window.Console;
  const form = document.getElementById("playbook-form");
  const editor = document.getElementById("playbook-overrides");
  const gutter = document.getElementById("playbook-gutter");
  const problemList = document.getElementById("playbook-problems");
  const versions = document.getElementById("playbook-versions");
  let shown = null;

  /** The line (from 1) of `path` ("rules.first_purchase_gift.holdout_percent") in JSON.stringify(doc, null, 2). */
  function lineOf(doc, path) {
    let line = 1;
    let node = doc;
    for (const key of path.split(".")) {
      if (node === null || typeof node !== "object" || !(key in node)) return line;
      for (const [name, value] of Object.entries(node)) {
        line += 1;
        if (name === key) break;
        line += JSON.stringify(value, null, 2).split("\n").length - 1;
      }
      node = node[key];
    }
    return line;
  }

  function drawGutter(marks) {
    const count = editor.value.split("\n").length;
    const items = [];
    for (let number = 1; number <= count; number++) {
      items.push(h("li", { class: marks.has(number) ? "marked" : null, title: marks.get(number) || null, text: marks.has(number) ? "●" : "" }));
    }
    gutter.replaceChildren(...items);
  }

  function selectLine(number) {
    const lines = editor.value.split("\n");
    const start = lines.slice(0, number - 1).reduce((sum, text) => sum + text.length + 1, 0);
    editor.focus();
    editor.setSelectionRange(start, start + lines[number - 1].length);
  }

  function showProblems(doc, found) {
    const marks = new Map();
    problemList.replaceChildren(...found.map(([path, problem]) => {
      const number = lineOf(doc, path);
      marks.set(number, (marks.has(number) ? marks.get(number) + "; " : "") + path + ": " + problem);
      return h("li", { "data-path": path, "data-line": number },
        h("button", { type: "button", class: "link", text: t("playbook.line", { line: number }), onclick: () => selectLine(number) }),
        " ", h("code", { text: path }), " ", problem);
    }));
    editor.setAttribute("aria-invalid", found.length ? "true" : "false");
    drawGutter(marks);
  }

  function show(stored) {
    shown = stored;
    const overrides = stored.overrides || {};
    document.getElementById("playbook-heading").textContent = stored.version
      ? t("playbook.version_heading", { version: stored.version, who: stored.created_by, at: fmt.time(stored.created_at) })
      : t("playbook.file_only");
    editor.value = JSON.stringify(overrides, null, 2);
    document.getElementById("playbook-effective").textContent = JSON.stringify(stored.playbook, null, 2);
    showProblems(overrides, []);
  }

  async function listVersions(current) {
    const items = await all(shopPath("playbook", "versions"), 5);
    versions.replaceChildren(...items.map((item) => h("li", { "data-version": item.version, "aria-current": item.version === current ? "true" : null },
      h("button", { type: "button", class: "link", text: "v" + item.version, onclick: async () => show(await api(shopPath("playbook") + "?version=" + item.version)) }),
      h("span", { class: "hint", text: " " + fmt.time(item.created_at) + " · " + item.created_by }))));
    if (!items.length) versions.append(h("li", { class: "hint", text: t("playbook.no_versions") }));
  }

  editor.addEventListener("input", () => drawGutter(new Map()));
  document.getElementById("playbook-reset").addEventListener("click", () => show(shown));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let doc;
    try {
      doc = JSON.parse(editor.value);
    } catch (problem) {
      problemList.replaceChildren(h("li", { text: t("playbook.not_json", { problem: problem.message }) }));
      return;
    }
    editor.value = JSON.stringify(doc, null, 2);
    try {
      const stored = await api(shopPath("playbook"), { method: "PUT", body: doc });
      show(stored);
      await listVersions(stored.version);
      notice(t("playbook.stored", { version: stored.version }), "info");
    } catch (problem) {
      if (problem.status === 422 && problem.code === "invalid_playbook") showProblems(doc, problems(problem.message));
      else problemList.replaceChildren(h("li", { text: problem.message }));
    }
  });

  const current = await api(shopPath("playbook"));
  show(current);
  await listVersions(current.version);
  window.Console.loaded();
});
