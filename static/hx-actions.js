/*!
 * hx-actions.js 0.1.0: the client runtime of flask-hx-actions (for htmx 2.x).
 *
 * Load it after htmx. It only listens to htmx events on `document`; the markup and
 * headers it relies on are fixed in docs/wire.md. Without JavaScript nothing here is
 * needed: every action form is a plain POST form.
 *
 * What it does for requests made by an action form (`form[data-hx-action]`):
 *   - adds to the submitted fields `_hx_csrf` (the token of <meta name="csrf-token">) and
 *     `_hx_regions` (which refreshable regions the page holds), fields rather than
 *     headers because a server parses a header at a higher cost than a form field;
 *   - swaps answers carrying `HX-Actions` whatever their status (htmx 2 skips 4xx/5xx);
 *   - marks the form busy (aria-busy, .hx-pending, submit buttons disabled) and drops
 *     a second submit while the first is in flight (and not in htmx's history snapshots);
 *   - sends a form htmx swapped in but has not set up yet (before it settles) through htmx;
 *   - puts the answer's fresh idempotency key (`HX-Actions: 1; key=...`) into `_hx_key`,
 *     and into the form of an htmx history snapshot that still holds the spent key;
 *   - swaps an answer into the element now on the page under its target's id when another
 *     answer replaced that element while the request was in flight;
 *   - clears the form's error summary and slots after a successful answer that does not
 *     re-render the form, and drops the answer's field error slots the page has no place for;
 *   - mirrors the field error slots onto the inputs (aria-invalid) and focuses the first
 *     invalid input when focus is not already in the form;
 *   - gives every action form htmx loads its empty error summary (the server renders one
 *     only when it has something to say), the target of error answers;
 *   - says in that summary when no answer came from the library (network error, timeout,
 *     a proxy's error page), until the form's next attempt.
 */
