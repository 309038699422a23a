// runinfra dashboard: copy buttons, snippet tabs, confirmations, auto-submitting selects.
// Loaded with `defer`; the pages work without it (all tabs show, forms post normally).
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function copyText(text, button) {
    var done = function () {
      var original = button.textContent;
      button.textContent = "Copied";
      button.setAttribute("data-copied", "true");
      setTimeout(function () { button.textContent = original; button.removeAttribute("data-copied"); }, 1600);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text); done(); });
    } else {
      fallbackCopy(text);
      done();
    }
  }

  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); } catch (e) { /* the text stays selectable */ }
    document.body.removeChild(area);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy-target]");
    if (button) {
      var target = document.getElementById(button.getAttribute("data-copy-target"));
      if (target) { copyText(target.textContent, button); }
      return;
    }
    var tab = event.target.closest(".tab[role='tab']");
    if (tab) {
      var list = tab.closest("[role='tablist']");
      list.querySelectorAll(".tab").forEach(function (t) {
        var selected = t === tab;
        t.setAttribute("aria-selected", selected ? "true" : "false");
        var panel = document.getElementById(t.getAttribute("aria-controls"));
        if (panel) { panel.hidden = !selected; }
      });
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var message = form.getAttribute("data-confirm");
    if (message && !window.confirm(message)) { event.preventDefault(); }
  });

  document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
    select.addEventListener("change", function () { select.form.submit(); });
  });

  // Scope radio: show the pipeline chooser only for pipeline-scoped keys.
  document.querySelectorAll("[data-scope-toggle]").forEach(function (form) {
    var sync = function () {
      var scope = form.querySelector("input[name='scope']:checked");
      var target = form.querySelector("[data-pipeline-field]");
      if (target && scope) { target.hidden = scope.value !== "pipeline"; }
    };
    form.addEventListener("change", sync);
    sync();
  });

  // Tabs start with the first panel shown once JS is on.
  document.querySelectorAll("[role='tablist']").forEach(function (list) {
    var tabs = list.querySelectorAll(".tab");
    tabs.forEach(function (t, i) {
      var panel = document.getElementById(t.getAttribute("aria-controls"));
      if (panel) { panel.hidden = i !== 0; }
      t.setAttribute("aria-selected", i === 0 ? "true" : "false");
    });
  });
})();
