// Security keys and passkeys (WebAuthn) on the account page (add a key) and the login's
// second step (use one). A file of its own, not an inline script: those two pages' policy
// lets scripts come from rampart itself only. The server sends the options as JSON with
// binary fields in base64url; the browser API wants ArrayBuffers, and the answer goes back
// as JSON (base64url again) in the form's hidden `credential` field, posted as a normal
// form so the server answers with a page or a redirect.
"use strict";
(function () {
  function fromB64url(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) {
      out[i] = bin.charCodeAt(i);
    }
    return out.buffer;
  }

  function toB64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) {
      bin += String.fromCharCode(bytes[i]);
    }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function decodeList(list) {
    return (list || []).map(function (c) {
      return Object.assign({}, c, { id: fromB64url(c.id) });
    });
  }

  var KNOWN_TRANSPORTS = ["usb", "nfc", "ble", "internal", "hybrid"];

  function creationOptions(json) {
    var pk = Object.assign({}, json.publicKey);
    pk.challenge = fromB64url(pk.challenge);
    pk.user = Object.assign({}, pk.user, { id: fromB64url(pk.user.id) });
    pk.excludeCredentials = decodeList(pk.excludeCredentials);
    return { publicKey: pk };
  }

  function requestOptions(json) {
    var pk = Object.assign({}, json.publicKey);
    pk.challenge = fromB64url(pk.challenge);
    pk.allowCredentials = decodeList(pk.allowCredentials);
    return { publicKey: pk };
  }

  function registrationAnswer(cred) {
    var r = cred.response;
    var transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: toB64url(r.attestationObject),
        clientDataJSON: toB64url(r.clientDataJSON),
        transports: transports.filter(function (t) {
          return KNOWN_TRANSPORTS.indexOf(t) >= 0;
        }),
      },
      extensions: cred.getClientExtensionResults(),
    };
  }

  function assertionAnswer(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: toB64url(r.authenticatorData),
        clientDataJSON: toB64url(r.clientDataJSON),
        signature: toB64url(r.signature),
        userHandle: r.userHandle ? toB64url(r.userHandle) : null,
      },
      extensions: {},
    };
  }

  // Asks the server to begin a ceremony; the answer is the options (JSON) or a sentence.
  function begin(url) {
    return fetch(url, { method: "POST", credentials: "same-origin" }).then(function (res) {
      if (!res.ok) {
        return res.text().then(function (text) {
          throw new Error(text.trim() || "the server refused (" + res.status + ")");
        });
      }
      return res.json();
    });
  }

  // Wires one form: on submit, begin, ask the authenticator, put its answer in the
  // hidden field and post the form for real.
  function wire(form, ask) {
    var status = form.querySelector("#webauthn-status");
    var field = form.querySelector("input[name=credential]");
    var button = form.querySelector("button[type=submit]");
    if (!window.PublicKeyCredential || !navigator.credentials) {
      if (status) {
        status.textContent = "This browser does not support security keys.";
      }
      if (button) {
        button.disabled = true;
      }
      return;
    }
    var sent = false;
    form.addEventListener("submit", function (event) {
      if (sent) {
        return;
      }
      event.preventDefault();
      if (button) {
        button.disabled = true;
      }
      if (status) {
        status.textContent = "Waiting for your security key…";
      }
      begin(form.dataset.begin)
        .then(ask)
        .then(function (answer) {
          field.value = JSON.stringify(answer);
          sent = true;
          form.submit();
        })
        .catch(function (err) {
          if (status) {
            status.textContent = "Not done: " + (err && err.message ? err.message : err);
          }
          if (button) {
            button.disabled = false;
          }
        });
    });
    form.dataset.ready = "yes";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var add = document.getElementById("webauthn-add");
    if (add) {
      wire(add, function (json) {
        return navigator.credentials.create(creationOptions(json)).then(registrationAnswer);
      });
    }
    var login = document.getElementById("webauthn-login");
    if (login) {
      wire(login, function (json) {
        return navigator.credentials.get(requestOptions(json)).then(assertionAnswer);
      });
    }
  });
})();
