/* Segments: build a definition from the tag catalogue and the member fields, see its size while
 * editing (the API's preview), save it as a new segment or a new version, export its members. */
"use strict";

Console.ready.then(async () => {
  const { api, all, shopPath, h, t, fmt, showError, markFields, download, session } = window.Console;
  // {field: {kind, ops}}: the definition language's fields, as the API checks them.
  const FIELDS = JSON.parse(document.getElementById("segment-fields").textContent);

  const form = document.getElementById("segment-form");
  const list = document.getElementById("segment-list");
  const conditions = document.getElementById("segment-conditions");
  const template = document.getElementById("condition-template");
  const jsonBox = document.getElementById("segment-json");
  const errorLine = document.getElementById("segment-error");
  const sizeOut = document.getElementById("segment-size");
  const sizeState = document.getElementById("segment-size-state");
  const sampleOut = document.getElementById("segment-sample");
  const exportButtons = [document.getElementById("segment-export-csv"), document.getElementById("segment-export-jsonl")];
  let current = null; // the saved segment shown, or null for a new one
  let custom = null; // a definition the rows cannot show, kept as written
  let previewSeq = 0;
  let previewTimer = null;

  const tags = (await api(shopPath("tags"))).items;

  function option(value, label) { return h("option", { value, text: label }); }

  function addCondition(kind, node, negate) {
    const row = template.content.firstElementChild.cloneNode(true);
    row.dataset.kind = kind;
    const subject = row.querySelector(".subject");
    const op = row.querySelector(".op");
    const value = row.querySelector(".value");
    row.querySelector(".negate").checked = Boolean(negate);
    if (kind === "tag") {
      subject.append(...tags.map((tag) => option(tag.id, t("segment.tag_option", { tag: tag.id, members: fmt.number(tag.members) }))));
      op.hidden = true;
      value.hidden = true;
      if (node) {
        if (![...subject.options].some((item) => item.value === node.tag)) subject.append(option(node.tag, node.tag));
        subject.value = node.tag;
      }
    } else {
      subject.append(...Object.keys(FIELDS).map((field) => option(field, t("field." + field))));
      const setOps = () => {
        const chosen = op.value;
        op.replaceChildren(...FIELDS[subject.value].ops.map((name) => option(name, name)));
        if (FIELDS[subject.value].ops.includes(chosen)) op.value = chosen;
        value.placeholder = t("segment.value_hint_" + (op.value === "in" ? "in" : op.value === "between" ? "between" : FIELDS[subject.value].kind));
      };
      subject.addEventListener("change", setOps);
      op.addEventListener("change", setOps);
      if (node) subject.value = node.field;
      setOps();
      if (node) {
        op.value = node.op;
        setOps();
        value.value = Array.isArray(node.value) ? node.value.join(", ") : String(node.value);
      }
    }
    row.querySelector(".remove").addEventListener("click", () => { row.remove(); changed(); });
    conditions.append(row);
    return row;
  }

  function parseValue(type, text) {
    const trimmed = text.trim();
    if (type === "number") return trimmed === "" || isNaN(Number(trimmed)) ? trimmed : Number(trimmed);
    // Money is sent as the decimal string typed, so no digit is lost to a float.
    if (type === "boolean") return trimmed === "true" ? true : trimmed === "false" ? false : trimmed;
    return trimmed;
  }

  function nodeOf(row) {
    const subject = row.querySelector(".subject").value;
    let node;
    if (row.dataset.kind === "tag") node = { tag: subject };
    else {
      const type = FIELDS[subject].kind;
      const op = row.querySelector(".op").value;
      const text = row.querySelector(".value").value;
      const value = op === "in" || op === "between" ? text.split(/[,，]/).map((part) => parseValue(type, part)).filter((part) => part !== "") : parseValue(type, text);
      node = { field: subject, op, value };
    }
    return row.querySelector(".negate").checked ? { not: node } : node;
  }

  function definition() {
    if (custom) return custom;
    const combine = form.querySelector("input[name=combine]:checked").value;
    return { [combine]: [...conditions.children].map(nodeOf) };
  }

  /** Rows for a definition of plain parts joined by all/any; false when it has another shape. */
  function showDefinition(written) {
    conditions.replaceChildren();
    custom = null;
    const plain = (node) => node && (node.tag !== undefined || node.field !== undefined);
    let combine = "all";
    let parts;
    if (written && (written.all || written.any)) {
      combine = written.all ? "all" : "any";
      parts = written[combine];
    } else parts = [written];
    const simple = Array.isArray(parts) && parts.every((part) => plain(part) || (part && plain(part.not)));
    if (!simple) {
      custom = written;
      return false;
    }
    form.querySelector(`input[name=combine][value=${combine}]`).checked = true;
    for (const part of parts) {
      const node = plain(part) ? part : part.not;
      addCondition(node.tag !== undefined ? "tag" : "field", node, !plain(part));
    }
    return true;
  }

  function setSize(size, state, sample) {
    sizeOut.textContent = size === null ? "–" : fmt.number(size);
    sizeState.textContent = state || "";
    sampleOut.textContent = sample && sample.length ? t("segment.sample", { members: sample.join(", ") }) : "";
  }

  async function preview() {
    const seq = ++previewSeq;
    const body = { definition: definition() };
    try {
      const answer = await api(shopPath("segments", "preview"), { method: "POST", body });
      if (seq !== previewSeq) return;
      showError(errorLine, null);
      markFields(form, null);
      setSize(answer.size, t("segment.size_now"), answer.sample);
    } catch (problem) {
      if (seq !== previewSeq) return;
      showError(errorLine, problem);
      markFields(form, problem);
      setSize(null, "");
    }
  }

  function changed() {
    if (!custom) jsonBox.value = JSON.stringify(definition(), null, 2);
    if (!session.canChange) {
      setSize(current ? current.size : null, t("segment.size_read_only"));
      return;
    }
    sizeState.textContent = t("segment.size_counting");
    clearTimeout(previewTimer);
    previewTimer = setTimeout(preview, 300);
  }

  function edit(segment) {
    current = segment;
    document.getElementById("segment-heading").textContent = segment ? t("segment.editing", { name: segment.name, version: segment.version }) : t("segment.new");
    document.getElementById("segment-name").value = segment ? segment.name : "";
    document.getElementById("segment-description").value = segment && segment.description ? segment.description : "";
    showDefinition(segment ? segment.definition : { all: [] });
    document.getElementById("segment-json-box").open = Boolean(custom);
    jsonBox.value = JSON.stringify(segment ? segment.definition : { all: [] }, null, 2);
    for (const button of exportButtons) button.disabled = !segment;
    for (const item of list.querySelectorAll("[aria-current]")) item.removeAttribute("aria-current");
    if (segment) list.querySelector(`[data-segment-id="${CSS.escape(segment.segment_id)}"]`)?.setAttribute("aria-current", "true");
    changed();
  }

  async function refreshList() {
    const segments = (await all(shopPath("segments"), 5)).filter((segment) => !segment.archived_at);
    list.replaceChildren(...segments.map((segment) => h("li", { "data-segment-id": segment.segment_id },
      h("button", { type: "button", class: "link", text: segment.name, onclick: async () => edit(await api(shopPath("segments", segment.segment_id))) }),
      h("span", { class: "hint", text: " v" + segment.latest_version }))));
    if (!segments.length) list.append(h("li", { class: "hint", text: t("segment.none_saved") }));
  }

  conditions.addEventListener("input", changed);
  conditions.addEventListener("change", changed);
  for (const radio of form.querySelectorAll("input[name=combine]")) radio.addEventListener("change", changed);
  document.getElementById("add-tag").addEventListener("click", () => { custom = null; addCondition("tag"); changed(); });
  document.getElementById("add-field").addEventListener("click", () => { custom = null; addCondition("field"); changed(); });
  document.getElementById("segment-new").addEventListener("click", () => edit(null));
  document.getElementById("segment-json-apply").addEventListener("click", () => {
    let written;
    try {
      written = JSON.parse(jsonBox.value);
    } catch (problem) {
      showError(errorLine, { message: t("segment.json_invalid", { problem: problem.message }) });
      return;
    }
    showDefinition(written);
    changed();
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: document.getElementById("segment-name").value, definition: definition() };
    const description = document.getElementById("segment-description").value;
    if (description) body.description = description;
    try {
      const saved = current
        ? await api(shopPath("segments", current.segment_id), { method: "PUT", body })
        : await api(shopPath("segments"), { method: "POST", body });
      await refreshList();
      edit(await api(shopPath("segments", saved.segment_id)));
      window.Console.notice(t("segment.saved_notice", { name: saved.name, version: saved.version }), "info");
    } catch (problem) {
      showError(errorLine, problem);
      markFields(form, problem);
    }
  });

  for (const button of exportButtons) {
    button.addEventListener("click", async () => {
      const format = button.id.endsWith("csv") ? "csv" : "jsonl";
      try {
        const response = await api(shopPath("segments", current.segment_id, "export") + "?format=" + format, { raw: true });
        download(await response.blob(), current.segment_id + "." + format);
      } catch (problem) {
        showError(errorLine, problem);
      }
    });
  }

  await refreshList();
  edit(null);
  window.Console.loaded();
});