(function () {
  'use strict';

  var FORM_SELECTOR = 'form[data-hx-action]';
  var PENDING_CLASS = 'hx-pending';
  // On the submit buttons this script disabled (a copy of the page can tell them apart).
  var DISABLED_MARK = 'data-hx-pending-disabled';
  // Stop adding parametrised region tokens past this many characters (a page with thousands
  // of matching rows would otherwise send them all with every submit).
  var MAX_REGIONS_LENGTH = 6000;

  // form -> {buttons: the submit buttons this script disabled (it re-enables only those),
  //          focused: the one of them that had focus (disabling it drops focus to <body>)}.
  var pending = new WeakMap();
  // xhr objects of answers htmx is going to swap (set in beforeSwap), and of answers
  // this script has finished with (so the several after* events act once).
  var awaitingSwap = new WeakSet();
  var handled = new WeakSet();
  // Spent idempotency key -> the fresh key its answer brought (bounded, oldest out first):
  // an htmx history snapshot taken while a submit was in flight holds the spent one.
  var renewedKeys = new Map();
  var MAX_RENEWED_KEYS = 256;

  /* ------------------------------------------------------------------ helpers */

  // The element that issued the request. htmx overwrites `detail.elt` with the element
  // an event is fired on (the new content for afterSwap, an ancestor when the issuing
  // element was swapped out), so prefer the request config, which keeps the original.
  function issuer(detail) {
    return (detail && detail.requestConfig && detail.requestConfig.elt) || (detail && detail.elt) || null;
  }

  // The action form an element belongs to (the form itself, an element inside it, or a
  // control associated with it through the `form` attribute).
  function actionFormOf(elt) {
    if (!elt || elt.nodeType !== 1) return null;
    var form = elt.closest(FORM_SELECTOR);
    if (!form && elt.form && elt.form.matches(FORM_SELECTOR)) form = elt.form;
    return form;
  }

  // The action form a request submits: the form itself or one of its submit buttons.
  // (Other requests from inside the form, such as an hx-get on an input, are not submits.)
  function submittedForm(elt) {
    if (!elt || elt.nodeType !== 1) return null;
    if (elt.matches(FORM_SELECTOR)) return elt;
    if (isSubmitControl(elt) && elt.form && elt.form.matches(FORM_SELECTOR)) return elt.form;
    return null;
  }

  function isSubmitControl(el) {
    return (el.tagName === 'BUTTON' || el.tagName === 'INPUT') &&
      (el.type === 'submit' || el.type === 'image');
  }

  // Controls of a form, including those outside it that name it with `form=`.
  function controls(form) {
    return Array.prototype.slice.call(form.elements);
  }

  function tokens(value) {
    return (value || '').split(/\s+/).filter(Boolean);
  }

  function header(xhr, name) {
    return xhr && typeof xhr.getResponseHeader === 'function' ? xhr.getResponseHeader(name) : null;
  }

  /* ------------------------------------------------------------- request fields */

  // Space separated region tokens (docs/wire.md): every non-parametrised region name,
  // then `name?params` for parametrised regions whose tags meet the form's tags.
  function regionsField(form) {
    var formTags = tokens(form.getAttribute('data-hx-tags'));
    var names = [];
    var parametrised = [];
    var seen = Object.create(null);
    document.querySelectorAll('[data-hx-fragment]').forEach(function (region) {
      var name = region.getAttribute('data-hx-fragment');
      if (!name) return;
      var params = region.getAttribute('data-hx-fragment-params');
      if (params === null) {
        if (!seen[name]) { seen[name] = true; names.push(name); }
        return;
      }
      var token = name + '?' + params;
      if (seen[token] || !formTags.length) return;
      var regionTags = tokens(region.getAttribute('data-hx-tags'));
      if (regionTags.some(function (tag) { return formTags.indexOf(tag) >= 0; })) {
        seen[token] = true;
        parametrised.push(token);
      }
    });
    var value = names.join(' ');
    for (var i = 0; i < parametrised.length; i++) {
      if (value.length + parametrised[i].length + 1 > MAX_REGIONS_LENGTH) {
        if (window.console) console.warn('hx-actions: too many regions on the page; some are not refreshed');
        break;
      }
      value = value ? value + ' ' + parametrised[i] : parametrised[i];
    }
    return value;
  }

  document.addEventListener('htmx:configRequest', function (evt) {
    var form = actionFormOf(issuer(evt.detail));
    if (!form) return;
    var fields = evt.detail.parameters;  // htmx sends these as the body
    var meta = document.querySelector('meta[name="csrf-token"]');
    var token = meta && meta.getAttribute('content');
    if (token) fields['_hx_csrf'] = token;
    fields['_hx_regions'] = regionsField(form);
  });

  /* ---------------------------------------------- pending state, double submits */

  function setPending(form) {
    if (pending.has(form)) return;
    var disabled = controls(form).filter(function (el) {
      return isSubmitControl(el) && !el.disabled;
    });
    var focused = disabled.indexOf(document.activeElement) >= 0 ? document.activeElement : null;
    disabled.forEach(function (el) { el.disabled = true; el.setAttribute(DISABLED_MARK, ''); });
    pending.set(form, { buttons: disabled, focused: focused });
    form.classList.add(PENDING_CLASS);
    form.setAttribute('aria-busy', 'true');
  }

  function clearPending(form) {
    var state = pending.get(form);
    if (!state) return;
    pending.delete(form);
    state.buttons.forEach(enable);
    notBusy(form);
    // Give focus back to the button that was pressed (its counterpart when the answer
    // re-rendered the form), unless something else took it.
    var active = document.activeElement;
    var button = state.focused;
    if (button && !button.isConnected) button = counterpart(form, button);
    if (button && !button.disabled && (!active || active === document.body)) button.focus();
  }

  function enable(el) { el.disabled = false; el.removeAttribute(DISABLED_MARK); }
  function notBusy(el) { el.classList.remove(PENDING_CLASS); el.removeAttribute('aria-busy'); }

  // The submit control at `button`'s place in the form re-rendered under the same id.
  function counterpart(form, button) {
    var current = form.id && document.getElementById(form.id);
    if (!current || current === form || !current.matches(FORM_SELECTOR)) return null;
    var index = controls(form).filter(isSubmitControl).indexOf(button);
    return index < 0 ? null : controls(current).filter(isSubmitControl)[index] || null;
  }

  // A form busy when htmx took its history snapshot (an hx-push-url navigation during a submit)
  // comes back with the back button, with no request in flight: it must not stay busy.
  document.addEventListener('htmx:historyRestore', function () {
    document.querySelectorAll('[' + DISABLED_MARK + ']').forEach(function (el) {
      if (!el.form || !pending.has(el.form)) enable(el);
    });
    document.querySelectorAll(FORM_SELECTOR + '[aria-busy]').forEach(function (form) {
      if (!pending.has(form)) notBusy(form);
    });
    // A form whose submit completed after the snapshot still holds the key that submit spent;
    // its next submit would be taken for a replay (or refused: other input, 422).
    document.querySelectorAll(FORM_SELECTOR + ' input[name="_hx_key"]').forEach(function (el) {
      var key = el.value;
      for (var i = 0; i < MAX_RENEWED_KEYS && renewedKeys.has(key); i++) key = renewedKeys.get(key);
      if (key !== el.value) el.value = key;
    });
  });

  // A second submit (Enter in a field, a script calling requestSubmit) while the first is
  // in flight never reaches htmx, which would otherwise queue it and send it afterwards.
  // Capture phase on document runs before htmx's own listener on the form.
  // htmx sets up swapped-in content only when it settles (20 ms later by default; until
  // then it has class htmx-added): a form submitted in between would go out as a plain
  // POST, without the CSRF token an htmx answer leaves to the meta tag. Set it up now and
  // submit it again, through htmx.
  var setUpEarly = new WeakSet();
  document.addEventListener('submit', function (evt) {
    var form = evt.target;
    if (!form || form.nodeType !== 1) return;
    var unsettled = window.htmx && !setUpEarly.has(form) && form.matches(FORM_SELECTOR) &&
      form.closest('.' + window.htmx.config.addedClass);
    if (pending.has(form) || unsettled) {
      evt.preventDefault();
      evt.stopPropagation();
    }
    if (unsettled) {
      setUpEarly.add(form);
      window.htmx.process(form);
      // htmx learns the pressed button from focusin/click, which came before its set-up.
      var submitter = evt.submitter;
      if (submitter) submitter.dispatchEvent(new FocusEvent('focusin', { bubbles: true }));
      // Not from inside this submit event: the browser ignores a submit of a form whose
      // submit event is being dispatched.
      setTimeout(function () { if (form.isConnected) form.requestSubmit(submitter || undefined); });
    }
  }, true);

  // Programmatic or queued requests for a busy form are cancelled too.
  document.addEventListener('htmx:beforeRequest', function (evt) {
    var form = submittedForm(issuer(evt.detail));
    if (form && pending.has(form)) evt.preventDefault();
  });

  // beforeSend fires only once no listener cancelled the request, so the matching
  // afterRequest (load, error, abort or timeout) is sure to follow.
  document.addEventListener('htmx:beforeSend', function (evt) {
    var form = submittedForm(issuer(evt.detail));
    if (!form) return;
    setPending(form);
    showFailure(form, false); // a new attempt: the last failure's message goes
    followTarget(evt.detail);
    // A form gone from the page when its answer comes gets no htmx event this script sees;
    // its spent key must still be noted. (htmx's load handler, set earlier, runs first.)
    var xhr = evt.detail.xhr;
    if (xhr && typeof xhr.addEventListener === 'function') {
      xhr.addEventListener('load', function () {
        if (!form.isConnected) noteRenewedKey(form, xhr);
      });
    }
  });

  // htmx picks the answer's target when the request leaves and reads it back from this
  // detail when the answer comes. If another answer replaced it meanwhile (a toggle re-rendered
  // the row a rename is in flight for), read back it is the element now under the same id;
  // htmx's beforeSwap would fire on the detached one, out of this script's reach. Not after
  // the user went to another page: an element there with that id is not this page's region.
  function followTarget(detail) {
    var target = detail.target;
    var page = window.location.href;
    if (!target || !target.id) return;
    Object.defineProperty(detail, 'target', {
      configurable: true,
      enumerable: true,
      get: function () {
        if (target.isConnected || window.location.href !== page) return target;
        return document.getElementById(target.id) || target;
      },
      set: function (value) { target = value; }
    });
  }

  // No answer from the library (a network error, a timeout, a proxy's 502): say so in the
  // form's error summary (data-hx-failure-message on the form, or a default).
  function showFailure(form, failed) {
    var summary = document.getElementById(form.id + '-errors');
    if (!summary || (!failed && !summary.hasAttribute('data-hx-failure'))) return;
    summary.toggleAttribute('data-hx-failure', failed);
    summary.textContent = !failed ? '' : (form.getAttribute('data-hx-failure-message') ||
      'The request failed. Check your connection and try again.');
  }
  ['htmx:sendError', 'htmx:timeout', 'htmx:responseError'].forEach(function (name) {
    document.addEventListener(name, function (evt) {
      var form = submittedForm(issuer(evt.detail));
      if (form) showFailure(form, true);
    });
  });

  /* ------------------------------------------------------------------ answers */

  // Answers to action requests are swapped whatever their status: 422 and the refusals
  // carry out-of-band error slots. A 204 has nothing to swap and keeps htmx's default.
  document.addEventListener('htmx:beforeSwap', function (evt) {
    var d = evt.detail;
    var ours = header(d.xhr, 'HX-Actions') !== null;
    if (ours) {
      if (d.xhr.status !== 204) {
        d.shouldSwap = true;
        d.isError = false;
      }
      if (typeof d.serverResponse === 'string') d.serverResponse = withoutOrphanSlots(d.serverResponse);
    }
    if (d.shouldSwap && d.xhr) awaitingSwap.add(d.xhr);
    if (d.shouldSwap && ours) swapForDetachedIssuer(d);
  });

  // htmx looks for out-of-band targets in the sending element's tree. If another answer
  // replaced that element in flight (an add form in the list a delete re-rendered), the tree
  // is detached and the out-of-band parts would be lost: the swap is made here instead.
  function swapForDetachedIssuer(d) {
    var from = issuer(d);
    if (!from || from.isConnected || !d.target || !d.target.isConnected) return;
    var styled = from.closest('[hx-swap]');
    var style = d.swapOverride || (styled && styled.getAttribute('hx-swap')) ||
      window.htmx.config.defaultSwapStyle;
    window.htmx.swap(d.target, d.serverResponse, {
      swapStyle: style.split(/\s+/)[0],
      swapDelay: 0,
      settleDelay: window.htmx.config.defaultSettleDelay,
      ignoreTitle: true
    }, { contextElement: d.target, eventInfo: d });
    d.shouldSwap = false;
  }

  // An error answer carries a slot for every field of the action's schema; a form may show
  // only some of them. htmx logs an error for each out-of-band part with no place on the
  // page, so those slots are dropped before the swap.
  function withoutOrphanSlots(html) {
    if (html.indexOf('data-hx-field-error') < 0) return html;
    var template = document.createElement('template');
    template.innerHTML = html;
    var dropped = false;
    Array.prototype.slice.call(template.content.children).forEach(function (el) {
      if (el.hasAttribute('data-hx-field-error') && el.hasAttribute('hx-swap-oob') &&
          el.id && !document.getElementById(el.id)) {
        el.remove();
        dropped = true;
      }
    });
    return dropped ? template.innerHTML : html;
  }

  // Mirror the form's error slots onto its inputs; focus the first invalid input after an
  // error answer unless focus is in one of the form's fields (the user is typing there).
  function markInvalid(form, focus) {
    var firstInvalid = null;
    var fields = controls(form).filter(function (el) {
      return el.tagName === 'INPUT' || el.tagName === 'SELECT' || el.tagName === 'TEXTAREA';
    });
    form.querySelectorAll('[data-hx-field-error]').forEach(function (slot) {
      var name = slot.getAttribute('data-hx-field-error');
      var invalid = slot.textContent.trim() !== '';
      fields.forEach(function (el) {
        if (el.name !== name) return;
        if (invalid) {
          el.setAttribute('aria-invalid', 'true');
          if (!firstInvalid && el.type !== 'hidden') firstInvalid = el;
        } else {
          el.removeAttribute('aria-invalid');
        }
      });
    });
    // Focus on the form's own submit button (the one just pressed) does not count as the
    // user being busy in the form.
    var active = document.activeElement;
    var busyInForm = active && form.contains(active) && !isSubmitControl(active);
    if (focus && firstInvalid && !busyInForm) firstInvalid.focus();
  }

  // Runs once the answer is in the page. `final` is false for an early pass made before
  // a delayed swap (hx-swap swap:<time>, view transitions): that pass does not move focus.
  function afterAnswer(detail, final) {
    var xhr = detail.xhr;
    if (header(xhr, 'HX-Actions') === null) return;
    var form = actionFormOf(issuer(detail));
    if (!form) return;
    // The form's next key, from an answer that ended its submit: `HX-Actions: 1; key=<key>`.
    var key = noteRenewedKey(form, xhr);
    if (key && form.isConnected) {
      // A re-rendered form came with its own fresh key; only a surviving form needs this.
      controls(form).forEach(function (el) {
        if (el.name === '_hx_key') el.value = key;
      });
    }
    // The form may have been re-rendered under the same id: look at the one on the page.
    var current = form.isConnected ? form : (form.id && document.getElementById(form.id));
    if (!current || !current.matches(FORM_SELECTOR)) return;
    if (xhr.status < 400) clearErrors(current);
    markInvalid(current, final && xhr.status >= 400);
  }

  // A success that does not re-render its form (an action without a fragment) leaves the
  // messages of the last failed attempt on the page unless they go here.
  function clearErrors(form) {
    var summary = form.id && document.getElementById(form.id + '-errors');
    if (summary && !summary.hasAttribute('data-hx-failure')) summary.textContent = '';
    form.querySelectorAll('[data-hx-field-error]').forEach(function (slot) {
      slot.textContent = '';
    });
  }

  // The fresh key of an answer that ended the form's submit (`HX-Actions: 1; key=<key>`), if
  // any, remembered as the successor of the key the form sent.
  function noteRenewedKey(form, xhr) {
    var key = (/;\s*key=([A-Za-z0-9_-]+)/.exec(header(xhr, 'HX-Actions') || '') || [])[1];
    if (!key) return null;
    controls(form).forEach(function (el) {
      if (el.name !== '_hx_key' || !el.value || el.value === key) return;
      renewedKeys.delete(el.value);
      renewedKeys.set(el.value, key);
      if (renewedKeys.size > MAX_RENEWED_KEYS) renewedKeys.delete(renewedKeys.keys().next().value);
    });
    return key;
  }

  // htmx fires afterSwap on every swapped element, with the same detail: handle the first.
  document.addEventListener('htmx:afterSwap', function (evt) {
    var xhr = evt.detail.xhr;
    if (!xhr || !awaitingSwap.has(xhr) || handled.has(xhr)) return;
    handled.add(xhr);
    afterAnswer(evt.detail, true);
  });

  // afterRequest always follows a sent request (also on network errors and timeouts).
  // When the swap already happened, afterSwap did the work; otherwise (no swap, a swap
  // that left nothing to fire on, a delayed swap) make a pass now.
  document.addEventListener('htmx:afterRequest', function (evt) {
    var d = evt.detail;
    var form = submittedForm(issuer(d));
    if (d.xhr && d.xhr.status && !handled.has(d.xhr)) {
      if (!awaitingSwap.has(d.xhr)) {
        handled.add(d.xhr);
        afterAnswer(d, true);
      } else {
        afterAnswer(d, false); // the swap is still to come: its afterSwap makes the final pass
      }
    }
    if (form) clearPending(form);
    // A lazy fragment's placeholder still on the page after its load (an error status, which
    // htmx does not swap, or a network error) stays empty, and is no longer busy.
    var elt = issuer(d);
    if (elt && elt.nodeType === 1 && elt.isConnected &&
        elt.matches('[data-hx-fragment][hx-get][aria-busy]')) {
      elt.removeAttribute('aria-busy');
    }
  });

  /* ------------------------------------------------------------ error summaries */

  // The server leaves an empty error summary out of action forms (docs/wire.md): add it
  // where the server renders a full one, after the form's leading hidden inputs, so the
  // live region is in the page before an error answer swaps its message into it.
  function addSummaries(root) {
    if (!root || root.nodeType !== 1) return;
    var forms = Array.prototype.slice.call(root.querySelectorAll(FORM_SELECTOR));
    if (root.matches(FORM_SELECTOR)) forms.unshift(root);
    forms.forEach(function (form) {
      if (!form.id || document.getElementById(form.id + '-errors')) return;
      var summary = document.createElement('div');
      summary.id = form.id + '-errors';
      summary.className = 'hx-errors';
      summary.setAttribute('role', 'alert');
      var before = form.firstElementChild;
      while (before && before.tagName === 'INPUT' && before.type === 'hidden') before = before.nextElementSibling;
      form.insertBefore(summary, before);
    });
  }

  // htmx fires load on <body> once it has started and on each element it swaps in.
  document.addEventListener('htmx:load', function (evt) {
    addSummaries(evt.detail && evt.detail.elt);
  });
  // Loaded after htmx started (a script added later): the page is there already.
  if (document.readyState !== 'loading') addSummaries(document.body);

  // Tell the server this browser runs JavaScript: lazy fragments then load after the page
  // instead of rendering inline (see fragment(..., lazy=True)).
  if (!/(?:^|; )hx_js=1(?:;|$)/.test(document.cookie)) {
    document.cookie = 'hx_js=1; path=/; SameSite=Lax';
  }

  window.hxActions = Object.freeze({ version: '0.1.0' });
})();
