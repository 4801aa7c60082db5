// The dashboard: poll /api/activity and redraw the rate chart and the tables.
// Everything from the server is written with textContent, never as HTML.
(function () {
  "use strict";
  const main = document.getElementById("dashboard");
  if (!main) return;
  const POLL_MS = 2000;
  const SVG = "http://www.w3.org/2000/svg";
  const WIDTH = 600;
  const HEIGHT = 160;

  function row(table, values) {
    const tr = document.createElement("tr");
    values.forEach(function (value) {
      const td = tr.insertCell();
      td.textContent = value === null || value === undefined ? "" : String(value);
    });
    return tr;
  }

  function svg(name, attributes) {
    const element = document.createElementNS(SVG, name);
    Object.entries(attributes).forEach(function ([key, value]) {
      element.setAttribute(key, value);
    });
    return element;
  }

  // One point per bucket of the window, zero where nothing ended.
  function series(activity) {
    const step = activity.bucket_seconds * 1000;
    const end = Math.floor(Date.now() / step) * step;
    const start = end - activity.minutes * 60 * 1000;
    const counts = new Map(
      activity.pages_ended.map(function (b) { return [Date.parse(b.at), b.pages]; })
    );
    const points = [];
    for (let t = start; t <= end; t += step) {
      points.push((counts.get(t) || 0) / activity.bucket_seconds);
    }
    return points;
  }

  function drawChart(points) {
    const chart = document.getElementById("rate-chart");
    const top = Math.max(1, ...points);
    const x = function (i) { return (i / Math.max(1, points.length - 1)) * WIDTH; };
    const y = function (v) { return HEIGHT - 10 - (v / top) * (HEIGHT - 30); };
    const line = points.map(function (v, i) { return x(i).toFixed(1) + "," + y(v).toFixed(1); });
    const label = svg("text", { x: 4, y: 14, class: "value" });
    label.textContent = "max " + top.toFixed(1) + " pages/s";
    chart.replaceChildren(
      svg("polyline", { points: line.join(" "), class: "rate-line", fill: "none" }),
      label
    );
  }

  function percent(value) {
    return value === null || value === undefined ? "" : Math.round(value) + "%";
  }

  function seconds(value) {
    return value === null || value === undefined ? "–" : value.toFixed(1) + " s";
  }

  function workerRow(w) {
    const slots = w.page_slots === null || w.page_slots === undefined ? "" : " / " + w.page_slots;
    return row("workers", [
      w.name,
      w.online ? "yes" : "no",
      w.host,
      percent(w.cpu_percent),
      percent(w.cpu_machine_percent),
      w.running + slots,
      w.pages_per_second.toFixed(1),
      w.done,
    ]);
  }

  function machineRow(m) {
    return row("machines", [
      m.host,
      m.cpus,
      percent(m.busy_percent),
      percent(m.workers_cpu_percent),
      m.workers.join(", "),
    ]);
  }

  function show(activity) {
    const points = series(activity);
    // The last bucket is still filling: "now" is the one before it.
    document.getElementById("rate").textContent = (points[points.length - 2] || 0).toFixed(1);
    document.getElementById("queue").textContent =
      activity.queue_length === null ? "broker away" : activity.queue_length;
    const wait = activity.queue_wait;
    document.getElementById("wait").textContent =
      seconds(wait.p50_seconds) + " / " + seconds(wait.p95_seconds);
    const bound = document.getElementById("bound");
    bound.textContent = activity.bound.text;
    bound.dataset.kind = activity.bound.kind;
    document.querySelectorAll("#bound-rules li").forEach(function (li) {
      li.classList.toggle("current", li.dataset.kind === activity.bound.kind);
    });
    document.getElementById("online").textContent = activity.workers.filter(function (w) {
      return w.online;
    }).length;
    drawChart(points);
    document.querySelector("#workers tbody").replaceChildren(...activity.workers.map(workerRow));
    document.querySelector("#machines tbody").replaceChildren(
      ...activity.machines.map(machineRow)
    );
    document.querySelector("#newest tbody").replaceChildren(
      ...activity.newest_pages.map(function (p) {
        return row("newest", [p.url, p.status, p.worker, p.elapsed_ms, p.job_id.slice(0, 8)]);
      })
    );
  }

  async function refresh() {
    try {
      const response = await fetch(main.dataset.activityUrl, {
        headers: { Accept: "application/json" },
      });
      if (response.ok) show(await response.json());
    } catch (error) {
      console.warn("wordcrawl: could not refresh the dashboard", error);
    }
    setTimeout(refresh, POLL_MS);
  }

  refresh();
})();
