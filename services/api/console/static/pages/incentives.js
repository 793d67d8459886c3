/* The incentives report per rule: its uplift over the holdout with the 95 % interval, and money. */
"use strict";

Console.ready.then(() => {
  const { api, shopPath, h, fill, fmt, t, chart, upliftChart, showError } = window.Console;
  const form = document.getElementById("incentives-period");
  const fromInput = document.getElementById("incentives-from");
  const toInput = document.getElementById("incentives-to");
  const errorLine = document.getElementById("incentives-error");
  const day = (date) => date.toISOString().slice(0, 10);

  async function load() {
    showError(errorLine, null);
    const query = new URLSearchParams();
    if (fromInput.value) query.set("from", new Date(fromInput.value + "T00:00:00").toISOString());
    if (toInput.value) query.set("to", new Date(toInput.value + "T00:00:00").toISOString());
    let report;
    try {
      report = await api(shopPath("incentives", "report") + "?" + query);
    } catch (problem) {
      showError(errorLine, problem);
      return;
    }
    const rules = report.items;
    fill(document.querySelector("#incentives-table tbody"), rules.map((item) => h("tr", { "data-rule": item.rule },
      h("th", { scope: "row", text: item.rule }), h("td", { class: "number", text: fmt.number(item.issued) }),
      h("td", { class: "number", text: fmt.number(item.redeemed) }), h("td", { class: "number", text: fmt.percent(item.redemption_rate) }),
      h("td", { class: "number", text: item.treated.converted + " / " + item.treated.members }),
      h("td", { class: "number", text: item.holdout.converted + " / " + item.holdout.members }),
      h("td", { class: "number", text: fmt.points(item.uplift.rate_diff) + " " + fmt.interval(item.uplift.ci95) }),
      h("td", { class: "number", text: item.attributed_revenue }), h("td", { class: "number", text: item.cost }),
      h("td", { class: "number", text: fmt.ratio(item.roi) }))), t("incentives.none"));
    upliftChart("incentives-uplift-chart", rules.map((item) => item.rule), rules.map((item) => item.uplift));
    chart("incentives-money-chart", {
      type: "bar",
      data: {
        labels: rules.map((item) => item.rule),
        datasets: [
          { label: t("incentives.issued_value"), data: rules.map((item) => Number(item.issued_value)), backgroundColor: "#93c5fd" },
          { label: t("incentives.redeemed_value"), data: rules.map((item) => Number(item.redeemed_value)), backgroundColor: "#3b82f6" },
          { label: t("report.revenue"), data: rules.map((item) => Number(item.attributed_revenue)), backgroundColor: "#10b981" },
        ],
      },
      options: { scales: { y: { beginAtZero: true } } },
    });
  }

  const now = new Date();
  fromInput.value = day(new Date(now.getTime() - 30 * 86400000));
  toInput.value = day(new Date(now.getTime() + 86400000));
  const params = new URLSearchParams(location.search);
  if (params.get("from")) fromInput.value = params.get("from");
  if (params.get("to")) toInput.value = params.get("to");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  load().then(window.Console.loaded);
});
