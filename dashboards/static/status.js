// The status page: readiness of the system, refreshed every 5 s. Served from this origin only
// (the Content-Security-Policy allows no inline script).
async function refresh() {
  const el = document.getElementById("status");
  const list = document.getElementById("checks");
  try {
    const r = await fetch("/readyz");
    const body = await r.json();
    el.textContent = r.ok ? "Sẵn sàng (ready)" : "Chưa sẵn sàng (not ready)";
    el.className = r.ok ? "ok" : "bad";
    list.replaceChildren(...Object.entries(body.checks).map(([k, v]) => {
      const li = document.createElement("li");
      li.textContent = `${k}: ${v}`;
      return li;
    }));
  } catch (e) {
    el.textContent = "Mất kết nối (offline)";
    el.className = "bad";
  }
}
refresh();
setInterval(refresh, 5000);
