// taskstore dashboard: refresh the overview, and send retry / cancel with the token.
"use strict";

const TOKEN_KEY = "taskstore.dashboard.token";

function refreshOverview(section) {
  const url = section.dataset.refresh;
  setInterval(async () => {
    if (document.hidden) return;
    try {
      const response = await fetch(url, { headers: { Accept: "text/html" } });
      if (response.ok) section.innerHTML = await response.text();
    } catch (error) {
      // the server is restarting or unreachable: keep the last numbers
    }
  }, 5000);
}

function askToken() {
  let token = localStorage.getItem(TOKEN_KEY);
  if (!token) {
    token = window.prompt("Dashboard token (it is kept in this browser):");
    if (token) token = token.trim();
  }
  return token || null;
}

async function operate(box, action, status) {
  const token = askToken();
  if (!token) return;
  status.textContent = action + "...";
  const response = await fetch("api/tasks/" + box.dataset.taskId + "/" + action, {
    method: "POST",
    headers: { Authorization: "Bearer " + token },
  });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401) localStorage.removeItem(TOKEN_KEY);
  if (!response.ok) {
    status.textContent = body.error || "failed: HTTP " + response.status;
    return;
  }
  localStorage.setItem(TOKEN_KEY, token);
  status.textContent = "task is " + body.status;
  window.location.reload();
}

function wireActions(box) {
  const status = box.querySelector(".action-status");
  box.addEventListener("click", (event) => {
    const action = event.target.dataset && event.target.dataset.action;
    if (action === "forget") {
      localStorage.removeItem(TOKEN_KEY);
      status.textContent = "token forgotten";
    } else if (action) {
      operate(box, action, status).catch((error) => {
        status.textContent = "failed: " + error;
      });
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh]").forEach(refreshOverview);
  document.querySelectorAll(".actions").forEach(wireActions);
});
