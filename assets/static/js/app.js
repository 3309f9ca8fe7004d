// Rassylka's own script: htmx configuration. htmx 2 does not swap 4xx
// answers by default; a 422 carries the re-rendered form with its field
// errors, so it must be swapped like a success.
document.addEventListener("DOMContentLoaded", function () {
  if (!window.htmx) return;
  htmx.config.responseHandling = [
    { code: "204", swap: false },
    { code: "[23]..", swap: true },
    { code: "422", swap: true },
    { code: "[45]..", swap: false, error: true },
  ];
  // No snapshots of pages in the tab's storage: they outlive a sign-out
  // and "Back" would show them without asking the server. A page taken
  // from history is asked for again (HX-History-Restore-Request).
  htmx.config.historyCacheSize = 0;
  document.documentElement.dataset.htmx = "ready";
});

// An htmx request that fails is not swapped (above), so say what went
// wrong in the flash area: the title and message of the error fragment
// the server answered, or a word about the network.
function showRequestError(text) {
  showFlash(text, "error", "request-error", true);
}
// showFlash says text in the flash area, as the server's flashes are: an
// error as an alert, anything else as a status; in place of what is
// there, or after it.
function showFlash(text, kind, testid, replace) {
  var box = document.getElementById("flash");
  if (!box) return;
  var div = document.createElement("div");
  div.className = kind ? "flash " + kind : "flash";
  div.setAttribute("role", kind === "error" ? "alert" : "status");
  div.dataset.testid = testid;
  div.textContent = text;
  if (replace) box.replaceChildren(div);
  else box.appendChild(div);
}
// What an htmx request did, said by its answer (component.Flash).
document.addEventListener("flash", function (e) {
  if (e.detail && e.detail.value) showFlash(e.detail.value, "success", "flash", true);
});
document.addEventListener("htmx:responseError", function (e) {
  var xhr = e.detail.xhr;
  var text = "Something went wrong (" + xhr.status + "). Please try again.";
  try {
    var doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    var page = doc.querySelector("[data-testid=error-page]");
    if (page) {
      var title = page.querySelector("h1");
      var msg = page.querySelector("h1 + p");
      text = (title ? title.textContent + ". " : "") + (msg ? msg.textContent : "");
    }
  } catch (err) {}
  showRequestError(text);
});
document.addEventListener("htmx:sendError", function () {
  showRequestError("Rassylka could not be reached. Check your connection and try again.");
});

// A form with data-confirm asks first, and a button with data-clear
// empties the element it names: the pages hold no inline handlers, which
// the Content-Security-Policy would not run.
document.addEventListener("submit", function (e) {
  var msg = e.target.dataset && e.target.dataset.confirm;
  if (msg && !window.confirm(msg)) e.preventDefault();
});
// The focus, inside what is emptied, goes to the element named by
// data-focus-after (the button that opened it) rather than to the page;
// Escape inside a box marked data-escape-clears presses its data-clear
// button.
document.addEventListener("click", function (e) {
  var b = e.target.closest && e.target.closest("[data-clear]");
  var el = b && document.querySelector(b.dataset.clear);
  if (!el) return;
  var hadFocus = el.contains(document.activeElement);
  el.innerHTML = "";
  var back = hadFocus && b.dataset.focusAfter && document.querySelector(b.dataset.focusAfter);
  if (back) back.focus();
});
document.addEventListener("keydown", function (e) {
  if (e.key !== "Escape" || e.isComposing) return;
  var box = e.target.closest && e.target.closest("[data-escape-clears]");
  var b = box && box.querySelector("[data-clear]");
  if (!b) return;
  e.preventDefault();
  b.click();
});

