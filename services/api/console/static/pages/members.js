/* Member lookup: the status, then every effect of the member's events as one timeline. */
"use strict";

Console.ready.then(() => {
  const { api, all, shopPath, h, fill, fmt, t, showError } = window.Console;
  const form = document.getElementById("member-search");
  const input = document.getElementById("member-id");
  const error = document.getElementById("member-error");
  const view = document.getElementById("member-view");

  function facts(status) {
    const rows = [
      ["member.tier", status.tier ? status.tier.name : "–"],
      ["member.stage", status.lifecycle.stage ? t("stage." + status.lifecycle.stage) : "–"],
      ["member.net_spend", status.metrics.net_spend],
      ["member.paid_orders", fmt.number(status.metrics.paid_orders)],
      ["member.last_order", fmt.time(status.metrics.last_order_at)],
      ["member.points", fmt.number(status.points.balance)],
      ["member.score", fmt.number(status.score.value) + (status.score.band ? " · " + status.score.band : "")],
      ["member.rfm", status.rfm ? status.rfm.segment + " (R" + status.rfm.r + " F" + status.rfm.f + " M" + status.rfm.m + ")" : "–"],
      ["member.next_tier", status.next_tier ? t("member.next_tier_needs", { tier: status.next_tier.code, spend: status.next_tier.spend_needed, orders: status.next_tier.orders_needed }) : "–"],
      ["member.joined", fmt.time(status.joined_at)],
      ["member.as_of", fmt.time(status.as_of)],
    ];
    return rows.flatMap(([key, value]) => [h("dt", { text: t(key) }), h("dd", { "data-fact": key.split(".")[1], text: value })]);
  }

  function timeline(actions, notifications, decisions, ledger, coupons) {
    const entries = [];
    for (const action of actions) {
      const incentive = action.incentive ? " · " + action.incentive.kind + (action.incentive.code ? " " + action.incentive.code : "") : "";
      entries.push([action.occurred_at, "action", action.rule, action.message.template + incentive]);
    }
    for (const outcome of notifications) entries.push([outcome.at, "notification", outcome.channel + " · " + t("outcome." + outcome.status), outcome.reason || ""]);
    for (const decision of decisions) entries.push([decision.at, "decision", decision.rule, t("decision.outcome", { outcome: decision.outcome, reason: decision.reason })]);
    for (const line of ledger) entries.push([line.at, "points", t("ledger." + line.kind), (line.points > 0 ? "+" : "") + line.points]);
    for (const coupon of coupons) if (coupon.redeemed_at) entries.push([coupon.redeemed_at, "coupon", t("timeline.coupon_redeemed", { code: coupon.code }), coupon.order_id || ""]);
    entries.sort((a, b) => Date.parse(b[0]) - Date.parse(a[0]));
    return entries.map(([at, kind, what, detail]) => h("tr", { "data-kind": kind },
      h("td", { text: fmt.time(at) }), h("td", {}, h("span", { class: "kind " + kind, text: t("timeline." + kind) })),
      h("td", { text: what }), h("td", { text: detail })));
  }

  async function show(memberId) {
    showError(error, null);
    view.hidden = true;
    const base = shopPath("members", memberId);
    let status;
    try {
      status = await api(base);
    } catch (problem) {
      showError(error, problem);
      return;
    }
    const [actions, notifications, decisions, ledger, coupons] = await Promise.all([
      all(base + "/actions", 5), all(base + "/notifications", 5), all(base + "/decisions", 5),
      all(base + "/points/ledger", 5), all(base + "/coupons", 5),
    ]);
    document.getElementById("member-title").textContent = t("member.title", { member: status.member_id });
    document.getElementById("member-facts").replaceChildren(...facts(status));
    document.getElementById("member-tags").replaceChildren(...status.tags.map((tag) => h("li", { class: "chip", text: tag })));
    fill(document.querySelector("#member-timeline tbody"), timeline(actions, notifications, decisions, ledger, coupons));
    fill(document.querySelector("#member-coupons tbody"), coupons.map((coupon) => h("tr", {},
      h("td", { text: coupon.code }), h("td", { text: coupon.rule }), h("td", { class: "number", text: coupon.value }),
      h("td", { text: t("coupon." + coupon.status) }), h("td", { text: fmt.time(coupon.expires_at) }))));
    fill(document.querySelector("#member-ledger tbody"), ledger.map((line) => h("tr", {},
      h("td", { text: fmt.time(line.at) }), h("td", { text: t("ledger." + line.kind) }),
      h("td", { class: "number", text: fmt.number(line.points) }), h("td", { text: fmt.time(line.expires_at) }))));
    view.hidden = false;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const memberId = input.value.trim();
    history.replaceState(null, "", "?member=" + encodeURIComponent(memberId));
    show(memberId);
  });
  const asked = new URLSearchParams(location.search).get("member");
  if (asked) {
    input.value = asked;
    show(asked).then(window.Console.loaded);
  } else window.Console.loaded();
});
