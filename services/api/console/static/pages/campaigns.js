/* Campaigns: the shop's campaigns, and a plan (segment, strategies, holdout, waves) to forecast and launch. */
"use strict";

Console.ready.then(async () => {
  const { api, all, shopPath, h, fill, fmt, t, showError, markFields, notice } = window.Console;
  const form = document.getElementById("campaign-form");
  const errorLine = document.getElementById("campaign-error");
  const strategies = document.querySelector("#strategy-rows tbody");
  const waves = document.querySelector("#wave-rows tbody");

  function addRow(tbody, templateId) {
    const row = document.getElementById(templateId).content.firstElementChild.cloneNode(true);
    row.querySelector(".remove").addEventListener("click", () => { row.remove(); renumber(); });
    tbody.append(row);
    renumber();
    return row;
  }

  /** Each input's data-path names where the API reports its problems: body.strategies[1].weight. */
  function renumber() {
    [...strategies.children].forEach((row, index) => {
      for (const input of row.querySelectorAll("input, select")) {
        const name = input.className === "kind" ? "incentive.kind" : ["value", "min_spend", "points"].includes(input.className) ? "incentive." + input.className : input.className;
        input.dataset.path = `body.strategies[${index}].${name}`;
      }
    });
    [...waves.children].forEach((row, index) => {
      row.querySelector(".wave-number").textContent = String(index + 1);
      row.querySelector(".at").dataset.path = `body.waves[${index}].at`;
      row.querySelector(".audience").dataset.path = `body.waves[${index}].audience`;
    });
  }

  /** The message variables typed as a JSON object; a typing mistake is reported before anything is sent. */
  function variables(row) {
    const input = row.querySelector(".variables");
    const text = input.value.trim();
    if (!text) return {};
    try {
      const parsed = JSON.parse(text);
      if (parsed && typeof parsed === "object" && !Array.isArray(parsed)) return parsed;
    } catch (ignored) { /* reported below */ }
    throw new window.Console.ApiError(422, "invalid_variables", input.dataset.path + ": " + t("strategy.variables_invalid"));
  }

  function incentive(row) {
    const kind = row.querySelector(".kind").value;
    if (!kind) return null;
    const value = row.querySelector(".value").value.trim();
    const minSpend = row.querySelector(".min_spend").value.trim();
    if (kind === "points") return { kind, points: Number(row.querySelector(".points").value) };
    const result = { kind };
    if (value) result.value = value;
    if (minSpend) result.min_spend = minSpend;
    return result;
  }

  function plan() {
    const body = {
      name: document.getElementById("campaign-name").value,
      segment_id: document.getElementById("campaign-segment").value,
      holdout_percent: Number(document.getElementById("campaign-holdout").value),
      attribution_window: document.getElementById("campaign-attribution").value.trim(),
      strategies: [...strategies.children].map((row) => {
        const strategy = { code: row.querySelector(".code").value.trim(), weight: row.querySelector(".weight").value.trim(), template: row.querySelector(".template").value.trim(), variables: variables(row) };
        const offered = incentive(row);
        if (offered) strategy.incentive = offered;
        return strategy;
      }),
      waves: [...waves.children].map((row) => {
        const local = row.querySelector(".at").value;
        return { at: local ? new Date(local).toISOString() : "", audience: row.querySelector(".audience").value };
      }),
    };
    const budget = document.getElementById("campaign-budget").value.trim();
    if (budget) body.budget = budget;
    return body;
  }

  function failed(problem) {
    showError(errorLine, problem);
    markFields(form, problem);
  }

  async function forecast() {
    showError(errorLine, null);
    markFields(form, null);
    let answer;
    try {
      answer = await api(shopPath("campaigns", "forecast"), { method: "POST", body: plan() }); // plan() may refuse first
    } catch (problem) {
      failed(problem);
      return;
    }
    const conversions = answer.expected_conversions;
    const facts = [
      ["forecast.audience", fmt.number(answer.audience)],
      ["forecast.reachable", fmt.number(answer.reachable)],
      ["forecast.conversions", t("forecast.range", { value: fmt.ratio(conversions.value), low: fmt.ratio(conversions.low), high: fmt.ratio(conversions.high) })],
      ["forecast.revenue", answer.expected_revenue],
      ["forecast.cost", answer.expected_cost],
      ["forecast.within_budget", fmt.number(answer.members_within_budget)],
    ];
    document.getElementById("forecast-facts").replaceChildren(...facts.flatMap(([key, value]) => [h("dt", { text: t(key) }), h("dd", { "data-fact": key.split(".")[1], text: value })]));
    fill(document.querySelector("#forecast-stages tbody"), answer.stages.map((stage) => h("tr", {},
      h("td", { text: t("stage." + stage.stage) }), h("td", { class: "number", text: fmt.number(stage.audience) }),
      h("td", { class: "number", text: fmt.number(stage.reachable) }),
      h("td", { class: "number", text: fmt.percent(stage.rate.value) + " [" + fmt.percent(stage.rate.low) + ", " + fmt.percent(stage.rate.high) + "]" }),
      h("td", { class: "number", text: fmt.ratio(stage.expected_conversions) }))));
    document.getElementById("forecast").hidden = false;
  }

  async function create(event) {
    event.preventDefault();
    showError(errorLine, null);
    markFields(form, null);
    try {
      const created = await api(shopPath("campaigns"), { method: "POST", body: plan() });
      location.assign("/console/campaigns/" + encodeURIComponent(created.campaign_id));
    } catch (problem) {
      failed(problem);
    }
  }

  async function load() {
    const [campaigns, segments] = await Promise.all([all(shopPath("campaigns"), 5), all(shopPath("segments"), 5)]);
    fill(document.querySelector("#campaign-list tbody"), campaigns.map((item) => h("tr", { "data-campaign-id": item.campaign_id },
      h("td", {}, h("a", { href: "/console/campaigns/" + encodeURIComponent(item.campaign_id), text: item.name })),
      h("td", {}, h("span", { class: "status " + item.status, text: t("status." + item.status) })),
      h("td", { text: item.waves.map((wave) => t("status." + wave.status)).join(" → ") }),
      h("td", { text: fmt.time(item.created_at) }))), t("campaign.none"));
    const select = document.getElementById("campaign-segment");
    select.replaceChildren(...segments.filter((segment) => !segment.archived_at).map((segment) => h("option", { value: segment.segment_id, text: segment.name })));
  }

  document.getElementById("add-strategy").addEventListener("click", () => addRow(strategies, "strategy-template"));
  document.getElementById("add-wave").addEventListener("click", () => addRow(waves, "wave-template"));
  document.getElementById("campaign-forecast").addEventListener("click", forecast);
  form.addEventListener("submit", create);
  addRow(strategies, "strategy-template");
  addRow(waves, "wave-template");
  try {
    await load();
  } catch (problem) {
    notice(problem.message, "error");
  }
  window.Console.loaded();
});
