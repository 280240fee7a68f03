"use strict";
document.getElementById("login").addEventListener("submit", async (e) => {
  e.preventDefault();
  const r = await fetch("/api/login", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({token: document.getElementById("token").value})});
  if (r.ok) { location.href = "/"; } else { document.getElementById("msg").textContent = "wrong token"; }
});