// A plain form posts once: a second click while the first post is on its
// way (a slow network) would create a second object or start a run twice.
// htmx forms are left alone (htmx drops a request while one is in flight),
// as are posts a confirm() or a script called off.
document.addEventListener("submit", function (e) {
  var f = e.target;
  if (e.defaultPrevented || (f.method || "").toLowerCase() !== "post") return;
  if (f.dataset.submitting) {
    e.preventDefault();
    return;
  }
  f.dataset.submitting = "1";
  if (e.submitter) e.submitter.setAttribute("aria-busy", "true");
});
// What a form marked data-draft sends is kept in the tab until the page
// after it shows where it went. When the post found the session ended
// (the sign-in page comes next) or its token out of date (the refusal
// page says so), the same form gets it back once its page is shown again
// to the same person signed in, so nothing typed is lost. Any other page
// drops it, and so does an hour.
var draftKey = "draft", draftKept = 60 * 60 * 1000;
document.addEventListener("submit", function (e) {
  var f = e.target;
  if (e.defaultPrevented || !f.matches("form[data-draft]")) return;
  var fields = [], secret = { _csrf: true }; // and passwords: never kept
  Array.prototype.forEach.call(f.elements, function (el) {
    if (el.type === "password") secret[el.name] = true;
  });
  new FormData(f).forEach(function (v, k) {
    if (!secret[k] && typeof v === "string") fields.push([k, v]);
  });
  sessionStorage.setItem(draftKey, JSON.stringify({
    // The form's own page: one shown again with its errors is at the
    // address it was sent to (a list, a record's page).
    at: f.dataset.draft || location.pathname + location.search,
    action: f.getAttribute("action"), fields: fields, time: Date.now(),
    user: document.body.dataset.user || "",
  }));
});
document.addEventListener("DOMContentLoaded", function () {
  var d = null;
  try { d = JSON.parse(sessionStorage.getItem(draftKey) || "null"); } catch (err) {}
  if (!d) return;
  var fresh = Date.now() - d.time < draftKept;
  var expired = document.querySelector("[data-form-expired]");
  var sameUser = d.user === (document.body.dataset.user || "");
  if (fresh && (location.pathname === "/login" || (expired && sameUser))) {
    d.keep = true;
    sessionStorage.setItem(draftKey, JSON.stringify(d));
    // Signed in, the person goes back to the form's own page.
    var next = document.querySelector("[data-testid=login-form] input[name=next]");
    if (next) next.value = d.at;
    if (expired) {
      var p = document.createElement("p"), a = document.createElement("a");
      a.href = d.at;
      a.setAttribute("role", "button");
      a.dataset.testid = "draft-back";
      a.textContent = "Back to the form, with what you typed";
      p.appendChild(a);
      expired.insertBefore(p, expired.querySelector("p:last-child"));
    } else {
      showFlash("What you typed is kept: once you are signed in, it is put back in the form.", "", "draft-note", false);
    }
    return;
  }
  sessionStorage.removeItem(draftKey);
  // Only its writer gets it back: someone else signing in at the same
  // screen does not.
  if (!fresh || !d.keep || !sameUser || d.at !== location.pathname + location.search) return;
  var f = Array.prototype.find.call(document.querySelectorAll("form[data-draft]"), function (f) {
    return f.getAttribute("action") === d.action;
  });
  if (!f) return;
  restoreDraft(f, d.fields);
  showFlash("This form was not saved: you had been signed out, or the page was out of date. What you typed is back: check it and save again.",
    "", "draft-note", false);
});
// restoreDraft puts a draft's fields back, by name and order (a field it
// does not hold, the token among them, keeps the page's value); boxes are
// ticked as they were sent. Each field then tells its change, for what
// follows it (the mailing form's new message box).
function restoreDraft(f, fields) {
  var sent = {};
  fields.forEach(function (kv) { (sent[kv[0]] = sent[kv[0]] || []).push(kv[1]); });
  var nth = {};
  Array.prototype.forEach.call(f.elements, function (el) {
    if (!el.name || el.disabled || /^(file|submit|button|reset)$/.test(el.type)) return;
    if (el.matches("[data-picker-search]")) return; // the picker shows its first page, unsearched
    var vals = sent[el.name] || [];
    if (el.type === "checkbox" || el.type === "radio") {
      el.checked = vals.indexOf(el.value) >= 0;
    } else {
      var i = nth[el.name] = (nth[el.name] || 0) + 1;
      if (i > vals.length) return;
      el.value = vals[i - 1];
    }
    el.dispatchEvent(new Event("change", { bubbles: true }));
  });
}

