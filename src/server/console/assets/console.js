// belroute console: the only script. Elements with data-poll="URL" are refreshed from URL
// every 5 seconds (the Calls page's live list); a logged-out session reloads to the login form.
"use strict";
(function () {
  function poll(el) {
    fetch(el.getAttribute("data-poll"), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        if (response.status === 401) { window.location.reload(); return null; }
        return response.ok ? response.text() : null;
      })
      .then(function (html) { if (html !== null) { el.innerHTML = html; } })
      .catch(function () { /* offline for a moment: try again at the next tick */ });
  }
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-poll]").forEach(function (el) {
      window.setInterval(function () { poll(el); }, 5000);
    });
  });
})();
