/* Sign in: check the token against the API, then keep it for this browser tab only. */
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { api, session, showError, t } = window.Console;
  const form = document.getElementById("signin-form");
  const error = document.getElementById("signin-error");
  const shop = document.getElementById("signin-shop");
  shop.value = session.shop || "";
  window.Console.loaded();
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = document.getElementById("signin-token").value.trim();
    showError(error, null);
    try {
      await api("/console/session", { token });
    } catch (problem) {
      showError(error, { message: problem.status === 401 ? t("signin.rejected") : problem.message });
      return;
    }
    session.save(token, shop.value.trim());
    const next = new URLSearchParams(location.search).get("next");
    // Only a path of this console: never a full URL from the query string.
    location.assign(next && next.startsWith("/console/") && !next.startsWith("//") ? next : "/console/");
  });
});
