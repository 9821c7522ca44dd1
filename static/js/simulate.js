// The scenario editor: POST the workload, draw every era; step through the protocol view.
(function () {
  "use strict";
  var status = document.getElementById("status");
  var errorBox = document.getElementById("error");

  // One colour per era on every page (the server's map, embedded in the page).
  var colours = JSON.parse((document.getElementById("era-colours") || {}).textContent || "{}");
  var IEC = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

  function trace(name, seconds, values, size) {
    // A simulation has no calendar: days from its start.
    return {type: "scatter", mode: "lines", name: name,
            line: {width: 2, color: colours[name]},
            x: seconds.map(function (s) { return s / 86400; }),
            y: values.map(function (v) { return v / size; })};
  }
  function unitOf(series) {  // the binary unit the largest value reads best in
    var top = 0, k = 0;
    series.forEach(function (vals) { vals.forEach(function (v) { top = Math.max(top, Math.abs(v)); }); });
    while (k < IEC.length - 1 && top >= Math.pow(1024, k + 1)) { k += 1; }
    return [IEC[k], Math.pow(1024, k)];
  }
  function figure(title, traces, suffix) {
    return {data: traces, layout: {title: {text: title, font: {size: 14}, x: 0, xanchor: "left"},
      height: 280, margin: {l: 60, r: 16, t: 36, b: 44}, legend: {orientation: "h", y: -0.3},
      xaxis: {type: "linear", title: {text: "days from the start", font: {size: 11}},
              rangemode: "tozero"},
      yaxis: {rangemode: "tozero", tickformat: suffix ? ",.3~f" : ",d",
              ticksuffix: suffix ? " " + suffix : ""},
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)"}};
  }
  function run() {
    var body;
    try { body = JSON.parse(document.getElementById("workload").value); }
    catch (e) { errorBox.hidden = false; errorBox.textContent = "not JSON: " + e.message; return; }
    body.eras = Array.prototype.map.call(document.querySelectorAll("input[name=era]:checked"),
                                         function (c) { return c.value; });
    status.textContent = "running…";
    errorBox.hidden = true;
    fetch("/api/v1/simulations", {method: "POST", headers: {"Content-Type": "application/json"},
                                  body: JSON.stringify(body)})
      .then(function (r) { return r.json().then(function (j) { return [r.status, j]; }); })
      .then(function (res) {
        var code = res[0], j = res[1];
        if (code !== 200) {
          errorBox.hidden = false; errorBox.textContent = code + ": " + j.detail;
          status.textContent = ""; return;
        }
        var eras = Object.keys(j.eras);
        function series(key, bytes) {
          var u = bytes ? unitOf(eras.map(function (e) { return j.eras[e][key]; })) : ["", 1];
          return [eras.map(function (e) {
            return trace(e, j.eras[e].times_seconds, j.eras[e][key], u[1]);
          }), u[0]];
        }
        function fig(title, key, bytes) { var s = series(key, bytes); return figure(title, s[0], s[1]); }
        var figs = {dying: fig("Dying memcgs", "dying"),
                    zombies: fig("Zombie kmem_caches", "zombie_caches"),
                    slab: fig("Slab held by what removed cgroups left", "leftover_slab_bytes", true),
                    cost: fig("Memory the dying memcgs cost", "dying_cost_bytes", true)};
        Object.keys(figs).forEach(function (k) {
          window.slabscopePlot(document.getElementById("chart-" + k), figs[k]);
        });
        status.textContent = eras.length + " eras, " + j.eras[eras[0]].times_seconds.length + " points each";
      })
      .catch(function (e) { errorBox.hidden = false; errorBox.textContent = String(e); });
  }
  document.getElementById("run").addEventListener("click", run);

  var steps = [], pos = 0, violations = [];
  function show() {
    if (!steps.length) { return; }
    var s = steps[pos];
    document.getElementById("p-state").textContent = s.state;
    document.getElementById("p-count").textContent = s.refcount;
    document.getElementById("p-mode").textContent = s.percpu_mode ? "percpu" : "atomic";
    document.getElementById("p-nesting").textContent = s.rcu_nesting.join(" / ");
    document.getElementById("p-gp").textContent = s.grace_periods_done;
    document.getElementById("p-event").textContent = s.t_ms.toFixed(1) + " ms  " + s.actor + ": " + s.event +
      (s.violation ? "  ⚠ " + s.violation : "");
    document.getElementById("p-call").textContent = s.call ? "code: " + s.call : "";
    document.getElementById("step-pos").textContent = "step " + (pos + 1) + " of " + steps.length;
  }
  function load() {
    var v = document.getElementById("variant").value;
    fetch("/api/v1/protocol?variant=" + encodeURIComponent(v)).then(function (r) { return r.json(); })
      .then(function (j) {
        steps = j.steps; pos = 0; violations = j.violations;
        document.getElementById("p-summary").textContent = j.summary;
        var ul = document.getElementById("violations");
        ul.textContent = "";
        (violations.length ? violations : ["no invariant violated; final state: " + j.final_state])
          .forEach(function (t) {
            var li = document.createElement("li");
            li.className = violations.length ? "bad" : "ok";
            li.textContent = t;
            ul.appendChild(li);
          });
        show();
      });
  }
  document.getElementById("variant").addEventListener("change", load);
  document.getElementById("prev").addEventListener("click", function () { pos = Math.max(0, pos - 1); show(); });
  document.getElementById("next").addEventListener("click", function () { pos = Math.min(steps.length - 1, pos + 1); show(); });
  load();
  run();
})();
