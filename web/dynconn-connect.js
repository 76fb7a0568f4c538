// <dynconn-connect>: the "Connect Dynamics 365" form of the setup guide,
// talking to dynconn's API. One ES module, no dependencies, no build step.
//
//   <dynconn-connect api-base="https://dynconn.example.com"></dynconn-connect>
//   <script type="module">
//     import "https://dynconn.example.com/modal/dynconn-connect.js";
//     const form = document.querySelector("dynconn-connect");
//     form.getToken = async () => myBearerToken();   // called before each request
//     form.addEventListener("dynconn-saved", (e) => console.log(e.detail)); // the connection
//   </script>
//
// Attributes (and properties): api-base (apiBase) — dynconn's base URL,
// default the origin this module was loaded from; connection-id
// (connectionId) — edit that connection instead of creating one; guide-url
// (guideUrl) — the setup guide, whose sections are linked as
// guide-url#<setup_step>, default dynconn's /modal/guide.html.
// Property getToken: an async function returning a bearer token.
// Events: dynconn-saved (detail: the connection), dynconn-tested (detail: the
// test result), dynconn-loaded (detail: the connection opened for editing).
// Theme with the --dynconn-* custom properties below and ::part(...).

// The setup guide's sections, by the setup_step names of the API.
const STEPS = {
  find_instance_url: "Find your Instance URL",
  create_app_registration: "Create an Azure App Registration",
  api_permissions: "API Permissions",
  client_secret: "Certificates and Secrets",
  create_api_user_role: "Create an API User Role",
  create_application_user: "Create an Application User",
  assign_role: "Apply the API User role",
};

// The five checks of a test, in the order they run.
const CHECKS = [
  ["instance_url", "Instance URL"],
  ["tenant_discovery", "Azure directory (tenant)"],
  ["token", "Sign-in with Client Id and Client Secret"],
  ["whoami", "Dynamics 365 access (WhoAmI)"],
  ["security_role", "Security role"],
];

// The form's fields, named as in the API; step is the guide section that
// says where the value comes from.
const FIELDS = [
  {
    name: "instance_url", label: "Resource URL", type: "url", required: true, step: "find_instance_url",
    help: "Open Dynamics 365 and copy the address bar up to the first slash, like https://yourorg.crm.dynamics.com.",
  },
  {
    name: "client_id", label: "Client Id", type: "text", required: true, step: "create_app_registration",
    help: "The Application (client) ID on the app registration's Overview page in Azure.",
  },
  {
    name: "client_secret", label: "Client Secret", type: "password", required: true, step: "client_secret",
    help: "The secret's Value (not its Secret ID) from Certificates & secrets; Azure shows it only once.",
    editHelp: "Unchanged: leave it empty to keep the stored secret, or paste a new Value to replace it.",
  },
  {
    name: "client_secret_expires_at", label: "Secret expires on (optional)", type: "date", step: "client_secret",
    help: "The date in the secret's Expires column, so you hear about it before it runs out.",
  },
  {
    name: "name", label: "Name (optional)", type: "text",
    help: "How this connection is listed; empty uses the environment's name (contoso for contoso.crm.dynamics.com).",
  },
];

