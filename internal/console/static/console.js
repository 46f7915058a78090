// drawbridge console: progressive enhancement only. Every page works
// without this file; with it, the request status counts down and follows
// approval and firewall state by polling the server every second, and the
// request dialog offers only durations every chosen port allows.
(function () {
  "use strict";

  function fmt(s) {
    if (s <= 0) return "0:00";
    var h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    var mm = (h > 0 && m < 10 ? "0" : "") + m, ss = (sec < 10 ? "0" : "") + sec;
    return (h > 0 ? h + ":" : "") + mm + ":" + ss;
  }

  // Status page: poll the request's state once a second.
  var box = document.getElementById("request-status");
  if (box) {
    var url = "/console/requests/" + encodeURIComponent(box.dataset.request) +
      "/status?policy=" + encodeURIComponent(box.dataset.policy);
    var tick = function () {
      fetch(url, { credentials: "same-origin", cache: "no-store" })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (st) {
          if (!st) return;
          if (st.state !== box.dataset.state) { location.reload(); return; }
          (st.grants || []).forEach(function (g) {
            var row = box.querySelector('tr[data-grant="' + g.id + '"]');
            if (!row) return;
            var cd = row.querySelector(".countdown");
            if (cd) cd.textContent = fmt(g.remainingSeconds);
            var ap = row.querySelector(".applied");
            if (ap && g.applied && !ap.querySelector(".ok")) {
              ap.innerHTML = '<span class="badge ok">applied on the firewall</span>';
            }
            if (ap && g.connectTo && !ap.querySelector(".connect-to")) {
              var ct = document.createElement("span"), code = document.createElement("code");
              ct.className = "connect-to";
              code.textContent = g.connectTo;
              ct.append("connect to ", code);
              ap.append(document.createElement("br"), ct);
            }
          });
        })
        .catch(function () {});
    };
    document.querySelectorAll(".countdown").forEach(function (el) {
      var end = Date.parse(el.dataset.end);
      el.textContent = fmt(Math.max(0, Math.round((end - Date.now()) / 1000)));
    });
    tick();
    setInterval(tick, 1000);
  }

  // Request dialog: the duration is bounded by the smallest maximum of
  // the ports ticked (the server checks it regardless).
  var dur = document.getElementById("duration");
  if (dur) {
    var ports = document.querySelectorAll('input[name="port"]');
    var bound = function () {
      var lim = Infinity;
      ports.forEach(function (p) { if (p.checked) lim = Math.min(lim, +p.dataset.max); });
      Array.prototype.forEach.call(dur.options, function (o) { o.disabled = +o.dataset.seconds > lim; });
      if (dur.selectedOptions.length && dur.selectedOptions[0].disabled) {
        for (var i = dur.options.length - 1; i >= 0; i--) if (!dur.options[i].disabled) { dur.selectedIndex = i; break; }
      }
    };
    ports.forEach(function (p) { p.addEventListener("change", bound); });
    bound();
    var other = document.getElementById("source-value");
    if (other) other.addEventListener("input", function () { document.getElementById("source-other").checked = true; });
  }
})();
