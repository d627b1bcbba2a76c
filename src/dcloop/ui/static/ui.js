// dcloop dashboard: confirm changes of state, refresh live figures, load slow sections.
"use strict";

function confirmActions() {
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
}

async function fill(target, url) {
  try {
    const answer = await fetch(url, { headers: { Accept: "application/json" } });
    const data = await answer.json();
    if (answer.ok && typeof data.html === "string") {
      target.innerHTML = data.html;
      target.dataset.updated = new Date().toISOString();
    } else if (data.error) {
      target.dataset.error = data.error;
    }
  } catch (err) {
    target.dataset.error = String(err); // the server went away: keep the last figures on screen
  }
}

function poll() {
  document.querySelectorAll("[data-poll]").forEach((target) => {
    const every = Math.max(Number(target.dataset.every) || 10, 1) * 1000;
    window.setInterval(() => fill(target, target.dataset.poll), every);
  });
  document.querySelectorAll("[data-src]").forEach((target) => fill(target, target.dataset.src));
}

document.addEventListener("DOMContentLoaded", () => {
  confirmActions();
  poll();
});
