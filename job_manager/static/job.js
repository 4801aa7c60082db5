// Keep a job page up to date while the job runs, by polling the JSON API.
// Everything crawled is written with textContent, never as HTML.
(function () {
  "use strict";
  const main = document.getElementById("job");
  if (!main) return;
  const jobUrl = main.dataset.jobUrl;
  const POLL_MS = 1000;
  const OPEN = ["queued", "running"];
  const SVG = "http://www.w3.org/2000/svg";

  function cell(row, value) {
    const td = row.insertCell();
    td.textContent = value === null || value === undefined ? "" : String(value);
    return td;
  }

  function statusBadge(element, status) {
    element.textContent = status;
    element.className = "status status-" + status;
  }

  function showJob(job) {
    statusBadge(document.getElementById("job-status"), job.status);
    const p = job.pages;
    const ended = p.done + p.failed + p.skipped;
    const bar = document.getElementById("progress");
    bar.max = Math.max(p.total, 1);
    bar.value = ended;
    document.getElementById("progress-text").textContent =
      ended + " of " + p.total + " pages ended";
    document.querySelectorAll("#counts dd").forEach(function (dd) {
      dd.textContent = p[dd.dataset.status];
    });
    const cancel = document.getElementById("cancel-form");
    if (cancel && !OPEN.includes(job.status)) cancel.remove();
  }

  function showPages(pages) {
    const body = document.querySelector("#pages tbody");
    const rows = document.createDocumentFragment();
    pages.forEach(function (page) {
      const row = document.createElement("tr");
      rows.appendChild(row);
      cell(row, page.url).className = "url";
      cell(row, page.depth);
      const badge = document.createElement("span");
      statusBadge(badge, page.status);
      row.insertCell().appendChild(badge);
      cell(row, page.http_status);
      cell(row, page.title);
      cell(row, page.word_count);
      cell(row, page.unique_words);
      const error = row.insertCell();
      if (page.error) {
        const code = document.createElement("code");
        code.textContent = page.error;
        error.append(code, " " + (page.message || ""));
      }
      cell(row, page.worker);
      // The task that carried the page: pages of one task travelled together.
      const task = cell(row, page.task_id ? page.task_id.slice(0, 8) : "");
      task.className = "task";
      task.title = page.task_id || "";
      cell(row, page.elapsed_ms);
    });
    body.replaceChildren(rows);
  }

  function svgElement(name, attributes, text) {
    const element = document.createElementNS(SVG, name);
    Object.entries(attributes).forEach(function ([key, value]) {
      element.setAttribute(key, value);
    });
    if (text !== undefined) element.textContent = text;
    return element;
  }

  function showWords(words) {
    const chart = document.getElementById("chart");
    const top = words.length ? words[0].count : 1;
    chart.setAttribute("viewBox", "0 0 600 " + Math.max(words.length, 1) * 22);
    const bars = words.map(function (w, i) {
      const width = Math.round((380 * w.count) / top * 10) / 10;
      const group = svgElement("g", { transform: "translate(0," + i * 22 + ")" });
      group.append(
        svgElement("text", { x: 150, y: 15, "text-anchor": "end", class: "label" }, w.word),
        svgElement("rect", { x: 158, y: 3, height: 16, width: width, class: "bar" }),
        svgElement("text", { x: 164 + width, y: 15, class: "value" }, String(w.count))
      );
      return group;
    });
    chart.replaceChildren(...bars);
    const empty = document.getElementById("no-words");
    if (empty && words.length) empty.remove();
  }

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(url + " answered " + response.status);
    return response.json();
  }

  async function refresh() {
    let job;
    try {
      job = await getJson(jobUrl);
      const [pages, words] = await Promise.all([
        getJson(jobUrl + "/pages?order=newest&limit=" + main.dataset.newestPages),
        getJson(jobUrl + "/words?limit=20"),
      ]);
      showJob(job);
      showPages(pages);
      showWords(words);
    } catch (error) {
      console.warn("wordcrawl: could not refresh the job", error);
    }
    if (!job || OPEN.includes(job.status)) setTimeout(refresh, POLL_MS);
  }

  setTimeout(refresh, POLL_MS);
})();
