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

function actionUrl(box, button) {
  // "retry all failed" carries its own URL; a task's buttons act on the box's task.
  if (button.dataset.url) return button.dataset.url;
  return "api/tasks/" + box.dataset.taskId + "/" + button.dataset.action;
}

function outcome(body) {
  if (body.retried !== undefined) return body.retried + " failed tasks sent back to the queue";
  return "task is " + body.status;
}

async function operate(box, button, status) {
  if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
  const token = askToken();
  if (!token) return;
  status.textContent = button.dataset.action + "...";
  const response = await fetch(actionUrl(box, button), {
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
  status.textContent = outcome(body);
  window.location.reload();
}

function wireActions(box) {
  const status = box.querySelector(".action-status");
  box.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    if (button.dataset.action === "forget") {
      localStorage.removeItem(TOKEN_KEY);
      status.textContent = "token forgotten";
    } else {
      operate(box, button, status).catch((error) => {
        status.textContent = "failed: " + error;
      });
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-refresh]").forEach(refreshOverview);
  document.querySelectorAll(".actions").forEach(wireActions);
});
