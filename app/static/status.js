/* The opt-out status page, kept up to date in place: it asks for the request's progress (JSON) every
   few seconds and changes only the words that changed, so focus, folded steps and a screen reader's
   place stay where they are; the polite live region says "7 of 11 steps done". Without scripts the
   page still works: a link refreshes it. It also offers "Copy link" for the status link.
   k, the link's capability, goes in a header: never in an address that a log could keep. */
(function () {
  "use strict";
  var POLL_MS = 2000, MAX_WAIT_MS = 30000;

  function text(el, value) {
    if (el && el.textContent !== value) { el.textContent = value; }
  }

  function setStatus(el, status) {
    var name = "step " + status;
    if (el.className !== name) { el.className = name; }
  }

  function stepItem(step) {
    var li = document.createElement("li"), title = document.createElement("strong"),
        outcome = document.createElement("span");
    li.id = "step-" + step.id;
    title.className = "title";
    outcome.className = "outcome";
    li.append(title, document.createElement("br"), outcome);
    return li;
  }

  function groupItem(group) {
    var li = stepItem({id: ""});
    li.id = "group-" + group.key;
    if (group.folded) {
      var details = document.createElement("details"), summary = document.createElement("summary"),
          list = document.createElement("ol");
      list.className = "substeps";
      details.append(summary, list);
      li.append(details);
    }
    return li;
  }

  function render(list, data) {
    data.groups.forEach(function (group, index) {
      var li = document.getElementById("group-" + group.key);
      if (!li) { li = groupItem(group); }
      if (list.children[index] !== li) { list.insertBefore(li, list.children[index] || null); }
      setStatus(li, group.status);
      text(li.querySelector(":scope > .title"), group.title);
      text(li.querySelector(":scope > .outcome"), group.outcome);
      var sub = li.querySelector("ol.substeps");
      if (!sub) { return; }
      text(li.querySelector("summary"), "Each step (" + group.steps.length + ")");
      group.steps.forEach(function (step, i) {
        var item = document.getElementById("step-" + step.id);
        if (!item) { item = stepItem(step); }
        if (sub.children[i] !== item) { sub.insertBefore(item, sub.children[i] || null); }
        setStatus(item, step.status);
        text(item.querySelector(".title"), step.title);
        text(item.querySelector(".outcome"), step.outcome);
      });
    });
    var state = document.getElementById("state");
    if (state) {
      state.className = "status " + data.status;
      text(state.querySelector("strong"), data.state);
    }
    text(document.getElementById("progress"), data.progress);
    if (data.finished) {
      text(document.getElementById("when-label"), "Finished");
      text(document.getElementById("when"), data.finished);
    }
  }

  function showReceipt(list, receiptId, key) {
    var p = document.getElementById("receipt-link");
    if (!p || !receiptId) { return; }
    var link = p.querySelector("a");
    if (!link.getAttribute("href")) {
      link.href = list.dataset.receipts + encodeURIComponent(receiptId) + "?k=" + encodeURIComponent(key);
    }
    p.hidden = false;
  }

  function follow(list) {
    var key = new URLSearchParams(window.location.search).get("k") || "";
    var wait = POLL_MS, note = document.getElementById("live-note");
    if (note) { note.hidden = false; }

    function poll() {
      fetch(list.dataset.progress, {headers: {"X-Status-Key": key, "Accept": "application/json"},
                                    cache: "no-store", credentials: "same-origin"})
        .then(function (response) {
          if (!response.ok) { throw new Error("status " + response.status); }
          return response.json();
        })
        .then(function (data) {
          wait = POLL_MS;
          render(list, data);
          showReceipt(list, data.receipt_id, key);
          if (data.completed) {
            if (note) { note.hidden = true; }
            return;  // nothing more will change
          }
          window.setTimeout(poll, wait);
        })
        .catch(function () {  // offline for a moment, or the server restarting: ask again, less often
          wait = Math.min(wait * 2, MAX_WAIT_MS);
          window.setTimeout(poll, wait);
        });
    }
    window.setTimeout(poll, POLL_MS);
  }

  function offerCopy() {
    var button = document.querySelector("button.copy-link"), field = document.getElementById("status-link");
    if (!button || !field) { return; }
    var said = document.querySelector(".keep-link .copied");
    button.hidden = false;
    button.addEventListener("click", function () {
      var copied = navigator.clipboard && window.isSecureContext
        ? navigator.clipboard.writeText(field.value)
        : Promise.reject(new Error("no clipboard"));
      copied.catch(function () {  // an older browser, or plain http: the selection still copies
        field.select();
        return document.execCommand("copy") ? undefined : Promise.reject(new Error("not copied"));
      }).then(function () { text(said, "Copied."); },
              function () { field.select(); text(said, "Press Ctrl+C (or ⌘C) to copy the selected link."); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    offerCopy();
    var list = document.getElementById("steps");
    if (list && !("completed" in list.dataset)) { follow(list); }
  });
})();