// A signed-in page brought back by Back or Forward (from the back/forward
// cache, or from the HTTP cache, which history navigations take without
// asking the server) is shown only while the browser is still signed in
// as it was then: its mark is the sign-in cookie's. Otherwise (signed out,
// or in as someone else) it is hidden and asked for again, and the server
// answers as it does now.
window.addEventListener("pageshow", function (e) {
  var mark = document.body.dataset.signedIn;
  if (!mark) return;
  var nav = performance.getEntriesByType("navigation")[0];
  if (!e.persisted && !(nav && nav.type === "back_forward")) return;
  var current = document.cookie.split("; ").some(function (c) {
    return c === "rassylka_signed_in=" + mark || c === "__Host-rassylka_signed_in=" + mark;
  });
  if (!current) {
    document.documentElement.style.visibility = "hidden";
    location.reload();
  }
});
// A page brought back by Back (bfcache) may be posted again.
window.addEventListener("pageshow", function (e) {
  if (!e.persisted) return;
  document.querySelectorAll("form[data-submitting]").forEach(function (f) {
    delete f.dataset.submitting;
    f.querySelectorAll("[aria-busy]").forEach(function (b) { b.removeAttribute("aria-busy"); });
  });
});

// A link styled as a button is one to a keyboard too: Space presses it, as
// it presses a button (it scrolled the page).
document.addEventListener("keydown", function (e) {
  if (e.key !== " " || e.repeat || e.defaultPrevented || e.altKey || e.ctrlKey || e.metaKey) return;
  var a = e.target;
  if (a && a.matches && a.matches("a[role=button][href]")) {
    e.preventDefault();
    a.click();
  }
});

// A search typed into a list is one step of the history, however often
// the typist paused: its first result is pushed, and what refines it as
// it is typed replaces that, so Back goes to the list before the search
// (it went through "z", "ze" and "zed"). A search sent with Enter, a page
// or a filter is a step of its own.
var typing = false;
document.addEventListener("htmx:beforeHistoryUpdate", function (e) {
  var ev = e.detail.requestConfig && e.detail.requestConfig.triggeringEvent;
  var typed = !!ev && ev.type === "input";
  if (typed && typing && e.detail.history.type === "push") e.detail.history.type = "replace";
  typing = typed;
});
window.addEventListener("popstate", function () { typing = false; });

// A section renewed while it is read keeps what the reader opened in it
// (the table of a mailing's chart, renewed every few seconds while a run
// sends, closed each time).
var opened = [];
document.addEventListener("htmx:beforeSwap", function (e) {
  var t = e.detail.target;
  opened = t && t.querySelectorAll ? Array.prototype.map.call(t.querySelectorAll("details[id][open]"), function (d) { return d.id; }) : [];
});
document.addEventListener("htmx:afterSwap", function () {
  opened.forEach(function (id) {
    var d = document.getElementById(id);
    if (d) d.open = true;
  });
  opened = [];
});

// What changes in place is said once, in one status that stays on the
// page (a live region swapped in with its words is not read out): a
// list's count after a search, a filter, a page or a row added or
// deleted; a run's or an import's progress box at its milestones, as it
// renews; and the message a page comes with after a form, read out once
// the page has loaded. Sections renewed on a timer say nothing unless
// they are such a box (data-announce on the section itself).
var announced = "";
function announce(text) {
  var el = document.getElementById("announce");
  text = (text || "").replace(/\s+/g, " ").trim();
  if (!el || !text || text === announced) return;
  announced = text;
  el.textContent = text;
}
document.addEventListener("htmx:afterSettle", function (e) {
  var root = e.detail.elt;
  if (!root || !root.querySelector || !root.isConnected) return;
  var el = root.matches("[data-announce]") ? root : null;
  var asked = e.detail.requestConfig && e.detail.requestConfig.triggeringEvent;
  if (!el && asked) el = root.querySelector("[data-announce]");
  if (el) announce(el.getAttribute("data-announce") || el.textContent);
});
document.addEventListener("DOMContentLoaded", function () {
  var flash = document.querySelector("#flash .flash");
  if (flash) setTimeout(function () { announce(flash.textContent); }, 300);
});

