// checkin-worker dashboard: progressive enhancement only. Every form works without this file.
(function () {
  "use strict";

  function csrfOf(form) {
    var field = form.querySelector('input[name="csrf"]');
    return field ? field.value : "";
  }

  // Acknowledge / resolve a follow-up in place: the server answers with the card's new HTML.
  function inPlace(form, event) {
    event.preventDefault();
    var card = form.closest("[data-followup]");
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    fetch(form.action, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      headers: { "X-Requested-With": "fetch", "X-CSRF-Token": csrfOf(form) },
      credentials: "same-origin",
    })
      .then(function (response) {
        return response.json().then(function (data) { return { status: response.status, data: data }; });
      })
      .then(function (result) {
        if (result.status === 401) { window.location.assign("/login?next=" + encodeURIComponent(location.pathname)); return; }
        if (result.data && result.data.html && card) {
          var holder = document.createElement("div");
          holder.innerHTML = result.data.html;
          var fresh = holder.firstElementChild;
          card.replaceWith(fresh);
          var focus = fresh.querySelector("button, summary");
          if (focus) { focus.focus(); }
          return;
        }
        showError(card, (result.data && result.data.error) || "Something went wrong; reload the page.");
        buttons.forEach(function (b) { b.disabled = false; });
      })
      .catch(function () {
        showError(card, "The server did not answer; check the connection and try again.");
        buttons.forEach(function (b) { b.disabled = false; });
      });
  }

  function showError(card, text) {
    if (!card) { window.alert(text); return; }
    var box = card.querySelector(".rowerror");
    if (!box) {
      box = document.createElement("div");
      box.className = "rowerror error";
      box.setAttribute("role", "alert");
      card.appendChild(box);
    }
    box.textContent = text;  // textContent: never parsed as HTML
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement)) { return; }
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { event.preventDefault(); return; }
    if (form.hasAttribute("data-inplace") && window.fetch) { inPlace(form, event); }
  });

  // The queue refreshes itself every minute, unless someone is typing a note.
  var queue = document.querySelector("[data-autorefresh]");
  if (queue) {
    setInterval(function () {
      var busy = document.querySelector("details[open], textarea:focus, input:focus");
      var typed = Array.prototype.some.call(document.querySelectorAll("textarea"), function (t) { return t.value.trim() !== ""; });
      if (!busy && !typed && document.visibilityState === "visible") { window.location.reload(); }
    }, 60000);
  }

  // Schedule form: the weekday only matters for a weekly rule.
  var freq = document.querySelector('select[name="frequency"]');
  var weekday = document.querySelector("[data-weekday]");
  function syncWeekday() { if (freq && weekday) { weekday.hidden = freq.value !== "WEEKLY"; } }
  if (freq) { freq.addEventListener("change", syncWeekday); syncWeekday(); }
})();
