// The demo page: a token field, the <dynconn-connect> form and the account's
// connections. The token may arrive in the URL's fragment (/modal/#token=…,
// as make run prints it): a fragment is never sent to the server, so it
// reaches no access log. It moves to sessionStorage (this tab only) and
// leaves the address bar at once.
const tokenInput = document.getElementById("token");
const form = document.getElementById("connect");
const rows = document.getElementById("connections");
const listStatus = document.getElementById("list-status");

const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.has("token")) {
  sessionStorage.setItem("dynconn-token", fragment.get("token"));
  history.replaceState(null, "", location.pathname + location.search);
}
tokenInput.value = sessionStorage.getItem("dynconn-token") ?? "";
tokenInput.addEventListener("change", () => {
  sessionStorage.setItem("dynconn-token", tokenInput.value.trim());
  refresh();
});

form.getToken = async () => tokenInput.value.trim();
form.addEventListener("dynconn-saved", refresh);
document.getElementById("new").addEventListener("click", () => {
  form.connectionId = "";
  form.focus();
});

async function refresh() {
  const token = tokenInput.value.trim();
  if (!token) {
    rows.replaceChildren();
    listStatus.textContent = "Enter a token to see your connections.";
    return;
  }
  let res;
  try {
    res = await fetch("../connections?limit=200", { headers: { Authorization: `Bearer ${token}` }, cache: "no-store" });
  } catch (err) {
    listStatus.textContent = `Could not reach dynconn: ${err.message}`;
    return;
  }
  if (!res.ok) {
    const p = await res.json().catch(() => ({}));
    listStatus.textContent = `${p.title ?? `HTTP ${res.status}`} ${p.detail ?? ""}`;
    return;
  }
  const { items, next_cursor: more } = await res.json();
  listStatus.textContent = items.length
    ? `${items.length} connection${items.length === 1 ? "" : "s"}${more ? " (the first 200)" : ""}.`
    : "No connections yet.";
  rows.replaceChildren(...items.map(row));
}

function row(c) {
  const tr = document.createElement("tr");
  const cell = (text, cls) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.append(td);
    return td;
  };
  cell(c.name);
  cell(c.instance_url, "url");
  const status = cell(c.status, `status ${c.status}`);
  if (c.last_test?.error) status.title = c.last_test.error.code;
  // A certificate connection has no secret; its certificate has the same states.
  const cred = c.client_secret ?? c.certificate;
  const expires = cred?.expires_at ?? cred?.not_after;
  cell(cred ? (expires ? `${cred.state}, expires ${expires.slice(0, 10)}` : cred.state) : "");
  const edit = document.createElement("button");
  edit.type = "button";
  edit.textContent = "Edit";
  edit.setAttribute("aria-label", `Edit ${c.name}`);
  edit.addEventListener("click", () => {
    form.connectionId = c.id;
    form.focus();
  });
  const td = document.createElement("td");
  td.append(edit);
  tr.append(td);
  return tr;
}

refresh();
