// Building the page from data. Everything shown comes from the API (plugin
// names, event errors, buyer ids), so text is only ever set as text, never
// parsed as markup.

/** `h("td", {class: "num"}, "42")`: an element with attributes and children.
 * An attribute whose value is `false`, `null` or `undefined` is left out;
 * `on*` attributes take a function and become event listeners. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (value === true) {
      element.setAttribute(name, "");
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

/** A table with a caption, column headers and rows; the first cell of each
 * row is its header (`<th scope="row">`) unless `rowHeader` is false. */
export function table(caption, columns, rows, { rowHeader = true, className } = {}) {
  const body = rows.map((cells) => row(cells, rowHeader));
  // A column of numbers is right-aligned, its header too.
  const numeric = columns.map((_, i) => body.length > 0 && body.every((tr) =>
    tr.classList.contains("detail") || tr.cells[i]?.classList.contains("num")));
  return h("table", { class: className },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, columns.map((c, i) => h("th", { scope: "col", class: numeric[i] && "num" }, c)))),
    h("tbody", {}, body));
}

function row(cells, rowHeader) {
  if (cells instanceof HTMLTableRowElement) return cells;
  return h("tr", {}, cells.map((cell, i) => {
    if (cell instanceof HTMLTableCellElement) return cell;
    return rowHeader && i === 0 ? h("th", { scope: "row" }, cell) : h("td", {}, cell);
  }));
}

/** An empty-state line, in place of a table with no rows. */
export function none(text) {
  return h("p", { class: "empty" }, text);
}

/** Text a screen reader reads that the page does not show. */
export function hidden(text) {
  return h("span", { class: "visually-hidden" }, text);
}

/** The time of an RFC 3339 stamp as it came, in a `<time>` element. */
export function time(stamp) {
  if (!stamp) return "—";
  return h("time", { datetime: stamp }, stamp.replace("T", " "));
}

/** The first 12 hex digits of a hash, the whole one in its title. */
export function short(hash) {
  if (!hash) return "—";
  return h("code", { title: hash }, hash.slice(0, 12));
}

/** An amount in minor units as the currency writes it (2500 EUR → €25.00). */
export function money(minor, currency) {
  if (minor === null || minor === undefined) return "—";
  try {
    const format = new Intl.NumberFormat(undefined, { style: "currency", currency });
    const digits = format.resolvedOptions().maximumFractionDigits;
    return format.format(minor / 10 ** digits);
  } catch {
    return `${minor} ${currency ?? ""}`.trim();
  }
}

/** A right-aligned cell for a number; `—` when absent. */
export function num(value) {
  return h("td", { class: "num" }, value === null || value === undefined ? "—" : String(value));
}