// A form sent back with errors puts the focus on the first field in error
// (rather than on the form's autofocus field), on a page and in a form
// htmx swapped in; with none, on the form's error, which is read out then.
function focusFirstError(root) {
  if (!root.querySelector) return;
  var bad = root.querySelector("form [aria-invalid=true], [aria-invalid=true]") || root.querySelector("[data-form-error]");
  if (bad) bad.focus();
}
document.addEventListener("DOMContentLoaded", function () { focusFirstError(document); });
document.addEventListener("htmx:afterSettle", function (e) { focusFirstError(e.detail.elt); });

// The controls under root of one kind (a data-testid: every row's Delete),
// and the place of el among its kind: a control found again after a swap
// or a reload by its kind and place.
function sameKind(root, testid) { return root.querySelectorAll('[data-testid="' + testid + '"]'); }
function placeOf(root, el) { return Array.prototype.indexOf.call(sameKind(root, el.dataset.testid), el); }

// A page reloaded (a mailing's page as its run ends or another starts,
// or by the reader) keeps the focus on the control it was on, as a region
// htmx replaces does (below), unless the page puts it on a field itself:
// the reload put it back at the top of the page, unasked.
window.addEventListener("pagehide", function () {
  var a = document.activeElement, key = null;
  if (a && a.id) key = { id: a.id };
  else if (a && a.dataset && a.dataset.testid) {
    key = { testid: a.dataset.testid, nth: placeOf(document, a) };
  }
  try {
    if (key) sessionStorage.setItem("focus", JSON.stringify({ at: location.pathname + location.search, key: key }));
    else sessionStorage.removeItem("focus");
  } catch (e) {}
});
document.addEventListener("DOMContentLoaded", function () {
  var saved = null;
  try {
    saved = JSON.parse(sessionStorage.getItem("focus") || "null");
    sessionStorage.removeItem("focus");
  } catch (e) {}
  var nav = performance.getEntriesByType("navigation")[0];
  if (!saved || !nav || nav.type !== "reload" || saved.at !== location.pathname + location.search) return;
  var a = document.activeElement;
  if (a && a !== document.body) return; // a field in error took it
  var el = saved.key.id ? document.getElementById(saved.key.id) : sameKind(document, saved.key.testid)[saved.key.nth];
  if (el) el.focus({ preventScroll: true });
});

// A new account takes the browser's time zone.
document.addEventListener("DOMContentLoaded", function () {
  var tz = "";
  try { tz = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) {}
  document.querySelectorAll("input[data-browser-time-zone]").forEach(function (el) {
    if (!el.value) el.value = tz;
  });
});

// Mailing form: show the inline message fields when "Write a new message"
// is chosen.
document.addEventListener("change", function (e) {
  if (!e.target.matches("[data-message-choice]")) return;
  var box = e.target.form.querySelector("[data-new-message]");
  if (box) box.hidden = e.target.value !== "new";
});

// Recipient picker: the chosen ids live in one hidden field (comma
// separated); checkboxes of the shown results mirror it.
// figure writes a count as the pages do: thousands apart by a narrow
// no-break space (1 234 567).
function figure(n) {
  return String(n).replace(/\B(?=(\d{3})+$)/g, "\u202f");
}

