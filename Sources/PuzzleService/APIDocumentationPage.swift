import Foundation

/// The human-readable API reference served at `/docs`: one self-contained HTML page whose script
/// fetches `/openapi.json` and renders every path, method, parameter, request body, response
/// and schema. No external resources (it works offline, and its `Content-Security-Policy`
/// forbids loading any); all text from the document is inserted as text, never as markup.
enum APIDocumentationPage {
    static let bytes = Array(html.utf8)

    /// `default-src 'none'` with the inline script and style allowed and `connect-src 'self'`
    /// for the one fetch of the document.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'"

    static let html = ##"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API reference · Jigsaw puzzle solver</title>
<link rel="icon" href="data:,">
<style>
:root { --bg: #f5f6fb; --card: #fff; --ink: #1c1f2e; --muted: #5b6075; --line: #e3e5ef; --accent: #4f46e5;
  --get: #15803d; --post: #1d4ed8; --put: #b45309; --delete: #b91c1c; --code: #f0f1f7; color-scheme: light dark; }
@media (prefers-color-scheme: dark) { :root { --bg: #10121a; --card: #191c27; --ink: #e8eaf3; --muted: #a2a7bd;
  --line: #2b2f3f; --accent: #818cf8; --get: #4ade80; --post: #93c5fd; --put: #fbbf24; --delete: #f87171; --code: #23263a; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
a { color: var(--accent); }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.92em; }
code { background: var(--code); padding: 0 0.3em; border-radius: 4px; }
header, main, nav { max-width: 1080px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 28px; }
h1 { margin: 0 0 4px; font-size: 1.7rem; }
h2 { margin: 32px 0 12px; font-size: 1.3rem; }
h3 { margin: 0; font-size: 1.05rem; display: flex; gap: 10px; align-items: baseline; flex-wrap: wrap; }
h4 { margin: 16px 0 6px; font-size: 0.95rem; color: var(--muted); text-transform: uppercase; letter-spacing: 0.04em; }
.lede { color: var(--muted); max-width: 75ch; }
.toc { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 4px 16px; padding: 0; list-style: none; }
.toc a { text-decoration: none; color: var(--ink); }
.method { display: inline-block; min-width: 4.2em; text-align: center; font-weight: 700; font-size: 0.78rem; padding: 1px 6px;
  border-radius: 6px; border: 1px solid currentColor; font-family: ui-monospace, Menlo, Consolas, monospace; }
.method.get, .method.head { color: var(--get); } .method.post { color: var(--post); }
.method.put, .method.patch { color: var(--put); } .method.delete { color: var(--delete); }
.operation, .schema-card { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 16px 18px; margin: 0 0 14px; }
.summary { color: var(--muted); font-weight: 400; }
.description { white-space: pre-wrap; max-width: 90ch; }
table { border-collapse: collapse; width: 100%; font-size: 0.92rem; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-top: 1px solid var(--line); }
th { color: var(--muted); font-weight: 600; }
.required { color: var(--delete); font-weight: 700; }
table.responses td:first-child { width: 5em; }
.type { color: var(--accent); }
.note { color: var(--muted); }
.nested { margin: 4px 0 0 14px; padding-left: 10px; border-left: 2px solid var(--line); }
#status { color: var(--muted); }
#status.error { color: var(--delete); }
footer { max-width: 1080px; margin: 30px auto; padding: 0 20px; color: var(--muted); }
</style>
</head>
<body>
<header>
  <h1 id="title">API reference</h1>
  <div class="lede" id="version"></div>
  <p class="lede description" id="overview"></p>
  <p id="status" role="status">Loading <a href="openapi.json">openapi.json</a>…</p>
</header>
<nav aria-label="Operations"><h2>Operations</h2><ul class="toc" id="toc"></ul></nav>
<main>
  <section id="operations" aria-label="Paths"></section>
  <section id="schemas" aria-label="Schemas"></section>
</main>
<footer>Rendered in the browser from <a href="openapi.json">/openapi.json</a> (OpenAPI 3). The <a href="/">web page</a> uses the same API.</footer>
<script>
"use strict";
(function () {
  const methods = ["get", "head", "post", "put", "patch", "delete", "options", "trace"];
  let documentRoot = {};

  function element(tag, attributes, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "class") node.className = value; else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function refName(ref) { return typeof ref === "string" ? ref.split("/").pop() : ""; }

  // Follows a local "$ref" ("#/components/...") once, to the object it names.
  function resolve(value) {
    let current = value, guard = 0;
    while (current && typeof current === "object" && typeof current.$ref === "string" && guard++ < 16) {
      if (!current.$ref.startsWith("#/")) return current;
      let target = documentRoot;
      for (const part of current.$ref.slice(2).split("/")) {
        target = target && typeof target === "object" ? target[part.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined;
      }
      if (target === undefined) return current;
      current = target;
    }
    return current;
  }

  function schemaAnchor(name) { return "schema-" + name; }
  function operationAnchor(method, path) { return "op-" + method + "-" + path.replace(/[^A-Za-z0-9]+/g, "-"); }

  // A one-line type: "string (binary)", "array of Puzzle", a link for a $ref.
  function typeLabel(schema) {
    if (!schema || typeof schema !== "object") return element("span", { class: "type" }, "any");
    if (typeof schema.$ref === "string") {
      const name = refName(schema.$ref);
      return element("a", { class: "type mono", href: "#" + schemaAnchor(name) }, name);
    }
    const parts = [];
    if (schema.type === "array") {
      return element("span", { class: "type" }, "array of ", typeLabel(schema.items));
    }
    if (schema.type === "object" && schema.additionalProperties && typeof schema.additionalProperties === "object" && !schema.properties) {
      return element("span", { class: "type" }, "map of ", typeLabel(schema.additionalProperties));
    }
    for (const key of ["oneOf", "anyOf", "allOf"]) {
      if (Array.isArray(schema[key])) {
        const joined = [];
        schema[key].forEach((item, index) => { if (index) joined.push(key === "allOf" ? " and " : " or "); joined.push(typeLabel(item)); });
        return element("span", { class: "type" }, ...joined);
      }
    }
    parts.push(schema.type || "any");
    if (schema.format) parts.push(" (" + schema.format + ")");
    if (schema.nullable) parts.push(", nullable");
    return element("span", { class: "type" }, parts.join(""));
  }

  // Constraints and defaults as short notes.
  function constraints(schema) {
    if (!schema || typeof schema !== "object") return [];
    const notes = [];
    if (Array.isArray(schema.enum)) notes.push("one of " + schema.enum.map((v) => JSON.stringify(v)).join(", "));
    if (schema.minimum !== undefined) notes.push((schema.exclusiveMinimum === true ? "> " : "≥ ") + schema.minimum);
    if (schema.maximum !== undefined) notes.push((schema.exclusiveMaximum === true ? "< " : "≤ ") + schema.maximum);
    if (schema.minItems !== undefined) notes.push("at least " + schema.minItems + " items");
    if (schema.maxItems !== undefined) notes.push("at most " + schema.maxItems + " items");
    if (schema.default !== undefined) notes.push("default " + JSON.stringify(schema.default));
    return notes;
  }

  // An inline schema: its type, notes and, for objects, a table of properties (nested inline
  // objects recursively; named schemas are links, so cycles end).
  function renderSchema(schema, depth) {
    const box = element("div", { class: depth ? "nested" : "" });
    if (!schema || typeof schema !== "object") { box.append(typeLabel(schema)); return box; }
    const line = element("div", {}, typeLabel(schema));
    const notes = constraints(schema);
    if (notes.length) line.append(element("span", { class: "note" }, " · " + notes.join(" · ")));
    box.append(line);
    if (schema.description && depth === 0 && !schema.$ref) box.append(element("div", { class: "description" }, schema.description));
    if (schema.$ref || depth > 6) return box;
    let body = schema;
    if (schema.type === "array" && schema.items && !schema.items.$ref && schema.items.properties) body = schema.items;
    if (body.properties && typeof body.properties === "object") {
      const required = new Set(Array.isArray(body.required) ? body.required : []);
      const rows = Object.entries(body.properties).map(([name, property]) => {
        const cell = element("td", {}, typeLabel(property));
        const notes = constraints(property);
        if (notes.length) cell.append(element("span", { class: "note" }, " · " + notes.join(" · ")));
        const inner = property && (property.properties || (property.items && property.items.properties));
        if (inner && !property.$ref) cell.append(renderSchema(property, depth + 1));
        return element("tr", {},
          element("td", { class: "mono" }, name, required.has(name) ? element("span", { class: "required", title: "required" }, " *") : null),
          cell,
          element("td", { class: "description" }, property && property.description ? property.description : ""));
      });
      box.append(element("table", {}, element("thead", {}, element("tr", {}, element("th", {}, "Property"), element("th", {}, "Type"), element("th", {}, "Description"))), element("tbody", {}, rows)));
    }
    if (body.additionalProperties === true) box.append(element("div", { class: "note" }, "further properties allowed"));
    return box;
  }

  function renderContent(content) {
    const list = element("div", {});
    for (const [mediaType, media] of Object.entries(content || {})) {
      const item = element("div", { class: "media" }, element("code", {}, mediaType));
      if (media && media.schema) item.append(renderSchema(media.schema, 1));
      list.append(item);
    }
    return list;
  }

  function renderParameters(parameters) {
    const rows = parameters.map(resolve).filter((p) => p && typeof p === "object").map((parameter) => {
      const type = element("td", {}, typeLabel(parameter.schema));
      const notes = constraints(parameter.schema);
      if (notes.length) type.append(element("span", { class: "note" }, " · " + notes.join(" · ")));
      return element("tr", { class: "parameter", "data-name": parameter.name },
        element("td", { class: "mono" }, parameter.name, parameter.required ? element("span", { class: "required", title: "required" }, " *") : null),
        element("td", {}, parameter.in || ""),
        type,
        element("td", { class: "description" }, parameter.description || ""));
    });
    return element("table", {}, element("thead", {}, element("tr", {}, element("th", {}, "Name"), element("th", {}, "In"), element("th", {}, "Type"), element("th", {}, "Description"))), element("tbody", {}, rows));
  }

  function renderOperation(path, method, operation, shared) {
    const card = element("article", { class: "operation", id: operationAnchor(method, path), "data-method": method.toUpperCase(), "data-path": path },
      element("h3", {}, element("span", { class: "method " + method }, method.toUpperCase()), element("code", {}, path),
        element("span", { class: "summary" }, operation.summary || "")));
    if (operation.description) card.append(element("p", { class: "description" }, operation.description));
    const parameters = [...(shared || []), ...(Array.isArray(operation.parameters) ? operation.parameters : [])];
    if (parameters.length) card.append(element("h4", {}, "Parameters"), renderParameters(parameters));
    const requestBody = resolve(operation.requestBody);
    if (requestBody && typeof requestBody === "object") {
      card.append(element("h4", {}, "Request body" + (requestBody.required ? " (required)" : "")));
      if (requestBody.description) card.append(element("p", { class: "description" }, requestBody.description));
      card.append(renderContent(requestBody.content));
    }
    const responses = Object.entries(operation.responses || {});
    if (responses.length) {
      card.append(element("h4", {}, "Responses"));
      const rows = responses.map(([status, value]) => {
        const response = resolve(value) || {};
        const headers = Object.entries(response.headers || {}).map(([name, header]) =>
          element("div", { class: "note" }, "header ", element("code", {}, name), (resolve(header) || {}).description ? " — " + resolve(header).description : ""));
        return element("tr", { class: "response", "data-status": status },
          element("td", { class: "mono" }, status),
          element("td", {}, element("div", { class: "description" }, response.description || ""), headers, renderContent(response.content)));
      });
      card.append(element("table", { class: "responses" }, element("tbody", {}, rows)));
    }
    return card;
  }

  function render(root) {
    documentRoot = root;
    const info = root.info || {};
    document.title = (info.title || "API") + " · API reference";
    document.getElementById("title").textContent = (info.title || "API") + " — API reference";
    document.getElementById("version").textContent = "Version " + (info.version || "?") + " · OpenAPI " + (root.openapi || "?");
    document.getElementById("overview").textContent = info.description || "";
    const toc = document.getElementById("toc");
    const operations = document.getElementById("operations");
    operations.append(element("h2", {}, "Paths"));
    let count = 0;
    for (const [path, item] of Object.entries(root.paths || {})) {
      if (!item || typeof item !== "object") continue;
      for (const method of methods) {
        const operation = item[method];
        if (!operation || typeof operation !== "object") continue;
        operations.append(renderOperation(path, method, operation, item.parameters));
        toc.append(element("li", {}, element("a", { href: "#" + operationAnchor(method, path) },
          element("span", { class: "method " + method }, method.toUpperCase()), " ", element("code", {}, path))));
        count += 1;
      }
    }
    const schemas = Object.entries((root.components && root.components.schemas) || {});
    if (schemas.length) {
      const section = document.getElementById("schemas");
      section.append(element("h2", {}, "Schemas"));
      for (const [name, schema] of schemas) {
        section.append(element("div", { class: "schema-card", id: schemaAnchor(name), "data-schema": name },
          element("h3", {}, element("code", {}, name)), renderSchema(schema, 0)));
      }
    }
    const status = document.getElementById("status");
    status.textContent = count + " operations, " + schemas.length + " schemas.";
    document.body.dataset.ready = "true";
    if (location.hash) { const target = document.getElementById(location.hash.slice(1)); if (target) target.scrollIntoView(); }
  }

  fetch("openapi.json", { headers: { Accept: "application/json" } })
    .then((response) => { if (!response.ok) throw new Error("HTTP " + response.status); return response.json(); })
    .then(render)
    .catch((error) => {
      const status = document.getElementById("status");
      status.className = "error";
      status.textContent = "Could not load openapi.json: " + error.message;
      document.body.dataset.ready = "error";
    });
})();
</script>
</body>
</html>
"""##
}
