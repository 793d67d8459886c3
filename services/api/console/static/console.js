/* The console's shared code: the session, calls to the API, words, numbers and the page frame.
 * Every page script waits for Console.ready, which resolves once the token has been checked. */
"use strict";

(function () {
  const TOKEN = "console.token";
  const SHOP = "console.shop";
  const messages = JSON.parse(document.getElementById("console-messages").textContent);
  const language = document.body.dataset.language;
  const locale = language === "zh" ? "zh-CN" : "en-GB";

  function t(key, params) {
    let text = Object.prototype.hasOwnProperty.call(messages, key) ? messages[key] : key;
    for (const [name, value] of Object.entries(params || {})) text = text.split("{" + name + "}").join(String(value));
    return text;
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  const session = {
    get token() { return sessionStorage.getItem(TOKEN); },
    get shop() { return sessionStorage.getItem(SHOP); },
    scope: null,
    identity: null,
    get canChange() { return this.scope === "full"; },
    save(token, shop) { sessionStorage.setItem(TOKEN, token); sessionStorage.setItem(SHOP, shop); },
    clear() { sessionStorage.removeItem(TOKEN); sessionStorage.removeItem(SHOP); },
  };

  function signInAgain() {
    session.clear();
    const next = encodeURIComponent(location.pathname + location.search);
    location.assign("/console/signin?next=" + next);
  }

  async function api(path, options) {
    const opts = options || {};
    const headers = { Authorization: "Bearer " + (opts.token || session.token) };
    let body;
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    const response = await fetch(path, { method: opts.method || "GET", headers, body, cache: "no-store" });
    if (response.status === 401 && !opts.token) {
      signInAgain();
      throw new ApiError(401, "unauthorized", t("error.signed_out"));
    }
    if (!response.ok) {
      let code = "http_" + response.status;
      let message = response.statusText;
      try {
        const problem = await response.json();
        code = problem.error.code;
        message = problem.error.message;
      } catch (ignored) { /* not our error shape: keep the status line */ }
      throw new ApiError(response.status, code, message);
    }
    if (opts.raw) return response;
    return response.json();
  }

  /** The shop's path under /v1/shops/{shop}, with each part escaped. */
  function shopPath(...parts) {
    return "/v1/shops/" + encodeURIComponent(session.shop) + parts.map((part) => "/" + encodeURIComponent(part)).join("");
  }

  /** Every item of a paged list (limit 200 a page, at most `pages` pages). */
  async function all(path, pages) {
    const items = [];
    let cursor = null;
    for (let page = 0; page < (pages || 50); page++) {
      const separator = path.includes("?") ? "&" : "?";
      const document = await api(path + separator + "limit=200" + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
      items.push(...document.items);
      cursor = document.next_cursor;
      if (!cursor) break;
    }
    return items;
  }

  function h(tag, attributes, ...children) {
    const element = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") element.className = value;
      else if (name === "text") element.textContent = value;
      else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
      else element.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      element.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return element;
  }

  function fill(tbody, rows, emptyText) {
    tbody.replaceChildren(...rows);
    if (!rows.length) {
      const columns = tbody.closest("table").querySelectorAll("thead th").length || 1;
      tbody.append(h("tr", { class: "empty" }, h("td", { colspan: columns, text: emptyText || t("common.none") })));
    }
  }

  const fmt = {
    time(value) {
      if (!value) return "–";
      return new Date(value).toLocaleString(locale, { dateStyle: "medium", timeStyle: "short" });
    },
    number(value) { return value === null || value === undefined ? "–" : Number(value).toLocaleString(locale); },
    percent(value, digits) {
      if (value === null || value === undefined) return "–";
      return (Number(value) * 100).toLocaleString(locale, { minimumFractionDigits: digits ?? 1, maximumFractionDigits: digits ?? 1 }) + "%";
    },
    points(value) {
      if (value === null || value === undefined) return "–";
      const pp = Number(value) * 100;
      return (pp > 0 ? "+" : "") + pp.toLocaleString(locale, { minimumFractionDigits: 1, maximumFractionDigits: 1 }) + " pp";
    },
    interval(pair) { return pair ? "[" + fmt.points(pair[0]) + ", " + fmt.points(pair[1]) + "]" : "–"; },
    money(value) { return value === null || value === undefined ? "–" : value; },
    ratio(value) { return value === null || value === undefined ? "–" : Number(value).toLocaleString(locale, { maximumFractionDigits: 2 }); },
  };

  function notice(text, kind) {
    const box = document.getElementById("notice");
    box.textContent = text;
    box.className = kind || "info";
    box.hidden = !text;
  }

  function showError(element, error) {
    element.textContent = error ? (error.code ? t("error.prefix", { code: error.code }) + " " : "") + error.message : "";
    element.hidden = !error;
  }

  /** Split an API message "path: problem; path: problem" into [path, problem] pairs. */
  function problems(message) {
    return message.split("; ").map((part) => {
      const at = part.indexOf(": ");
      return at > 0 ? [part.slice(0, at), part.slice(at + 2)] : ["", part];
    });
  }

  /** Mark the inputs whose data-path (or the row's) a 422 message names, with the problem as their title. */
  function markFields(form, error) {
    for (const marked of form.querySelectorAll("[aria-invalid]")) {
      marked.removeAttribute("aria-invalid");
      marked.removeAttribute("title");
    }
    if (!error || error.status !== 422) return;
    for (const [path, problem] of problems(error.message)) {
      let field = null;
      for (const candidate of form.querySelectorAll("[data-path]")) {
        const own = candidate.dataset.path;
        if (path === own || path.startsWith(own + ".") || path.startsWith(own + "[")) {
          if (!field || own.length > field.dataset.path.length) field = candidate;
        }
      }
      if (field) {
        field.setAttribute("aria-invalid", "true");
        field.title = problem;
      }
    }
  }

  const charts = {};
  function chart(canvasId, config) {
    if (charts[canvasId]) charts[canvasId].destroy();
    const options = config.options || {};
    options.animation = false;
    options.responsive = true;
    options.maintainAspectRatio = false;
    config.options = options;
    charts[canvasId] = new window.Chart(document.getElementById(canvasId), config);
    return charts[canvasId];
  }

  /** Called by a page once its first data is shown: browsers (and tests) can then use it. */
  function loaded() {
    document.body.dataset.ready = "true";
  }

  /** A rate (0.1234) as the percentage a chart draws (12.34); null stays null (no bar, no point). */
  function asPercent(value) {
    return value === null || value === undefined ? null : Math.round(value * 10000) / 100;
  }

  /** Each group's uplift over the holdout: its 95 % interval as a floating bar, its estimate as a point. */
  function upliftChart(canvasId, labels, uplifts) {
    return chart(canvasId, {
      type: "bar",
      data: {
        labels,
        datasets: [
          { type: "bar", label: t("report.ci95"), data: uplifts.map((uplift) => (uplift && uplift.ci95 ? [asPercent(uplift.ci95[0]), asPercent(uplift.ci95[1])] : null)), backgroundColor: "rgba(59,130,246,0.35)", borderColor: "#3b82f6", borderWidth: 1, barPercentage: 0.3 },
          { type: "line", label: t("report.rate_diff"), data: uplifts.map((uplift) => (uplift ? asPercent(uplift.rate_diff) : null)), showLine: false, pointRadius: 6, pointBackgroundColor: "#1e3a8a", borderColor: "#1e3a8a" },
        ],
      },
      options: { scales: { y: { title: { display: true, text: t("report.points_axis") } } } },
    });
  }

  function download(blob, filename) {
    const link = h("a", { href: URL.createObjectURL(blob), download: filename });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  async function start() {
    if (document.body.dataset.page === "signin") return;
    if (!session.token || !session.shop) {
      signInAgain();
      return new Promise(() => {});
    }
    const who = await api("/console/session");
    session.scope = who.scope;
    session.identity = who.identity;
    document.getElementById("session-shop").textContent = session.shop;
    const scope = document.getElementById("session-scope");
    scope.textContent = t(who.scope === "full" ? "session.full" : "session.read");
    scope.classList.add(who.scope);
    document.getElementById("sign-out").addEventListener("click", signInAgain);
    if (!session.canChange) {
      for (const element of document.querySelectorAll("[data-needs-full]")) {
        element.disabled = true;
        element.title = t("session.read_only_note");
      }
      for (const element of document.querySelectorAll("[data-read-only-note]")) element.hidden = false;
    }
  }

  const ready = new Promise((resolve) => {
    document.addEventListener("DOMContentLoaded", () => {
      start().then(resolve, (error) => notice(error.message, "error"));
    });
  });

  window.Console = { t, api, all, shopPath, h, fill, fmt, notice, showError, problems, markFields, chart, asPercent, upliftChart, download, loaded, session, ready, ApiError, language, locale };
})();
