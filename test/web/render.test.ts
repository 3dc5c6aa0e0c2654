import { afterAll, test, expect } from "bun:test";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { compile, createRenderer, escapeHtml, trustedHtml } from "../../src/web/render.ts";
import { tempDirs } from "../support/temp.ts";

const dirs = tempDirs("views-");
afterAll(() => dirs.removeAll());

function views(files: Record<string, string>) {
  const dir = dirs.make();
  for (const [name, body] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, `${name}.html`), body);
  }
  return createRenderer(dir);
}

test("values are escaped by default, in text and in attributes", () => {
  const v = views({ page: `<p title="{{t}}">{{t}}</p>` });
  const out = v.render("page", { t: `<script>alert("x")</script>' \`&` }).html;
  expect(out).toBe(`<p title="&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; &#96;&amp;">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39; &#96;&amp;</p>`);
});

test("markup passes only through the explicit trustedHtml marker or rendered output", () => {
  const v = views({ page: `<div>{{a}}|{{b}}|{{c}}</div>`, part: `<b>{{x}}</b>` });
  const out = v.render("page", { a: trustedHtml("<i>ok</i>"), b: v.render("part", { x: "<y>" }), c: "<i>no</i>" }).html;
  expect(out).toBe("<div><i>ok</i>|<b>&lt;y&gt;</b>|&lt;i&gt;no&lt;/i&gt;</div>");
  expect(escapeHtml(null)).toBe("");
  expect(escapeHtml(0)).toBe("0");
});

test("if/unless/else, each with outer scope and @index, partials", () => {
  const v = views({
    page: `{{#if show}}Y{{else}}N{{/if}}{{#unless show}}U{{/unless}}[{{#each items}}{{@index}}:{{name}}{{sep}}{{/each}}][{{#each none}}x{{else}}empty{{/each}}]{{> partials/p}}`,
    "partials/p": `<{{sep}}>`,
  });
  expect(v.render("page", { show: true, sep: ";", items: [{ name: "a" }, { name: "<b>" }], none: [] }).html)
    .toBe("Y[0:a;1:&lt;b&gt;;][empty]<;>");
  expect(v.render("page", { show: false, items: [] }).html).toBe("NU[][empty]<>");
});

test("a partial given a path renders with that value as its innermost scope, outer names still in reach", () => {
  const v = views({
    page: `{{> partials/c first}}|{{> partials/c second}}`,
    "partials/c": `{{#if legend}}{{legend}}{{else}}Confirm{{/if}}: {{phrase}} ({{csrf}})`,
  });
  expect(v.render("page", { csrf: "t<", first: { phrase: "save <x>" }, second: { phrase: "flag", legend: "Careful" } }).html)
    .toBe("Confirm: save &lt;x&gt; (t&lt;)|Careful: flag (t&lt;)");
});

test("malformed templates fail at compile time with the template name", () => {
  expect(() => compile("{{> partials/c a b}}", "t4")).toThrow("t4: bad partial");
  expect(() => compile("{{#if x}}open", "t1")).toThrow("t1: {{#if}} is never closed");
  expect(() => compile("{{/each}}", "t2")).toThrow("t2: unexpected {{/each}}");
  expect(() => compile("{{a + b}}", "t3")).toThrow("t3: bad expression");
});