function initPicker(root) {
  if (root.dataset.pickerReady) return;
  root.dataset.pickerReady = "1";
  var hidden = root.querySelector("[data-picker-ids]");
  var count = root.querySelector("[data-picker-count]");
  var note = root.querySelector("[data-picker-note]");
  var max = note ? Number(note.dataset.pickerMax) : Infinity;
  var chosen = new Set(hidden.value ? hidden.value.split(",") : []);
  // What "choose all" could not take, or a list over a mailing's limit,
  // is said beside the count rather than found out on sending the form.
  function tell(text) {
    if (!note) return;
    note.textContent = text;
    note.hidden = !text;
  }
  function sync() {
    hidden.value = Array.from(chosen).join(",");
    count.textContent = figure(chosen.size);
    if (chosen.size > max) tell("A mailing takes at most " + figure(max) + " recipients: choose fewer.");
    else if (note && note.dataset.capped !== "1") tell("");
    root.querySelectorAll("[data-picker-id]").forEach(function (cb) {
      cb.checked = chosen.has(cb.value);
    });
    root.querySelectorAll("[data-picker-show-chosen]").forEach(function (b) { b.disabled = chosen.size === 0; });
  }
  // Showing the recipients chosen, a choice made anew (cleared, or all
  // matching chosen) goes back to the search's results: the list shown
  // would no longer be the choice.
  function backToSearch() {
    var back = root.querySelector("[data-picker-chosen-view] [data-picker-back]");
    if (back && window.htmx) htmx.trigger(back, "click");
  }
  root.addEventListener("change", function (e) {
    if (!e.target.matches("[data-picker-id]")) return;
    if (e.target.checked) chosen.add(e.target.value);
    else chosen.delete(e.target.value);
    sync();
  });
  // The buttons that send the form without JavaScript act in place, and
  // Enter in a field saves (the form's first button searched without it).
  root.querySelectorAll("[data-picker-nojs]").forEach(function (b) { b.hidden = true; });
  var first = root.closest("form").querySelector("[data-picker-default]");
  if (first) first.removeAttribute("name");
  root.addEventListener("click", function (e) {
    if (e.target.matches("[data-picker-clear], [data-picker-all]")) e.preventDefault();
    if (e.target.matches("[data-picker-clear]")) {
      chosen.clear();
      if (note) note.dataset.capped = "";
      sync();
      backToSearch();
    }
    if (e.target.matches("[data-picker-all]")) {
      var q = root.querySelector("[data-picker-search]").value;
      e.target.setAttribute("aria-busy", "true");
      fetch("/mailings/picker/ids?q=" + encodeURIComponent(q), { credentials: "same-origin" })
        .then(function (r) {
          if (!r.ok) throw new Error(r.status);
          return r.json();
        })
        .then(function (ids) {
          var capped = ids.length > max; // the server sends one more than a mailing takes
          if (capped) ids = ids.slice(0, max);
          ids.forEach(function (id) { chosen.add(String(id)); });
          if (note) note.dataset.capped = capped ? "1" : "";
          sync();
          backToSearch();
          if (capped) {
            tell("More clients match than a mailing takes: the newest " + figure(max) + " were chosen.");
          }
        })
        .catch(function () {
          showRequestError("Could not choose all matching clients. Check your connection and try again.");
        })
        .finally(function () { e.target.removeAttribute("aria-busy"); });
    }
  });
  // Enter in the search searches at once: it must not send the mailing
  // form the picker sits in, with the recipients not chosen yet. (The
  // form is sent on the key's keypress, which a keydown's preventDefault
  // does not always hold back.)
  function searchEnter(e) {
    if (e.key !== "Enter" || e.isComposing || !e.target.matches("[data-picker-search]")) return;
    e.preventDefault();
    if (e.type === "keydown" && window.htmx) htmx.trigger(e.target, "search");
  }
  root.addEventListener("keydown", searchEnter);
  root.addEventListener("keypress", searchEnter);
  // What a search found is said once by the page's status (its count
  // carries data-announce: a live region around the results would read
  // every one of them); "More…" leaves the focus on the first client it
  // brought (it went to the page, past them).
  var more = null;
  root.addEventListener("htmx:beforeRequest", function (e) {
    more = e.target.matches("[data-picker-more]") && e.target === document.activeElement
      ? root.querySelectorAll("[data-picker-id]").length : null;
  });
  document.body.addEventListener("htmx:afterSwap", function (e) {
    if (!root.contains(e.target)) return;
    sync();
    if (more === null) return;
    var next = root.querySelectorAll("[data-picker-id]")[more];
    more = null;
    if (next) next.focus();
  });
  // Only the hidden list is sent: checkboxes would repeat part of it.
  root.closest("form").addEventListener("submit", function () {
    root.querySelectorAll("[data-picker-id], [data-picker-shown]").forEach(function (cb) { cb.disabled = true; });
  });
  sync();
}
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-picker]").forEach(initPicker);
});

