// promptlab serve: rating buttons and a running run's progress. No framework, no build.
// Values from the page go into the DOM as text (textContent), never as HTML.
"use strict";
(function () {
  function rate(box, value) {
    var comment = box.querySelector("input.comment");
    var url = "/api/runs/" + encodeURIComponent(box.dataset.run) + "/trials/" +
      encodeURIComponent(box.dataset.idx) + "/rating";
    var note = box.querySelector(".rated");
    fetch(url, {
      method: "PUT", credentials: "same-origin",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({rating: value, comment: comment ? comment.value : ""})
    }).then(function (r) {
      return r.json().then(function (body) { return {ok: r.ok, body: body}; });
    }).then(function (res) {
      if (!res.ok) { note.textContent = res.body.error || "refused"; return; }
      box.querySelectorAll("button.rate").forEach(function (b) {
        b.classList.toggle("on", b.dataset.rate === value);
      });
      note.textContent = value === "up" ? "rated: good" : "rated: bad";
    }).catch(function () { note.textContent = "not saved"; });
  }
  document.addEventListener("click", function (ev) {
    var button = ev.target.closest ? ev.target.closest("button.rate") : null;
    if (button) { rate(button.closest(".rating"), button.dataset.rate); }
  });
  var bar = document.getElementById("progress");
  if (bar) {
    var poll = function () {
      fetch("/api/runs/" + encodeURIComponent(bar.dataset.run), {credentials: "same-origin"})
        .then(function (r) { return r.json(); })
        .then(function (run) {
          bar.value = run.done;
          document.getElementById("progress-text").textContent = run.done + " / " + run.planned;
          if (run.status === "running") { setTimeout(poll, 1500); } else { location.reload(); }
        }).catch(function () { setTimeout(poll, 5000); });
    };
    setTimeout(poll, 1500);
  }
})();
