// slabscope: local times, plotly charts from embedded figures, range picker, cgroup tree.
(function () {
  "use strict";

  // <time datetime="ISO UTC"> -> the browser's own time zone.
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (!isNaN(d)) { el.textContent = d.toLocaleString(); el.title = el.getAttribute("datetime"); }
  });

  // Charts: figures are embedded as JSON; x values become Dates (drawn in local time).
  window.slabscopeCharts = {};
  window.slabscopePlot = function (el, fig) {
    var xaxis = fig.layout.xaxis || {};
    if (xaxis.type === "date") {  // ms since the epoch -> Dates (the chosen range too)
      fig.data.forEach(function (t) {
        if (t.x) { t.x = t.x.map(function (v) { return new Date(v); }); }
      });
      if (xaxis.range) { xaxis.range = xaxis.range.map(function (v) { return new Date(v); }); }
    }
    if (window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches) {
      var ink = "#e7e5e4", grid = "#3f3f46";
      fig.layout.font = Object.assign({}, fig.layout.font, {color: ink});
      ["xaxis", "yaxis"].forEach(function (a) {
        fig.layout[a] = Object.assign({gridcolor: grid, zerolinecolor: grid}, fig.layout[a]);
      });
    }
    var first = fig.data[0];
    var n = !first ? 0 : (first.x ? first.x.length : (first.link ? first.link.value.length : 0));
    window.slabscopeCharts[el.dataset.chart] = n;
    if (n) { Plotly.react(el, fig.data, fig.layout, {displayModeBar: false, responsive: true}); }
  };
  if (window.Plotly) {
    document.querySelectorAll("figure[data-chart]").forEach(function (el) {
      var embedded = el.querySelector("script[type='application/json']");
      if (!embedded) { return; }  // drawn later by its page's own script (the editor)
      window.slabscopePlot(el, JSON.parse(embedded.textContent));
    });
  }

  // Range picker: datetime-local inputs are local time; send UTC ISO strings.
  function toLocalInput(iso) {
    var d = new Date(iso);
    if (isNaN(d)) { return ""; }
    var off = d.getTimezoneOffset() * 60000;
    return new Date(d - off).toISOString().slice(0, 19);
  }
  document.querySelectorAll("form[data-range-form]").forEach(function (form) {
    ["since", "until"].forEach(function (k) {
      var hidden = form.querySelector("input[name='" + k + "']");
      var local = form.querySelector("input[data-local='" + k + "']");
      local.value = toLocalInput(hidden.value);
    });
    form.addEventListener("submit", function () {
      ["since", "until"].forEach(function (k) {
        var local = form.querySelector("input[data-local='" + k + "']");
        var hidden = form.querySelector("input[name='" + k + "']");
        if (local.value) { hidden.value = new Date(local.value).toISOString(); }
      });
    });
  });

  // Cgroup tree: click a row to fold or unfold its children.
  var tree = document.getElementById("tree");
  if (tree) {
    var rows = Array.prototype.slice.call(tree.querySelectorAll("tbody tr"));
    var kids = {};
    rows.forEach(function (r) {
      var p = r.dataset.parent;
      if (p) { (kids[p] = kids[p] || []).push(r); }
    });
    function hideBelow(id) {
      (kids[id] || []).forEach(function (c) {
        c.classList.add("hidden");
        if (c.classList.contains("has-kids")) { c.classList.add("folded"); }
        hideBelow(c.dataset.id);
      });
    }
    rows.forEach(function (r) {
      if (!r.classList.contains("has-kids")) { return; }
      r.addEventListener("click", function () {
        var id = r.dataset.id;
        if (r.classList.contains("folded")) {
          r.classList.remove("folded");
          (kids[id] || []).forEach(function (c) { c.classList.remove("hidden"); });
        } else {
          r.classList.add("folded");
          hideBelow(id);
        }
      });
    });
  }
})();
