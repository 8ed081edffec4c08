// The storefront's one client of the JSON API: the session token, requests, and a sentence for every refusal.
var shop = (function () {
  "use strict";
  var SESSION = "shop.session", CART = "shop.cart", NAMES = "shop.names";

  function load(name, fallback) {
    try {
      var value = JSON.parse(localStorage.getItem(name));
      return value === null ? fallback : value;
    } catch (e) { return fallback; }
  }

  function save(name, value) {
    try { localStorage.setItem(name, JSON.stringify(value)); } catch (e) { /* private mode: nothing kept */ }
  }

  // A fresh Idempotency-Key for one attempt (crypto.randomUUID needs HTTPS; getRandomValues does not).
  function newKey() {
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  // One request and its answer {status, body, retryAfter}; status 0 when the shop could not be reached.
  function request(method, path, options) {
    options = options || {};
    var headers = {"Accept": "application/json"};
    if (options.token) headers["X-Session-Token"] = options.token;
    if (options.key) headers["Idempotency-Key"] = options.key;
    var init = {method: method, headers: headers, cache: "no-store", credentials: "omit"};
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    return fetch(path, init).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        body = body || {};
        var retryAfter = Number(response.headers.get("Retry-After")) || Number(body.retry_after) || 0;
        return {status: response.status, body: body, retryAfter: retryAfter};
      });
    }, function () { return {status: 0, body: {}, retryAfter: 0}; });
  }

  // The shopper's session token: POST /api/sessions the first time, and again once the last one has expired.
  function session() {
    var stored = load(SESSION, null);
    if (stored && Date.parse(stored.expires_at) > Date.now() + 60000) {
      return Promise.resolve({status: 200, token: stored.session_token});
    }
    return request("POST", "/api/sessions").then(function (answer) {
      if (answer.status !== 201) return answer;
      save(SESSION, answer.body);
      rememberCart({items: []});
      return {status: 201, token: answer.body.session_token};
    });
  }

  // A request in the shopper's session. A 401 (the session expired or was cleaned up) starts a new session and
  // sends the request once more: a new session's cart is empty, which the answer then says.
  function call(method, path, options, retried) {
    return session().then(function (started) {
      if (!started.token) return started;
      var sent = Object.assign({}, options || {}, {token: started.token});
      return request(method, path, sent).then(function (answer) {
        if (answer.status !== 401 || retried) return answer;
        save(SESSION, null);
        return call(method, path, options, true);
      });
    });
  }

  function rememberNames(pairs) {
    var known = load(NAMES, {});
    pairs.forEach(function (pair) { known[pair[0]] = pair[1]; });
    save(NAMES, known);
  }

  function nameOf(productId) {
    return load(NAMES, {})[productId] || "product " + productId;
  }

  // The cart as last answered, with each hold's end in this browser's clock, for the header's count.
  function rememberCart(cart) {
    var now = Date.now();
    var items = (cart.items || []).map(function (item) {
      return {product_id: item.product_id, quantity: item.quantity, ends: now + item.seconds_left * 1000};
    });
    rememberNames((cart.items || []).map(function (item) { return [item.product_id, item.name]; }));
    save(CART, items);
    showCartCount();
  }

  function rememberedCart() {
    return load(CART, []);
  }

  function showCartCount() {
    var now = Date.now(), count = 0;
    load(CART, []).forEach(function (item) { if (item.ends > now) count += item.quantity; });
    var badge = document.getElementById("cart-count");
    if (badge) badge.textContent = count ? " (" + count + ")" : "";
  }

  function names(ids) {
    return (ids || []).map(nameOf).join(", ") || "this product";
  }

  function again(answer) {
    var seconds = answer.retryAfter;
    if (!seconds) return " Please try again shortly.";
    return " Please try again in " + (seconds < 90 ? seconds + " s." : Math.ceil(seconds / 60) + " min.");
  }

  // A sentence for the shopper for every answer that is not a success.
  function explain(answer) {
    var body = answer.body || {}, code = body.code;
    if (answer.status === 0) return "The shop could not be reached. Check your connection and try again.";
    if (answer.status === 429) return "Too many requests from you just now." + again(answer);
    if (answer.status === 503) return "The shop is too busy to answer right now." + again(answer);
    if (answer.status >= 500) return "Something went wrong on our side." + again(answer);
    if (code === "insufficient_stock") {
      if (body.reason === "sold_out") return "Sold out: " + names(body.product_ids) + " has no units left.";
      if (body.reason === "sale_not_started") return "The sale of " + names(body.product_ids) + " has not started yet.";
      return "Not enough stock: " + names(body.product_ids) + " has fewer units left than you asked for.";
    }
    if (code === "limit_exceeded") return "You have reached the limit per shopper for " + names(body.product_ids) + ".";
    if (code === "hold_limit_exceeded") return "Your cart cannot hold more right now: check out or remove something first.";
    if (code === "hold_not_allowed") return "This product is on a flash sale and cannot wait in a cart: use Buy now.";
    if (code === "cart_empty") return "Your cart is empty: its holds have expired. Add the products again.";
    if (code === "request_in_progress") return "Your order is still being placed. Please wait a moment.";
    if (code === "product_not_found") return "This product is no longer sold.";
    if (code === "order_not_found") return "This order cannot be shown in this browser.";
    if (code === "session_required" || code === "session_invalid") return "Your session has expired. Please start again.";
    return body.detail || "The shop refused the request (HTTP " + answer.status + ").";
  }

  // Counts `seconds` down in `element` as m:ss and calls `done` at zero; returns a function that stops it.
  function countdown(element, seconds, done) {
    var ends = Date.now() + seconds * 1000, timer = null;
    function tick() {
      var left = Math.max(0, Math.round((ends - Date.now()) / 1000));
      element.textContent = Math.floor(left / 60) + ":" + ("0" + (left % 60)).slice(-2);
      if (left === 0) {
        clearInterval(timer);
        if (done) done();
      }
    }
    timer = setInterval(tick, 1000);
    tick();
    return function () { clearInterval(timer); };
  }

  function notice(element, kind, text) {
    element.className = "notice " + kind;
    element.textContent = text;
  }

  function money(cents, currency) {
    return (cents / 100).toFixed(2) + " " + currency;
  }

  function cents(price) {
    return Math.round(parseFloat(price) * 100);
  }

  showCartCount();
  setInterval(showCartCount, 5000);

  return {
    call: call, newKey: newKey, explain: explain, countdown: countdown, notice: notice, money: money, cents: cents,
    rememberCart: rememberCart, rememberedCart: rememberedCart, rememberNames: rememberNames, nameOf: nameOf
  };
})();
