// linkmeter UI, link page: one Chart.js line chart per numeric signal of the link's history.
(function () {
  "use strict";

  function label(iso) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) {
      return iso;
    }
    return date.toISOString().replace("T", " ").slice(0, 16);
  }

  function draw() {
    var source = document.getElementById("history-data");
    var holder = document.getElementById("history-charts");
    if (!source || !holder || !window.Chart) {
      return;
    }
    var data = JSON.parse(source.textContent || "{}");
    var series = data.series || {};
    var labels = data.labels || {};
    Object.keys(series).sort().forEach(function (signal) {
      var points = series[signal];
      var col = document.createElement("div");
      col.className = "col";
      var card = document.createElement("div");
      card.className = "card h-100 history-chart";
      card.setAttribute("data-signal", signal);
      var body = document.createElement("div");
      body.className = "card-body";
      var title = document.createElement("h3");
      title.className = "h6 font-monospace";
      title.textContent = labels[signal] || signal;
      var box = document.createElement("div");
      box.className = "chart-box";
      var canvas = document.createElement("canvas");
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", "history of " + signal);
      box.appendChild(canvas);
      body.appendChild(title);
      body.appendChild(box);
      card.appendChild(body);
      col.appendChild(card);
      holder.appendChild(col);
      new window.Chart(canvas, {
        type: "line",
        data: {
          labels: points.map(function (p) { return label(p.t); }),
          datasets: [{
            label: signal,
            data: points.map(function (p) { return p.v; }),
            borderColor: "#0d6efd",
            backgroundColor: "rgba(13, 110, 253, 0.15)",
            pointRadius: 3,
            tension: 0.2,
            fill: true
          }]
        },
        options: {
          animation: false,
          maintainAspectRatio: false,
          plugins: { legend: { display: false } },
          scales: { x: { ticks: { maxTicksLimit: 6 } }, y: { beginAtZero: true } }
        }
      });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", draw);
  } else {
    draw();
  }
})();
