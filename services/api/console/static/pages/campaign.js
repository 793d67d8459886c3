/* One campaign: its plan and waves, cancelling it, and its report drawn as charts with every figure
 * also in a table (the charts draw the report's own numbers; nothing is recomputed here). */
"use strict";

Console.ready.then(async () => {
  const { api, shopPath, h, fill, fmt, t, chart, upliftChart, showError, download } = window.Console;
  const id = document.getElementById("campaign-view").dataset.campaignId;
  const errorLine = document.getElementById("campaign-error");
  const cancel = document.getElementById("campaign-cancel");
  const percent = window.Console.asPercent;

  function showCampaign(campaign) {
    document.getElementById("campaign-title").textContent = campaign.name;
    const facts = [
      ["campaign.status", t("status." + campaign.status)],
      ["campaign.strategies", campaign.strategies.map((strategy) => strategy.code + " ×" + strategy.weight).join(", ")],
      ["campaign.holdout", campaign.holdout_percent + "%"],
      ["campaign.attribution", campaign.attribution_window],
      ["campaign.budget", campaign.budget || t("campaign.no_budget")],
      ["campaign.segment", campaign.segment_id ? campaign.segment_id + " v" + campaign.segment_version : t("campaign.own_definition")],
      ["campaign.created", fmt.time(campaign.created_at) + " · " + campaign.created_by],
    ];
    document.getElementById("campaign-facts").replaceChildren(...facts.flatMap(([key, value]) => [h("dt", { text: t(key) }), h("dd", { "data-fact": key.split(".")[1], text: value })]));
    cancel.hidden = !(campaign.status === "scheduled" || campaign.status === "running");
    fill(document.querySelector("#waves-table tbody"), campaign.waves.map((wave) => h("tr", {},
      h("td", { class: "number", text: wave.wave }), h("td", { text: fmt.time(wave.at) }), h("td", { text: t("wave." + wave.audience) }),
      h("td", { text: t("status." + wave.status) }), h("td", { class: "number", text: fmt.number(wave.members) }))));
  }

  function showReport(report) {
    const groups = [...report.strategies.map((strategy) => ({ ...strategy, label: strategy.code })), { ...report.holdout, label: t("report.holdout"), holdout: true }];
    fill(document.querySelector("#report-table tbody"), groups.map((group) => h("tr", { "data-group": group.holdout ? "holdout" : group.code },
      h("th", { scope: "row", text: group.label }), h("td", { class: "number", text: fmt.number(group.members) }),
      h("td", { class: "number", text: group.holdout ? "–" : fmt.number(group.sent) }),
      h("td", { class: "number", text: group.holdout ? "–" : fmt.number(group.suppressed) }),
      h("td", { class: "number", text: fmt.number(group.converted) }), h("td", { class: "number", "data-rate": group.conversion_rate ?? "", text: fmt.percent(group.conversion_rate) }),
      h("td", { class: "number", text: group.holdout ? "–" : fmt.points(group.uplift && group.uplift.rate_diff) + " " + fmt.interval(group.uplift && group.uplift.ci95) }),
      h("td", { class: "number", text: group.holdout ? "–" : fmt.money(group.revenue) }),
      h("td", { class: "number", text: group.holdout ? "–" : fmt.money(group.cost) }),
      h("td", { class: "number", text: group.holdout ? "–" : fmt.ratio(group.roi) }))));

    chart("conversion-chart", {
      type: "bar",
      data: {
        labels: groups.map((group) => group.label),
        datasets: [{ label: t("report.rate") + " (%)", data: groups.map((group) => percent(group.conversion_rate)), backgroundColor: groups.map((group) => (group.holdout ? "#9ca3af" : "#3b82f6")) }],
      },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, title: { display: true, text: "%" } } } },
    });
    const treated = report.strategies;
    upliftChart("uplift-chart", treated.map((strategy) => strategy.code), treated.map((strategy) => strategy.uplift));
    chart("waves-chart", {
      type: "bar",
      data: {
        labels: report.waves.map((wave) => "#" + wave.wave + " " + fmt.time(wave.at)),
        datasets: [{ label: t("common.members"), data: report.waves.map((wave) => wave.members), backgroundColor: "#10b981" }],
      },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
  }

  async function load() {
    const base = shopPath("campaigns", id);
    const [campaign, report] = await Promise.all([api(base), api(base + "/report")]);
    showCampaign(campaign);
    showReport(report);
    window.Console.loaded();
  }

  cancel.addEventListener("click", async () => {
    if (!window.confirm(t("campaign.cancel_confirm"))) return;
    try {
      await api(shopPath("campaigns", id, "cancel"), { method: "POST" });
      await load();
    } catch (problem) {
      showError(errorLine, problem);
    }
  });
  document.getElementById("campaign-csv").addEventListener("click", async () => {
    const response = await api(shopPath("campaigns", id, "report") + "?format=csv", { raw: true });
    download(await response.blob(), "campaign-" + id + ".csv");
  });

  try {
    await load();
  } catch (problem) {
    showError(errorLine, problem);
  }
});