// A row edited in place (data-row-edit) is no form: Enter in one of its
// fields saves it and Escape cancels, as in a form.
document.addEventListener("keydown", function (e) {
  var row = e.target.closest && e.target.closest("[data-row-edit]");
  if (!row || e.isComposing) return;
  var button = null;
  if (e.key === "Enter" && e.target.tagName === "INPUT") button = row.querySelector("[data-row-save]");
  if (e.key === "Escape") button = row.querySelector("[data-row-cancel]");
  if (!button) return;
  e.preventDefault();
  button.click();
});

// A swap of an element marked data-refocus (a row saved, a switch turned)
// replaces the control that had the focus, which then fell to the page
// and the next Tab started over from the top: it goes to the first
// button of what came in instead (an autofocus field in it then takes
// it when htmx settles). Here and below the focus is put back as the
// swap is made, not when it settles 20 ms later: a key pressed meanwhile,
// or another section renewed meanwhile, would find it on the page.
var refocus = "";
document.addEventListener("htmx:beforeSwap", function (e) {
  var t = e.detail.target;
  refocus = t && t.id && t.matches("[data-refocus]") && t.contains(document.activeElement) ? t.id : "";
});
document.addEventListener("htmx:afterSwap", function () {
  var el = refocus && document.getElementById(refocus);
  refocus = "";
  var a = document.activeElement;
  if (!el || (a && a !== document.body)) return;
  var b = el.querySelector("button, [role=button]") || el.querySelector("a[href], input:not([type=hidden]), select, textarea");
  if (b) b.focus();
});

// A region htmx replaces while the focus is in it keeps the focus at the
// same place, instead of dropping it to the page (the next Tab would start
// over from the top): a list paged keeps it on its pager, a list reloaded
// on the same control of the same row, and a row deleted moves it to the
// same control of the next row (or the one before; the list itself when
// it was the last). What is the same place is told by data-testid and
// position; failing that, the region's first control, or the region
// itself.
var kept = null;
function focusIn(region, testid, nth, pager) {
  var same = testid ? sameKind(region, testid) : [];
  var el = same.length ? same[Math.min(nth, same.length - 1)] :
    (pager && region.querySelector("a[rel=prev], a[rel=next]")) || // "Next" on the last page is gone
    region.querySelector("a[href], button:not([disabled]), input:not([type=hidden]), select, textarea");
  focusSelf(el || region);
}
function focusSelf(el) {
  if (!el.matches("a[href], button, input, select, textarea, [tabindex]")) el.setAttribute("tabindex", "-1");
  el.focus();
}
document.addEventListener("htmx:beforeSwap", function (e) {
  var t = e.detail.target, a = document.activeElement;
  if (!t || !a || a === document.body || !t.contains(a) || e.detail.shouldSwap === false) return;
  var testid = a.dataset.testid || "";
  if (e.detail.serverResponse.trim() === "" && t.matches("tr")) {
    // Moved now, before the row goes: a list reloaded right after it (its
    // answer can come before any timer) then finds the focus in the list.
    var row = t.nextElementSibling || t.previousElementSibling;
    var list = !row && t.closest("section[id]");
    if (row) focusIn(row, testid, 0);
    else if (list) focusSelf(list); // read out as it reloads, empty
    return;
  }
  if (!t.id || t.matches("[data-refocus]")) return; // rows swapped in place: see refocus
  var nth = testid ? placeOf(t, a) : 0;
  kept = { was: a, id: t.id, self: a === t, testid: testid, nth: nth, pager: a.matches("a[rel=prev], a[rel=next]") };
});
document.addEventListener("htmx:afterSwap", restoreFocus);
function restoreFocus() {
  // Told right after the swap kept was taken for (htmx swaps at once).
  var k = kept;
  kept = null;
  if (!k || k.was.isConnected) return; // the swap left it in place
  var a = document.activeElement;
  if (a && a !== document.body && a.isConnected) return; // something took the focus itself
  var region = document.getElementById(k.id);
  if (region && k.self) focusSelf(region);
  else if (region) focusIn(region, k.testid, k.nth, k.pager);
}
