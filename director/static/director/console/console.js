/* The director's console: each page is a frame that this script fills from the page's
   JSON (/api/v1.0/console/...) and refreshes every data-refresh seconds. No library,
   nothing fetched from another host. */
"use strict";

(function () {
  const body = document.body;
  const API = body.dataset.api;
  const REFRESH_MS = Math.max(1, parseFloat(body.dataset.refresh || "5")) * 1000;
  const $ = (selector) => document.querySelector(selector);
  const ENTITIES = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
  const esc = (value) => String(value === null || value === undefined ? "" : value)
    .replace(/[&<>"']/g, (c) => ENTITIES[c]);

  /* A server's page: by kind and name, as an origin and a cache may share a name. */
  const serverPath = (kind, name) => encodeURIComponent(kind) + "/" + encodeURIComponent(name);

  function problem(text) {
    const box = $("#problem");
    box.hidden = !text;
    box.textContent = text || "";
  }

  async function getJSON(path, headers) {
    const answer = await fetch(API + path, {
      credentials: "same-origin",
      headers: Object.assign({ Accept: "application/json" }, headers || {}),
    });
    let document = null;
    try { document = await answer.json(); } catch (error) { document = null; }
    if (!answer.ok) {
      throw new Error((document && document.msg) || "HTTP " + answer.status);
    }
    return document;
  }

  function stamp(nowIso) {
    const when = nowIso ? new Date(nowIso) : new Date();
    $("#updated").textContent = "Updated " + when.toISOString().slice(0, 19).replace("T", " ") +
      " UTC; refreshed every " + REFRESH_MS / 1000 + " s.";
  }

  function age(seconds) {
    if (seconds < 0) { return "in " + age(-seconds).replace(" ago", ""); }
    if (seconds < 60) { return Math.round(seconds) + " s ago"; }
    if (seconds < 3600) { return Math.floor(seconds / 60) + " min " + Math.round(seconds % 60) + " s ago"; }
    if (seconds < 86400) { return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min ago"; }
    return Math.floor(seconds / 86400) + " d ago";
  }

  function ago(iso, nowIso) {
    if (!iso) { return ""; }
    return age((Date.parse(nowIso) - Date.parse(iso)) / 1000);
  }

  function timeAndAge(iso, nowIso) {
    if (!iso) { return "never"; }
    return iso.slice(0, 19).replace("T", " ") + " UTC (" + ago(iso, nowIso) + ")";
  }

  /* Polls `load` every REFRESH_MS; `now()` on the returned object polls at once. */
  function poll(load) {
    let timer = null;
    async function run() {
      clearTimeout(timer);
      try {
        await load();
        problem("");
      } catch (error) {
        problem("Could not refresh: " + error.message);
      } finally {
        timer = setTimeout(run, REFRESH_MS);
      }
    }
    run();
    return { now: run };
  }

  /* A line chart of one or more series (null values leave a gap), as inline SVG. */
  function chart(element, series, options) {
    const width = 600, height = 90, top = 10;
    // Given order (JavaScript lists keys such as "404" before the others).
    const names = options.order || Object.keys(series);
    const length = Math.max(1, ...names.map((name) => series[name].length));
    let highest = 0;
    names.forEach((name) => series[name].forEach((v) => { if (v !== null && v > highest) { highest = v; } }));
    const scale = highest > 0 ? highest : 1;
    const x = (i) => (length > 1 ? (i * width) / (length - 1) : 0);
    const y = (v) => height - (v / scale) * (height - top);
    let lines = "";
    names.forEach((name) => {
      let run = [];
      const flush = () => {
        if (run.length) {
          lines += '<polyline class="series-' + esc(name) + '" points="' + run.join(" ") + '"></polyline>';
        }
        run = [];
      };
      series[name].forEach((v, i) => {
        if (v === null) { flush(); } else { run.push(x(i).toFixed(1) + "," + y(v).toFixed(1)); }
      });
      flush();
    });
    const top_label = highest > 0 ? Number(highest.toPrecision(3)) : 0;
    element.innerHTML =
      '<svg viewBox="0 0 ' + width + " " + height + '" preserveAspectRatio="none">' +
      '<line x1="0" y1="' + height + '" x2="' + width + '" y2="' + height + '" stroke="#d8dee6"></line>' +
      lines + "</svg>" +
      '<div class="keys">max ' + esc(top_label) + " · " + esc(options.span) +
      names.map((name) => '<i class="series-' + esc(name) + '" style="background:currentColor"></i>' +
        '<span class="series-' + esc(name) + '">' + esc(options.labels ? options.labels[name] || name : name) + "</span>").join("") +
      "</div>";
    element.querySelectorAll(".keys i").forEach((key) => {
      key.style.background = getComputedStyle(key).stroke;
    });
  }

  function card(label, value, small) {
    return '<div class="card"><div class="label">' + esc(label) + '</div><div class="value' +
      (small ? " small" : "") + '">' + value + "</div></div>";
  }

  function stateBadge(server) {
    return '<span class="state ' + esc(server.colour) + '">' + esc(server.state) + "</span>";
  }

  /* "ejected, 27 s left": the seconds count down between refreshes. */
  function stateDetail(server) {
    if (server.colour === "ejected" && server.pool) {
      const until = Date.now() + server.pool.ejectedFor * 1000;
      return '<span class="detail">ejected, <span class="countdown" data-until="' + until + '">' +
        Math.ceil(server.pool.ejectedFor) + "</span> s left · ejected " + server.pool.timesEjected + "×</span>";
    }
    if (server.detail === server.state) { return ""; }
    return ' <span class="detail muted">' + esc(server.detail) + "</span>";
  }

  setInterval(() => {
    document.querySelectorAll(".countdown").forEach((element) => {
      element.textContent = Math.max(0, Math.ceil((Number(element.dataset.until) - Date.now()) / 1000));
    });
  }, 1000);

  function poolBar(pool) {
    if (!pool) { return '<span class="muted">no pool</span>'; }
    const total = Math.max(1, pool.limit + pool.maxWaiters);
    return '<div class="pool" title="active ' + pool.active + ", waiting " + pool.waiting +
      ", limit " + pool.limit + '"><span class="active" style="width:' + (100 * pool.active) / total +
      '%"></span><span class="waiting" style="width:' + (100 * pool.waiting) / total + '%"></span></div>' +
      '<span class="pool-text">' + pool.active + " / " + pool.waiting + " / " + pool.limit + "</span>";
  }

  function healthCell(server, nowIso) {
    const test = server.healthTest;
    const when = test.checkedAt ? " · " + ago(test.checkedAt, nowIso) : "";
    return '<span title="' + esc(test.message) + '">' + esc(test.result) + esc(when) + "</span>";
  }

  // --- pages -------------------------------------------------------------------------------

  const ANSWER_LABELS = { redirect: "307/200", "404": "404", "429": "429", "5xx": "5xx", other: "other 4xx" };
  const ANSWER_ORDER = ["redirect", "404", "429", "5xx", "other"];
  const SHARE_COLOURS = { redirect: "var(--ok)", "404": "var(--accent)", "429": "var(--warn)", "5xx": "var(--ejected)", other: "#6a4c93" };

  /* The external registry (null: this director is its own): URL, reachability, and
     the age of each dataset polled from it. */
  function externalRegistryCards(registry) {
    if (!registry) return "";
    const state = registry.reachable ? "reachable" : "unreachable" +
      (registry.lastError ? ": " + esc(registry.lastError) : "");
    return card("external registry", esc(registry.url || "not known yet") + "<br>" + state, true) +
      registry.datasets.map((set) => card("registry " + set.name,
        (set.ageSeconds === null ? "never polled" : "polled " + age(set.ageSeconds) + ", " +
          set.entries + " entries") +
        (set.lastError ? "<br>last poll failed: " + esc(set.lastError) : ""), true)).join("");
  }

  function overviewPage() {
    poll(async () => {
      const data = await getJSON("/overview");
      const health = data.health;
      $("#verdict .badge").className = "badge " + health.status;
      $("#verdict .badge").textContent = health.status;
      $("#verdict .reasons").innerHTML = health.reasons.length
        ? health.reasons.map((reason) => "<li>" + esc(reason) + "</li>").join("")
        : "<li>every server answers its stats; the process keeps up</li>";
      const counts = data.counts;
      const shares = ANSWER_ORDER.filter((name) => data.shares[name] > 0)
        .map((name) => ANSWER_LABELS[name] + " " + (100 * data.shares[name]).toFixed(1) + " %").join(", ");
      $("#counts").innerHTML =
        card("origins routable / registered", counts.routableOrigins + " / " + counts.origins) +
        card("caches routable / registered", counts.routableCaches + " / " + counts.caches) +
        card("namespaces", counts.namespaces) +
        card("servers ejected", counts.ejected) +
        card("answers per second (15 min)", data.answersPerSecond.toFixed(2)) +
        card("shares of the answers", shares || "none yet", true) +
        card("stat outcomes per second", data.statPerSecond.toFixed(2)) +
        card("requests in flight", health.inflight + " of " + health.maxInflight) +
        card("greenlets", health.greenlets) +
        card("loop lag", (1000 * health.loopLagSeconds).toFixed(1) + " ms") +
        card("registry database", data.databaseReachable ? "reachable" :
          "unreachable since " + esc(health.databaseUnreachableSince), !data.databaseReachable) +
        externalRegistryCards(data.externalRegistry);
      chart($("#chart-answers"), data.series.answers, { span: "15 min", labels: ANSWER_LABELS, order: ANSWER_ORDER });
      $("#shares").innerHTML = ANSWER_ORDER.map((name) =>
        '<span title="' + esc(ANSWER_LABELS[name]) + '" style="width:' + 100 * data.shares[name] +
        "%;background:" + SHARE_COLOURS[name] + '"></span>').join("");
      chart($("#chart-stat"), data.series.stat, { span: "15 min", order: ["present", "absent", "failed", "rejected"] });
      chart($("#chart-lag"), { lag: data.series.loopLag }, { span: "15 min", labels: { lag: "loop lag" } });
      stamp(data.now);
    });
  }

  /* A filtered, sorted, paged table: servers and namespaces share it. */
  function pagedTable(path, render, defaults) {
    const form = $("#filters");
    const query = Object.assign({ page: 1 }, defaults || {});
    let pages = 1;
    const poller = poll(async () => {
      const params = new URLSearchParams();
      Object.keys(query).forEach((key) => { if (query[key] !== "") { params.set(key, query[key]); } });
      const data = await getJSON(path + "?" + params.toString());
      pages = data.pages;
      query.page = data.page;
      $("#pageno").textContent = "page " + data.page + " of " + data.pages;
      $("#count").textContent = data.matched + " of " + data.total + " match";
      form.querySelector('[data-step="-1"]').disabled = data.page <= 1;
      form.querySelector('[data-step="1"]').disabled = data.page >= data.pages;
      render(data);
      stamp(data.now);
    });
    form.addEventListener("input", (event) => {
      if (event.target.name) {
        query[event.target.name] = event.target.value;
        query.page = 1;
        poller.now();
      }
    });
    form.querySelectorAll("[data-step]").forEach((button) => {
      button.addEventListener("click", () => {
        query.page = Math.min(pages, Math.max(1, query.page + Number(button.dataset.step)));
        poller.now();
      });
    });
    return { query: query, refresh: poller.now };
  }

  function serversPage() {
    const table = pagedTable("/servers", (data) => {
      $("#servers tbody").innerHTML = data.servers.map((server) =>
        '<tr data-kind="' + esc(server.kind) + '" data-name="' + esc(server.name) + '" class="row-' + esc(server.colour) + '">' +
        '<td><a href="' + esc(server.detailUrl) + '">' + esc(server.name) + "</a></td>" +
        "<td>" + esc(server.kind) + "</td>" +
        "<td>" + esc(server.status) + " · " + server.statusWeight.toFixed(2) + "</td>" +
        "<td>" + healthCell(server, data.now) + "</td>" +
        '<td class="routing">' + stateBadge(server) + " " + stateDetail(server) + "</td>" +
        "<td>" + poolBar(server.pool) + "</td>" +
        '<td class="num">' + (server.pool ? server.pool.consecutiveFailures : "") + "</td>" +
        "<td>" + (server.lastAdvertisedAt ? esc(ago(server.lastAdvertisedAt, data.now)) : '<span class="muted">' + esc(server.source) + "</span>") + "</td>" +
        "<td>" + esc(server.version) + "</td>" +
        '<td><a href="' + esc(server.adminUrl) + '">admin</a></td></tr>').join("");
      document.querySelectorAll("#servers th[data-sort]").forEach((th) => {
        const key = th.dataset.sort;
        th.classList.toggle("sorted-asc", data.sort === key);
        th.classList.toggle("sorted-desc", data.sort === "-" + key);
      });
    }, { sort: "kind" });
    document.querySelectorAll("#servers th[data-sort]").forEach((th) => {
      th.addEventListener("click", () => {
        const key = th.dataset.sort;
        table.query.sort = table.query.sort === key ? "-" + key : key;
        table.refresh();
      });
    });
  }

  function serverPage() {
    const path = serverPath(body.dataset.kind, body.dataset.name);
    poll(async () => {
      const data = await getJSON("/servers/" + path);
      const server = data.server, pool = server.pool;
      const location = server.latitude === null ? "unknown" :
        server.latitude.toFixed(3) + ", " + server.longitude.toFixed(3);
      $("#server-card").innerHTML =
        card("routing", stateBadge(server) + " " + stateDetail(server)) +
        card("kind · source", esc(server.kind) + " · " + esc(server.source), true) +
        card("data URL", esc(server.url), true) +
        card("status · weight", esc(server.status) + " · " + server.statusWeight.toFixed(3)) +
        card("health test", healthCell(server, data.now) + '<div class="muted small">' + esc(server.healthTest.message) + "</div>", true) +
        card("stat pool (active / waiting / limit)", poolBar(pool), true) +
        card("consecutive failures", pool ? pool.consecutiveFailures : "–") +
        card("times ejected", pool ? pool.timesEjected : "–") +
        card("last advertisement", esc(timeAndAge(server.lastAdvertisedAt, data.now)), true) +
        card("advertisement expires", server.expiresAt ? esc(timeAndAge(server.expiresAt, data.now)) : "never (defined in the admin)", true) +
        card("version", esc(server.version), true) +
        card("location", esc(location), true) +
        card("admin", '<a href="' + esc(server.adminUrl) + '">change this server</a>', true);
      const series = data.series;
      chart($("#chart-redirects"), { redirects: series.redirects }, { span: "60 min" });
      chart($("#chart-outcomes"), { present: series.present, absent: series.absent, failed: series.failed, rejected: series.rejected }, { span: "60 min" });
      chart($("#chart-latency"), { latency: series.latencyMs }, { span: "60 min", labels: { latency: "ms" } });
      $("#namespaces").innerHTML = data.namespaces.map((path) => "<li>" + esc(path) + "</li>").join("") || '<li class="muted">none</li>';
      $("#downtimes tbody").innerHTML = data.downtimes.map((downtime) =>
        "<tr" + (downtime.active ? ' class="chosen"' : "") + "><td>" + esc(timeAndAge(downtime.startsAt, data.now)) +
        "</td><td>" + (downtime.endsAt ? esc(timeAndAge(downtime.endsAt, data.now)) : "indefinite") + "</td><td>" +
        esc(downtime.downtimeClass) + "</td><td>" + esc(downtime.source) + "</td><td>" + esc(downtime.description) + "</td></tr>").join("") ||
        '<tr><td colspan="5" class="muted">none</td></tr>';
      stamp(data.now);
    });
  }

  function mapPage() {
    const NS = "http://www.w3.org/2000/svg";
    poll(async () => {
      const data = await getJSON("/map");
      const group = $("#markers");
      group.replaceChildren();
      data.points.forEach((point) => {
        const x = point.longitude + 180, y = 90 - point.latitude;  // worldmap.project
        let marker;
        if (point.kind === "origin") {
          marker = document.createElementNS(NS, "rect");
          marker.setAttribute("x", (x - 1.5).toFixed(2));
          marker.setAttribute("y", (y - 1.5).toFixed(2));
          marker.setAttribute("width", "3");
          marker.setAttribute("height", "3");
        } else {
          marker = document.createElementNS(NS, "circle");
          marker.setAttribute("cx", x.toFixed(2));
          marker.setAttribute("cy", y.toFixed(2));
          marker.setAttribute("r", "1.7");
        }
        marker.setAttribute("class", "marker " + point.colour);
        marker.dataset.kind = point.kind;
        marker.dataset.name = point.name;
        const title = document.createElementNS(NS, "title");
        title.textContent = point.name + " (" + point.kind + "): " + point.state;
        marker.appendChild(title);
        marker.addEventListener("click", () => { window.location.href = point.detailUrl; });
        group.appendChild(marker);
      });
      $("#unlocated").textContent = data.unlocated.length
        ? "Not on the map (no coordinate, and GeoIP found none for its host): " + data.unlocated.join(", ")
        : "";
      stamp();
    });
  }

  function namespacesPage() {
    const chips = (servers) => servers.map((server) =>
      '<a class="chip ' + esc(server.colour) + '" href="' + esc(server.detailUrl) + '">' + esc(server.name) + "</a>").join("") ||
      '<span class="muted">none</span>';
    pagedTable("/namespaces", (data) => {
      $("#namespaces tbody").innerHTML = data.namespaces.map((namespace) =>
        "<tr><td><code>" + esc(namespace.path) + "</code></td><td>" + (namespace.requireToken ? "needs a token" : "public") +
        "</td><td>" + chips(namespace.origins) + "</td><td>" + chips(namespace.caches) + "</td></tr>").join("");
    });
  }

  function whyPage() {
    const form = $("#why");
    const number = (value) => (value === null || value === undefined ? "" : String(value));
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const fields = new FormData(form);
      const params = new URLSearchParams({ path: fields.get("path") });
      ["client_ip", "coordinate"].forEach((key) => { if (fields.get(key)) { params.set(key, fields.get(key)); } });
      if (fields.get("origin")) { params.set("origin", "true"); }
      const headers = fields.get("token") ? { Authorization: "Bearer " + fields.get("token") } : {};
      try {
        const data = await getJSON("/explain?" + params.toString(), headers);
        problem("");
        const client = data.client;
        $("#summary").textContent =
          "path:      " + data.path + " (" + data.route + " route)\n" +
          "namespace: " + (data.namespace || "(none)") + "\n" +
          "client:    " + client.latitude.toFixed(4) + "," + client.longitude.toFixed(4) + " (" + client.source + ")" +
          (client.ip ? " ip " + client.ip : "") + "\n" +
          "sort:      " + data.sortMethod + "\n" +
          "answer:    " + (data.status === 307 ? "307 Location: " + data.location : data.status + " " + data.message);
        $("#explain tbody").innerHTML = data.servers.map((server) => {
          const w = server.weights || {};
          return "<tr" + (server.rank ? ' class="chosen"' : "") + ' data-kind="' + esc(server.kind) + '" data-name="' + esc(server.name) + '"><td>' +
            (server.rank ? "#" + server.rank : "") + '</td><td><a href="/view/servers/' + esc(serverPath(server.kind, server.name)) + '/">' +
            esc(server.name) + "</a></td><td>" + esc(server.kind) + '</td><td class="num">' + esc(number(server.distanceKm)) +
            '</td><td class="num">' + esc(number(w.distance)) + '</td><td class="num">' + esc(number(w.status)) +
            '</td><td class="num">' + esc(number(w.availability)) + '</td><td class="num">' + esc(number(w.total)) +
            "</td><td>" + esc(server.stat) + "</td><td>" + esc(server.excluded) + "</td></tr>";
        }).join("");
        $("#answer").hidden = false;
        stamp();
      } catch (error) {
        problem("Could not explain: " + error.message);
      }
    });
    if (form.elements.path.value) { form.requestSubmit(); }
  }

  const PAGES = {
    overview: overviewPage,
    servers: serversPage,
    server: serverPage,
    map: mapPage,
    namespaces: namespacesPage,
    why: whyPage,
  };
  const start = PAGES[body.dataset.page];
  if (start) { start(); }
})();
