// taskstore dashboard: refresh the overview, and send retry / cancel / pause / resume with
// the token.
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
  // "retry all failed" and a queue's pause / resume carry their own URL; a task's
  // buttons act on the box's task.
  if (button.dataset.url) return button.dataset.url;
  return "api/tasks/" + box.dataset.taskId + "/" + button.dataset.action;
}

function outcome(body) {
  if (body.retried !== undefined) return body.retried + " failed tasks sent back to the queue";
  if (body.paused !== undefined) return "queue " + body.name + (body.paused ? " paused" : " resumed");
  return "task is " + body.status;
}

function statusFor(button) {
  // A button in the overview's queue table sits in the refreshed section, outside any
  // .actions box: it reports to the page's one status line.
  const box = button.closest(".actions") || document;
  return box.querySelector(".action-status") || { textContent: "" };
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

function onClick(event) {
  // One listener for the whole document: the overview's buttons are replaced every few
  // seconds by the refresh, and a listener on them would go with them.
  if (event.target.classList.contains("toast")) event.target.textContent = ""; // dismissed
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const status = statusFor(button);
  if (button.dataset.action === "forget") {
    localStorage.removeItem(TOKEN_KEY);
    showForget();
    status.textContent = "token forgotten";
    return;
  }
  operate(button.closest(".actions"), button, status).catch((error) => {
    status.textContent = "failed: " + error;
  });
}

function showForget() {
  // Only a browser that keeps a token has one to forget.
  const kept = localStorage.getItem(TOKEN_KEY) !== null;
  document.querySelectorAll("button[data-action='forget']").forEach((button) => {
    button.hidden = !kept;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  showForget();
  document.querySelectorAll("[data-refresh]").forEach(refreshOverview);
  document.addEventListener("click", onClick);
});