const STYLE = `
:host {
  display: block;
  max-width: var(--dynconn-max-width, 34rem);
  font: var(--dynconn-font, 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif);
  color: var(--dynconn-color-text, #1b1f24);
  --_muted: var(--dynconn-color-muted, #57606a);
  --_accent: var(--dynconn-color-accent, #0f6cbd);
  --_on-accent: var(--dynconn-color-on-accent, #fff);
  --_error: var(--dynconn-color-error, #b3261e);
  --_success: var(--dynconn-color-success, #1a7f37);
  --_warning: var(--dynconn-color-warning, #9a6700);
  --_border: var(--dynconn-color-border, #c4cad1);
  --_bg: var(--dynconn-color-background, #fff);
  --_radius: var(--dynconn-radius, 6px);
  --_gap: var(--dynconn-spacing, 1rem);
  --_focus: var(--dynconn-focus-ring, 0 0 0 3px color-mix(in srgb, var(--_accent) 35%, transparent));
}
:host([hidden]) { display: none; }
* { box-sizing: border-box; }
form { display: grid; gap: var(--_gap); background: var(--_bg); }
h2 { margin: 0; font-size: 1.25em; }
.field { display: grid; gap: .25rem; }
label { font-weight: 600; }
.control { display: flex; gap: .5rem; }
input {
  flex: 1; min-width: 0; font: inherit; color: inherit; background: var(--_bg);
  padding: .5rem .6rem; border: 1px solid var(--_border); border-radius: var(--_radius);
}
input[type="date"] { flex: 0 1 12rem; }
input:focus-visible, button:focus-visible, a:focus-visible { outline: none; box-shadow: var(--_focus); }
input[aria-invalid="true"] { border-color: var(--_error); }
.help { margin: 0; color: var(--_muted); font-size: .9em; }
a { color: var(--_accent); }
.error { margin: 0; color: var(--_error); font-size: .9em; font-weight: 500; }
.error::before { content: "⚠ "; }
.actions { display: flex; gap: .5rem; justify-content: flex-end; flex-wrap: wrap; }
button {
  font: inherit; padding: .5rem 1rem; border-radius: var(--_radius); cursor: pointer;
  border: 1px solid var(--_border); background: var(--_bg); color: inherit;
}
button.primary { background: var(--_accent); border-color: var(--_accent); color: var(--_on-accent); }
button:disabled { opacity: .6; cursor: progress; }
button.reveal { padding: .5rem .75rem; }
button.reveal[aria-pressed="true"] { border-color: var(--_accent); color: var(--_accent); }
.status:empty, .result:empty { display: none; }
.status { margin: 0; }
.status.failed { color: var(--_error); }
.status button { margin-inline-start: .5rem; padding: .25rem .75rem; }
.result { display: grid; gap: .5rem; border: 1px solid var(--_border); border-radius: var(--_radius); padding: .75rem; }
ol { list-style: none; margin: 0; padding: 0; display: grid; gap: .3rem; }
li { display: grid; grid-template-columns: 1.5rem 1fr; }
li .icon { font-weight: 700; }
li .detail { grid-column: 2; color: var(--_muted); font-size: .9em; }
li[data-status="pending"], li[data-status="running"] { color: var(--_muted); }
li[data-status="passed"] .icon { color: var(--_success); }
li[data-status="failed"] .icon { color: var(--_error); }
li[data-status="warning"] .icon { color: var(--_warning); }
li[data-status="skipped"] { color: var(--_muted); }
.summary { display: grid; gap: .35rem; }
.summary p { margin: 0; }
.summary .headline { font-weight: 700; }
.summary.ok .headline { color: var(--_success); }
.summary.failed .headline { color: var(--_error); }
.summary .upstream { color: var(--_muted); font-size: .85em; overflow-wrap: anywhere; }
.sr { position: absolute; width: 1px; height: 1px; overflow: hidden; clip-path: inset(50%); white-space: nowrap; }
`;

let sheet; // one stylesheet shared by every instance

const ICONS = { pending: "○", running: "…", passed: "✓", failed: "✗", warning: "!", skipped: "–" };

// newKey returns a random UUID; crypto.randomUUID exists only in secure
// contexts (https, localhost), so plain-http development pages build one.
function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

// readEvents yields the server-sent events of a response body as
// {event, data}, following the event-stream format of the HTML standard.
async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let end;
    while ((end = buf.match(/\r\n\r\n|\n\n|\r\r/))) {
      const block = buf.slice(0, end.index);
      buf = buf.slice(end.index + end[0].length);
      let event = "message";
      const data = [];
      for (const line of block.split(/\r\n|\r|\n/)) {
        if (line === "" || line.startsWith(":")) continue;
        const i = line.indexOf(":");
        const field = i < 0 ? line : line.slice(0, i);
        let v = i < 0 ? "" : line.slice(i + 1);
        if (v.startsWith(" ")) v = v.slice(1);
        if (field === "event") event = v;
        else if (field === "data") data.push(v);
      }
      if (data.length) yield { event, data: data.join("\n") };
    }
  }
}

