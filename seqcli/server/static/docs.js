// The API's documentation, written from the server's own /openapi.json: no CDN, no library.
"use strict";

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function fields(schema, root) {
  const resolved = schema.$ref ? root.components.schemas[schema.$ref.split("/").pop()] : schema;
  const table = el("table");
  const head = el("tr");
  for (const name of ["field", "type", "required", "default"]) head.append(el("th", name));
  table.append(head);
  const required = new Set(resolved.required || []);
  for (const [name, field] of Object.entries(resolved.properties || {})) {
    const kinds = field.anyOf ? field.anyOf.map((k) => k.type + (k.items ? ` of ${k.items.type}` : "")).join(" or ")
      : field.type + (field.items ? ` of ${field.items.type}` : "");
    const limits = ["minimum", "exclusiveMinimum", "maximum"].filter((k) => k in field).map((k) => `${k} ${field[k]}`);
    const row = el("tr");
    row.append(el("td", name), el("td", [kinds, ...limits].join(", ")), el("td", required.has(name) ? "yes" : ""),
      el("td", "default" in field ? JSON.stringify(field.default) : ""));
    table.append(row);
  }
  return table;
}

fetch("/openapi.json").then((response) => response.json()).then((spec) => {
  const main = document.getElementById("api");
  main.replaceChildren(el("p", `${spec.info.title} ${spec.info.version}. Every endpoint answers JSON; a refused request gets 413 or 422 with {"detail": "field: why"}. The shapes of a search trace and of a scoring are described in docs/explorer.md of the repository.`));
  for (const [path, methods] of Object.entries(spec.paths)) {
    for (const [method, operation] of Object.entries(methods)) {
      const section = el("section");
      section.append(el("h2", `${method.toUpperCase()} ${path}`));
      section.append(el("p", operation.description || operation.summary || ""));
      const body = operation.requestBody && operation.requestBody.content["application/json"];
      if (body) section.append(fields(body.schema, spec));
      main.append(section);
    }
  }
}).catch((error) => { document.getElementById("api").textContent = `Could not read /openapi.json: ${error}`; });
