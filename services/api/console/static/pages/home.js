/* The morning view: where the shop's members stand, its campaigns, last month's incentives, quarantine. */
"use strict";

Console.ready.then(async () => {
  const { api, all, shopPath, h, fill, fmt, t, chart, notice } = window.Console;
  const STAGES = ["prospect", "new", "active", "at_risk", "dormant", "churned"];

  async function lifecycle() {
    const tags = (await api(shopPath("tags"))).items;
    const counts = Object.fromEntries(tags.filter((tag) => tag.id.startsWith("lifecycle.stage_")).map((tag) => [tag.id.slice("lifecycle.stage_".length), tag.members]));
    const stages = STAGES.filter((stage) => stage in counts);
    fill(document.querySelector("#lifecycle-table tbody"), stages.map((stage) =>
      h("tr", { "data-stage": stage }, h("td", { text: t("stage." + stage) }), h("td", { class: "number", text: fmt.number(counts[stage]) }))));
    chart("lifecycle-chart", {
      type: "bar",
      data: { labels: stages.map((stage) => t("stage." + stage)), datasets: [{ label: t("common.members"), data: stages.map((stage) => counts[stage]), backgroundColor: "#3b82f6" }] },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
  }

  async function campaigns() {
    // Those scheduled or running, then the latest others, eight at most.
    const items = await all(shopPath("campaigns"), 1);
    const open = (item) => item.status === "scheduled" || item.status === "running";
    const shown = [...items.filter(open), ...items.filter((item) => !open(item))].slice(0, 8);
    fill(document.querySelector("#home-campaigns tbody"), shown.map((item) => {
      const next = item.waves.find((wave) => wave.status === "pending" || wave.status === "running");
      return h("tr", {}, h("td", {}, h("a", { href: "/console/campaigns/" + encodeURIComponent(item.campaign_id), text: item.name })),
        h("td", {}, h("span", { class: "status " + item.status, text: t("status." + item.status) })),
        h("td", { text: next ? fmt.time(next.at) : "–" }));
    }), t("campaign.none"));
  }

  async function incentives() {
    const to = new Date();
    const from = new Date(to.getTime() - 30 * 86400000);
    const query = "?from=" + encodeURIComponent(from.toISOString()) + "&to=" + encodeURIComponent(to.toISOString());
    const report = await api(shopPath("incentives", "report") + query);
    fill(document.querySelector("#home-incentives tbody"), report.items.map((item) => h("tr", {},
      h("td", { text: item.rule }), h("td", { class: "number", text: fmt.number(item.issued) }),
      h("td", { class: "number", text: fmt.number(item.redeemed) }), h("td", { class: "number", text: fmt.points(item.uplift.rate_diff) }),
      h("td", { class: "number", text: fmt.ratio(item.roi) }))));
  }

  async function quarantine() {
    const items = (await api("/v1/admin/quarantine?limit=200")).items.filter((item) => item.shop_id === window.Console.session.shop);
    const line = document.getElementById("home-quarantine");
    line.replaceChildren(items.length ? t("home.quarantined", { count: items.length }) : t("home.none_quarantined"));
  }

  const results = await Promise.allSettled([lifecycle(), campaigns(), incentives(), quarantine()]);
  const failed = results.find((result) => result.status === "rejected");
  if (failed) notice(failed.reason.message, "error");
  window.Console.loaded();
});