// el makes an element with attributes and children (strings become text,
// so no value from the API is ever parsed as HTML).
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  e.append(...children.filter((c) => c !== undefined && c !== null));
  return e;
}

// dateOf turns an RFC 3339 timestamp into the yyyy-mm-dd of a date input.
const dateOf = (ts) => (ts ? ts.slice(0, 10) : "");

export class DynconnConnect extends HTMLElement {
  static observedAttributes = ["connection-id", "api-base", "guide-url"];

  #root;
  #inputs = {};
  #errors = {};
  #helps = {};
  #status;
  #result;
  #buttons = {};
  #connection = null; // the connection being edited, as last read
  #etag = null;
  #submission = null; // {body, key}: a retried identical create reuses its key
  #busy = false;
  #loading = 0; // which load is current, so a stale answer is dropped
  #wanted = ""; // the connection id shown or being loaded; "" for a new one
  #getToken = null;
  #waitingForToken = false; // a load waits until the host sets getToken

  constructor() {
    super();
    this.#root = this.attachShadow({ mode: "open", delegatesFocus: true });
    if (!sheet) {
      sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLE);
    }
    this.#root.adoptedStyleSheets = [sheet];
    this.#render();
    // A host may set properties before this module defined the element;
    // those landed on the instance and would hide the accessors.
    for (const p of ["getToken", "apiBase", "guideUrl", "connectionId"]) {
      if (Object.hasOwn(this, p)) {
        const v = this[p];
        delete this[p];
        this[p] = v;
      }
    }
  }

  /** @type {(() => Promise<string>) | null} called before each request for a bearer token */
  get getToken() { return this.#getToken; }
  set getToken(fn) {
    this.#getToken = fn;
    if (fn && this.#waitingForToken) this.#load();
  }

  get apiBase() {
    return this.getAttribute("api-base") || new URL("../", import.meta.url).href;
  }
  set apiBase(v) { this.setAttribute("api-base", v); }

  get guideUrl() {
    return this.getAttribute("guide-url") || new URL("guide.html", import.meta.url).href;
  }
  set guideUrl(v) { this.setAttribute("guide-url", v); }

  get connectionId() { return this.getAttribute("connection-id") || ""; }
  set connectionId(v) {
    if (v) this.setAttribute("connection-id", v);
    else this.removeAttribute("connection-id");
  }

  connectedCallback() {
    if (this.#wanted !== this.connectionId) this.#load();
  }

  attributeChangedCallback(name, old, value) {
    if (name === "guide-url") this.#renderLinks();
    if (name !== "connection-id" || !this.isConnected || this.#wanted === (value ?? "")) return;
    this.#load();
  }

  #render() {
    const form = el("form", { part: "form", novalidate: true, "aria-labelledby": "heading" });
    form.append(el("h2", { id: "heading", part: "heading" }, "Connect Dynamics 365"));
    for (const f of FIELDS) {
      const input = el("input", {
        id: f.name, name: f.name, type: f.type, part: "input",
        required: f.required, "aria-required": f.required ? "true" : undefined,
        autocomplete: "off", spellcheck: "false", autocapitalize: "off",
        inputmode: f.type === "url" ? "url" : undefined,
      });
      const help = el("p", { id: `${f.name}-help`, class: "help", part: "help" });
      const error = el("p", { id: `${f.name}-error`, class: "error", part: "error", hidden: true });
      const control = el("div", { class: "control" }, input);
      if (f.type === "password") {
        const reveal = el("button", {
          type: "button", class: "reveal", part: "button reveal-button",
          "aria-controls": f.name, "aria-pressed": "false",
        }, "Show");
        // The name stays "Show"; aria-pressed says whether it is on.
        reveal.addEventListener("click", () => {
          const shown = input.type === "password";
          input.type = shown ? "text" : "password";
          reveal.setAttribute("aria-pressed", String(shown));
        });
        control.append(reveal);
      }
      form.append(el("div", { class: "field", part: "field" },
        el("label", { for: f.name, part: "label" }, f.label), control, error, help));
      input.addEventListener("input", () => this.#clearError(f.name));
      this.#inputs[f.name] = input;
      this.#errors[f.name] = error;
      this.#helps[f.name] = help;
      this.#describe(f.name);
    }
    this.#status = el("p", { class: "status", part: "status", role: "status", "aria-live": "polite" });
    this.#result = el("section", { class: "result", part: "result", "aria-live": "polite", "aria-label": "Test result" });
    this.#buttons.test = el("button", { type: "button", part: "button test-button" }, "Test connection");
    this.#buttons.save = el("button", { type: "submit", class: "primary", part: "button save-button" }, "Save");
    this.#buttons.test.addEventListener("click", () => this.#test());
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      this.#save();
    });
    form.append(this.#result, this.#status, el("div", { class: "actions", part: "actions" }, this.#buttons.test, this.#buttons.save));
    this.#root.append(form);
    this.#renderLinks();
  }

  // #renderLinks writes each field's help with a link to its guide step.
  #renderLinks() {
    const editing = Boolean(this.connectionId);
    for (const f of FIELDS) {
      const help = this.#helps[f.name];
      help.replaceChildren(editing && f.editHelp ? f.editHelp : f.help);
      if (f.step) help.append(" ", this.#stepLink(f.step, `Guide: ${STEPS[f.step]}`));
    }
    this.#inputs.client_secret.placeholder = editing ? "unchanged" : "";
    this.#root.getElementById("heading").textContent = editing ? "Edit Dynamics 365 connection" : "Connect Dynamics 365";
  }

  #stepLink(step, text) {
    return el("a", { href: `${this.guideUrl}#${step}`, target: "_blank", rel: "noopener", part: "guide-link" }, text);
  }

  // #describe ties an input to its error (when shown) and its help.
  #describe(name) {
    const ids = [`${name}-help`];
    const shown = !this.#errors[name].hidden;
    if (shown) ids.unshift(`${name}-error`);
    this.#inputs[name].setAttribute("aria-describedby", ids.join(" "));
    this.#inputs[name].setAttribute("aria-invalid", String(shown));
  }

  #setError(name, message) {
    this.#errors[name].textContent = message;
    this.#errors[name].hidden = false;
    this.#describe(name);
  }

  #clearError(name) {
    if (this.#errors[name].hidden) return;
    this.#errors[name].hidden = true;
    this.#errors[name].textContent = "";
    this.#describe(name);
  }

  #clearMessages() {
    for (const name in this.#errors) this.#clearError(name);
    this.#status.replaceChildren();
    this.#status.classList.remove("failed");
  }

  #say(text, { failed = false, action } = {}) {
    this.#status.classList.toggle("failed", failed);
    this.#status.replaceChildren(...(text ? [text] : []));
    if (action) {
      const b = el("button", { type: "button", part: "button status-button" }, action.label);
      b.addEventListener("click", action.run);
      this.#status.append(b);
      b.focus();
    }
  }

  #setBusy(busy) {
    this.#busy = busy;
    this.#buttons.test.disabled = busy;
    this.#buttons.save.disabled = busy;
  }

  // #fill shows a connection read from the API and switches to edit mode.
  #fill(c, etag) {
    this.#connection = c;
    this.#etag = etag;
    this.#submission = null;
    const v = this.#inputs;
    v.instance_url.value = c.instance_url;
    v.client_id.value = c.client_id;
    v.client_secret.value = "";
    this.#maskSecret();
    v.client_secret_expires_at.value = dateOf(c.client_secret?.expires_at);
    v.name.value = c.name;
    v.client_secret.required = false;
    v.client_secret.removeAttribute("aria-required");
    this.#wanted = c.id; // so setting the attribute below loads nothing
    this.connectionId = c.id;
    this.#renderLinks();
  }

  #maskSecret() {
    this.#inputs.client_secret.type = "password";
    this.#root.querySelector(".reveal").setAttribute("aria-pressed", "false");
  }

  async #load() {
    const id = this.connectionId;
    const ticket = ++this.#loading;
    this.#wanted = id;
    this.#waitingForToken = Boolean(id && !this.#getToken);
    if (this.#waitingForToken) return;
    this.#clearMessages();
    this.#result.replaceChildren();
    if (!id) {
      this.#connection = null;
      this.#etag = null;
      this.#submission = null;
      for (const input of Object.values(this.#inputs)) input.value = "";
      this.#maskSecret();
      this.#inputs.client_secret.required = true;
      this.#inputs.client_secret.setAttribute("aria-required", "true");
      this.#renderLinks();
      return;
    }
    this.#renderLinks();
    this.#say("Loading the connection…");
    try {
      const res = await this.#request("GET", `/connections/${encodeURIComponent(id)}`);
      if (ticket !== this.#loading) return;
      if (!res.ok) return await this.#showProblem(res);
      const c = await res.json();
      this.#fill(c, res.headers.get("ETag"));
      this.#say("");
      this.dispatchEvent(new CustomEvent("dynconn-loaded", { detail: c, bubbles: true, composed: true }));
    } catch (err) {
      if (ticket === this.#loading) this.#unreachable(err);
    }
  }

  // #values reads the form. Dates become the start of that day in UTC.
  #values() {
    const v = {};
    for (const [name, input] of Object.entries(this.#inputs)) v[name] = input.value.trim();
    v.client_secret = this.#inputs.client_secret.value; // the server trims; never alter a secret here
    v.client_secret_expires_at = v.client_secret_expires_at ? `${v.client_secret_expires_at}T00:00:00Z` : null;
    return v;
  }

  // #saveBody is the create body, or in edit mode the fields that changed.
  #saveBody() {
    const v = this.#values();
    const c = this.#connection;
    if (!c) {
      const body = { instance_url: v.instance_url, client_id: v.client_id, client_secret: v.client_secret };
      if (v.name) body.name = v.name;
      if (v.client_secret_expires_at) body.client_secret_expires_at = v.client_secret_expires_at;
      return body;
    }
    const body = {};
    if (v.instance_url !== c.instance_url) body.instance_url = v.instance_url;
    if (v.client_id !== c.client_id) body.client_id = v.client_id;
    if (v.name !== c.name) body.name = v.name;
    if (v.client_secret !== "") body.client_secret = v.client_secret;
    // A new secret starts without an expiry, so the date goes along with it.
    const date = this.#inputs.client_secret_expires_at.value;
    if (date !== dateOf(c.client_secret?.expires_at) || (body.client_secret && date)) {
      body.client_secret_expires_at = v.client_secret_expires_at; // null clears it
    }
    return body;
  }

  async #save() {
    if (this.#busy) return;
    this.#clearMessages();
    const body = this.#saveBody();
    const editing = Boolean(this.#connection);
    if (editing && Object.keys(body).length === 0) {
      this.#say("Nothing has changed.");
      return;
    }
    this.#setBusy(true);
    this.#say("Saving…");
    try {
      let res;
      if (editing) {
        const headers = this.#etag ? { "If-Match": this.#etag } : {};
        res = await this.#request("PATCH", `/connections/${encodeURIComponent(this.#connection.id)}`, { body, headers });
      } else {
        res = await this.#request("POST", "/connections", { body, headers: { "Idempotency-Key": this.#keyFor(body) } });
      }
      if (!res.ok) return await this.#showProblem(res);
      const c = await res.json();
      this.#fill(c, res.headers.get("ETag"));
      this.#say(editing ? "Changes saved." : "Connection saved.");
      this.dispatchEvent(new CustomEvent("dynconn-saved", { detail: c, bubbles: true, composed: true }));
      if (!this.#etag) this.#refreshETag(c.id);
    } catch (err) {
      this.#unreachable(err);
    } finally {
      this.#setBusy(false);
    }
  }

  // #keyFor returns the Idempotency-Key of this submission: the same body
  // sent again (a double click, a retry after a lost answer) keeps its key,
  // so the server creates one connection; another body gets a new key.
  #keyFor(body) {
    const s = JSON.stringify(body);
    if (this.#submission?.body !== s) this.#submission = { body: s, key: newKey() };
    return this.#submission.key;
  }

  // #refreshETag reads the version of a connection whose create answer had
  // no ETag (dynconn sends none on a create with an Idempotency-Key), so the
  // next save can still say If-Match. Should it fail, that save goes without.
  async #refreshETag(id) {
    const ticket = this.#loading;
    try {
      const res = await this.#request("GET", `/connections/${encodeURIComponent(id)}`);
      // Only if the form still shows this connection as saved then.
      if (res.ok && ticket === this.#loading && this.#connection?.id === id && !this.#etag) this.#etag = res.headers.get("ETag");
    } catch {
      // a network error here costs only the If-Match of the next save
    }
  }

  async #test() {
    if (this.#busy) return;
    this.#clearMessages();
    const v = this.#values();
    const body = { instance_url: v.instance_url, client_id: v.client_id };
    if (this.#connection) {
      body.connection_id = this.#connection.id;
      if (v.client_secret !== "") body.client_secret = v.client_secret;
    } else {
      body.client_secret = v.client_secret;
    }
    this.#setBusy(true);
    this.#say("Testing the connection…");
    const list = this.#renderChecks();
    try {
      const res = await this.#request("POST", "/connection-tests", { body, headers: { Accept: "text/event-stream" } });
      if (!res.ok) {
        this.#result.replaceChildren();
        return await this.#showProblem(res);
      }
      let result = null;
      if ((res.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
        for await (const ev of readEvents(res.body)) {
          if (ev.event === "check") this.#showCheck(list, JSON.parse(ev.data));
          else if (ev.event === "result") result = JSON.parse(ev.data);
        }
      } else {
        result = await res.json();
      }
      if (!result) {
        this.#say("The test stopped before it finished. Try again.", { failed: true });
        return;
      }
      this.#showResult(list, result);
      this.dispatchEvent(new CustomEvent("dynconn-tested", { detail: result, bubbles: true, composed: true }));
    } catch (err) {
      this.#unreachable(err);
    } finally {
      this.#setBusy(false);
    }
  }

  // #renderChecks shows the five checks as pending, the first as running.
  #renderChecks() {
    const list = el("ol", { part: "checks", "aria-label": "Checks" });
    for (const [name, label] of CHECKS) {
      list.append(el("li", { "data-check": name, "data-status": "pending", part: "check check-pending" },
        el("span", { class: "icon", "aria-hidden": "true" }, ICONS.pending),
        el("span", { class: "label" }, label, el("span", { class: "sr" }, ": waiting"))));
    }
    this.#result.replaceChildren(list);
    markRunning(list);
    return list;
  }

  #showCheck(list, check) {
    const li = list.querySelector(`li[data-check="${check.name}"]`);
    if (!li) return;
    const label = CHECKS.find(([n]) => n === check.name)[1];
    li.dataset.status = check.status;
    li.setAttribute("part", `check check-${check.status}`);
    li.replaceChildren(
      el("span", { class: "icon", "aria-hidden": "true" }, ICONS[check.status] ?? "?"),
      el("span", { class: "label" }, label, el("span", { class: "sr" }, `: ${check.status}`)));
    const detail = check.status === "failed" || check.status === "warning" ? check.message : check.detail;
    if (detail) li.append(el("span", { class: "detail" }, detail));
    markRunning(list);
  }

  #showResult(list, r) {
    for (const check of r.checks) this.#showCheck(list, check);
    const summary = el("div", { class: `summary ${r.ok ? "ok" : "failed"}`, part: `summary summary-${r.ok ? "ok" : "failed"}` });
    if (r.ok) {
      const id = r.identity ?? {};
      summary.append(el("p", { class: "headline" }, "The connection works."));
      summary.append(el("p", {}, `Application user: ${id.user_id ?? "unknown"}`));
      const roles = id.roles?.length ? id.roles.join(", ") : "none";
      summary.append(el("p", { class: "roles", part: "roles" }, `Security roles: ${roles}`));
      for (const c of r.checks.filter((c) => c.status === "warning")) {
        summary.append(el("p", { class: "hint", part: "hint" }, [c.message, c.hint].filter(Boolean).join(" ")));
      }
    } else {
      const e = r.error ?? {};
      summary.append(el("p", { class: "headline message", part: "message" }, e.message || "The test failed."));
      if (e.hint) summary.append(el("p", { class: "hint", part: "hint" }, e.hint));
      if (e.setup_step) {
        summary.append(el("p", { class: "step", part: "step" }, "Setup step to revisit: ",
          this.#stepLink(e.setup_step, STEPS[e.setup_step] ?? e.setup_step)));
      }
      const up = r.checks.find((c) => c.status === "failed")?.upstream;
      if (up) summary.append(el("p", { class: "upstream", part: "upstream" }, upstreamText(up)));
    }
    this.#result.append(summary);
    this.#say(r.ok ? "Test passed." : "Test failed.", { failed: !r.ok });
  }

  // #showProblem explains an error answer: per-field messages under their
  // inputs (focus on the first), or one message for the whole form.
  async #showProblem(res) {
    let p = {};
    try {
      p = await res.json();
    } catch {
      // not a problem document (a proxy's error page): the status says enough
    }
    const request = p.request_id ? ` (request ${p.request_id})` : "";
    switch (res.status) {
      case 422: {
        const other = [];
        for (const e of p.errors ?? []) {
          if (this.#inputs[e.field]) this.#setError(e.field, e.message);
          else other.push(e.message);
        }
        const first = FIELDS.find((f) => !this.#errors[f.name].hidden);
        if (first) this.#inputs[first.name].focus();
        const n = FIELDS.filter((f) => !this.#errors[f.name].hidden).length;
        const lead = n ? `${n === 1 ? "One field needs" : `${n} fields need`} attention.` : p.title;
        this.#say([lead, ...other].join(" "), { failed: true });
        return;
      }
      case 412:
        this.#say("Someone else changed this connection since you opened it.", {
          failed: true,
          action: { label: "Reload it (your edits here are dropped)", run: () => this.#load() },
        });
        return;
      case 409:
        if (p.existing_id) {
          this.#say("A connection with this Resource URL and Client Id already exists.", {
            failed: true, action: { label: "Open it", run: () => { this.connectionId = p.existing_id; } },
          });
        } else {
          this.#say("Your previous save is still in progress. Try again in a moment.", { failed: true });
        }
        return;
      case 401:
        this.#say(`dynconn did not accept the sign-in token; it may have expired. Sign in again and retry.${request}`, { failed: true });
        return;
      case 404:
        this.#say("This connection no longer exists.", { failed: true });
        return;
      case 429: {
        const after = res.headers.get("Retry-After");
        this.#say(`Too many tests in a short time. Try again${after ? ` in ${after} seconds` : " shortly"}.`, { failed: true });
        return;
      }
      default:
        this.#say(`${p.title || `dynconn answered HTTP ${res.status}.`} Try again in a moment.${request}`, { failed: true });
    }
  }

  #unreachable(err) {
    this.#say(`Could not reach dynconn (${err.message}). Check your network and try again.`, { failed: true });
  }

  async #request(method, path, { body, headers = {} } = {}) {
    const h = new Headers(headers);
    const token = this.#getToken ? await this.#getToken() : "";
    if (token) h.set("Authorization", `Bearer ${token}`);
    if (body !== undefined) h.set("Content-Type", "application/json");
    const base = this.apiBase.endsWith("/") ? this.apiBase : `${this.apiBase}/`;
    return fetch(new URL(path.slice(1), new URL(base, location.href)), {
      method, headers: h, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit", cache: "no-store",
    });
  }
}

// markRunning shows the first check still waiting as the one under way.
function markRunning(list) {
  const li = list.querySelector('li[data-status="pending"]');
  if (!li) return;
  li.dataset.status = "running";
  li.querySelector(".icon").textContent = ICONS.running;
  li.querySelector(".sr").textContent = ": running";
}

// upstreamText is what Microsoft answered, for a support request.
function upstreamText(up) {
  const parts = [];
  if (up.http_status) parts.push(`HTTP ${up.http_status}`);
  if (up.error) parts.push(up.error);
  if (up.error_codes?.length) parts.push(up.error_codes.map((c) => `AADSTS${c}`).join(" "));
  if (up.code) parts.push(up.code);
  if (up.trace_id) parts.push(`trace ID ${up.trace_id}`);
  if (up.correlation_id) parts.push(`correlation ID ${up.correlation_id}`);
  return `Microsoft's answer: ${parts.join(" · ")}`;
}

if (!customElements.get("dynconn-connect")) customElements.define("dynconn-connect", DynconnConnect);
