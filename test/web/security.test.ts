/**
 * The security pages of the console (src/web/security/) and the security routes' partials,
 * served through the guard over a real PostgreSQL: posture page, host security section,
 * acknowledge (CSRF, who), export, auto-remediation confirmation, escaping of hostile strings.
 */
import { HostScope } from "../../src/auth/host-scope.ts";
import { findHost } from "../../src/store/postgres/queries-console.ts";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { consoleHarness, TEST_PASSWORD, type ConsoleHarness } from "../support/console-app.ts";
import { recordScan } from "../../src/security/posture.ts";
import { scoreHost } from "../../src/security/score.ts";

let h: ConsoleHarness;
let web: number;
let db2: number;
const HOSTILE = "<script>alert(1)</script>";

async function agent(hostname: string, tags: string[], fill: number) {
  const [a] = await h.db.sql`insert into agents (hostname, public_key, tags, last_seen, status)
    values (${hostname}, ${Buffer.alloc(32, fill)}, ${tags}, now(), ${h.db.sql.json({ processes: { collector: "ok", monitor: "ok" } })}) returning id`;
  return Number(a!.id);
}

/** The host as the system sees it (the scoring job's scope). */
const host = async (id: number) => (await findHost(h.db.sql, HostScope.system("test"), id))!;

const violationId = async (agentId: number, control: string) =>
  Number((await h.db.sql`select id from cis_violations where agent_id = ${agentId} and control_id = ${control} and resolved_at is null`)[0]!.id);

beforeAll(async () => {
  h = await consoleHarness();
  web = await agent("web-1", ["group:web"], 1);
  db2 = await agent(`db-${HOSTILE}`, ["group:db"], 2);
  const t0 = new Date(Date.now() - 3 * 3_600_000);
  await recordScan(h.db.sql, web, t0, {
    platform: "debian12", os: "debian 12",
    results: [
      { id: "smx.ssh.root-login", status: "fail", severity: 8, category: "ssh", observed: "PermitRootLogin yes" },
      { id: "smx.files.passwd", status: "fail", severity: 6, category: "files", observed: "0666 0:0" },
      { id: "smx.sysctl.net.ipv4.ip_forward", status: "pass", severity: 5, category: "sysctl", observed: "0" },
      { id: `smx.${HOSTILE}`, status: "fail", severity: 3, category: "files", observed: `<img src=x onerror=alert(2)>` },
    ],
  });
  // a later scan: smx.files.passwd now passes, so its violation is resolved by the scan
  await recordScan(h.db.sql, web, new Date(t0.getTime() + 3_600_000), {
    results: [
      { id: "smx.ssh.root-login", status: "fail", severity: 8, category: "ssh", observed: "PermitRootLogin yes" },
      { id: "smx.files.passwd", status: "pass", severity: 6, category: "files", observed: "0644 0:0" },
      { id: `smx.${HOSTILE}`, status: "fail", severity: 3, category: "files", observed: `<img src=x onerror=alert(2)>` },
    ],
  });
  await recordScan(h.db.sql, db2, t0, { results: [{ id: "smx.ssh.root-login", status: "pass", severity: 8, category: "ssh", observed: "no" }] });
  await scoreHost(h.db.sql, await host(web), Date.now() - 86_400_000);
  await scoreHost(h.db.sql, await host(web));
  await scoreHost(h.db.sql, await host(db2));
  const now = Date.now();
  await h.db.sql`insert into security_events (agent_id, batch_id, ts, type, severity, path, data) values
    (${web}, 1, ${new Date(now - 60_000)}, 'fim.modify', 8, ${`/etc/${HOSTILE}`}, ${h.db.sql.json({ changes: ["content"], detectedBy: "realtime",
      before: { type: "file", sha256: "aa".repeat(32), size: 10, mode: "0640", uid: 0, gid: 42 }, after: { type: "file", sha256: "bb".repeat(32), size: 12, mode: "0640", uid: 0, gid: 42 } })}),
    (${web}, 1, ${new Date(now - 120_000)}, 'fim.modify', 2, '/usr/bin/ls', ${h.db.sql.json({ changes: ["content"], detectedBy: "realtime", packageManager: { via: "dpkg-log", package: "coreutils" },
      before: { type: "file", sha256: "cc".repeat(32), size: 1, mode: "0755", uid: 0, gid: 0 }, after: { type: "file", sha256: "dd".repeat(32), size: 2, mode: "0755", uid: 0, gid: 0 } })}),
    (${web}, 1, ${new Date(now - 600_000)}, 'fim.status', 0, null, ${h.db.sql.json({ watches: 412, unwatchedDirs: 0, files: 5123, pending: 0, eventsSuppressed: 7, queueOverflows: 0,
      rescans: 3, lastRescanMs: now - 900_000, rescanRunning: false, paths: ["/etc", "/usr/bin"], ignore: ["/etc/mtab", "**/*.swp"], maxWatches: 8192, ratePerSecond: 50, rateBurst: 500, rescanIntervalMs: 3_600_000 })}),
    (${web}, 1, ${new Date(now - 1_200_000)}, 'fim.status', 0, null, ${h.db.sql.json({ watches: 1, maxWatches: 1, paths: ["/old"] })})`;
  await h.db.sql`insert into security_commands (id, agent_id, action, args, requested_by, issued_at, status, result, snapshot)
    values ('cmd-1', ${web}, 'cis.remediate', ${h.db.sql.json({ controls: ["smx.files.passwd"], dryRun: false })}, 'user:1 alice', ${new Date(now - 7_200_000)}, 'ok', '{"ok":true}', 'snap-20260101-abc')`;
}, 60_000);

afterAll(async () => {
  await h.close();
});

describe("fleet posture page", () => {
  test("renders for compliance.view: nav entry, hosts worst first with breakdown, pass rates, violations; no actions without their permissions", async () => {
    const s = await h.userWith(["compliance.view"]);
    const res = await h.send("/security", { session: s });
    expect(res.status).toBe(200);
    const body = await res.text();
    expect(body).toContain('<a href="/security" class="active" aria-current="page">Security</a>');
    // hosts: web-1 (failing controls) has the lower score, so it comes first, with its breakdown
    const [webScore] = await h.db.sql`select score from security_scores where agent_id = ${web} order by ts desc limit 1`;
    const [dbScore] = await h.db.sql`select score from security_scores where agent_id = ${db2} order by ts desc limit 1`;
    expect(webScore!.score).toBeLessThan(dbScore!.score);
    expect(body.indexOf(`data-host="${web}"`)).toBeLessThan(body.indexOf(`data-host="${db2}"`));
    expect(body).toContain(`score-value">${webScore!.score}</span>`);
    expect(body).toMatch(/<tr data-category="config"><th>config<\/th>/);
    // pass rates per control across the fleet, with catalog titles
    expect(body).toMatch(/<tr data-control="smx.ssh.root-login"><td><code>smx.ssh.root-login<\/code><\/td><td>SSH refuses direct root logins<\/td><td>ssh<\/td><td>8<\/td><td class="gauge warn"><meter[^>]*value="50"><\/meter>50%<\/td><td>1\/2<\/td><\/tr>/);
    // open violations by default: the resolved one is not listed
    const rootLogin = await violationId(web, "smx.ssh.root-login");
    expect(body).toContain(`<tr id="violation-${rootLogin}" data-control="smx.ssh.root-login">`);
    expect(body).not.toContain('data-control="smx.files.passwd"><td><a');
    expect(body).toContain("not acknowledged");
    expect(body).not.toContain("ack-form");
    expect(body).not.toContain("/api/security/posture/export");
    expect(body).not.toContain('id="auto-remediation"');
  });

  test("refused (403) and audited without compliance.view; no nav entry", async () => {
    const s = await h.userWith(["hosts.view"]);
    const res = await h.send("/security", { session: s });
    expect(res.status).toBe(403);
    expect(await res.text()).toContain("compliance.view");
    const [row] = await h.db.sql`select actor_name, target, success, details from audit_log where action = 'access.denied' and actor_name = ${s.username}`;
    expect(row).toMatchObject({ target: "GET /security", success: false, details: { permission: "compliance.view" } });
    const fleet = await (await h.send("/hosts", { session: s })).text();
    expect(fleet).not.toContain('href="/security"');
    const host = await (await h.send(`/hosts/${web}`, { session: s })).text();
    expect(host).not.toContain(`/hosts/${web}/security`);
    expect((await h.send(`/hosts/${web}/security`, { session: s })).status).toBe(403);
  });

  test("hostile control ids, observed values and hostnames are escaped everywhere", async () => {
    const s = await h.userWith(["compliance.view", "compliance.exceptions.edit", "fim.view", "security.events.view", "compliance.remediate"]);
    const pages = [
      await (await h.send("/security?state=all", { session: s })).text(),
      await (await h.send(`/hosts/${web}/security`, { session: s })).text(),
      await (await h.send(`/api/security/posture/violations?open=true`, { session: s, headers: { "hx-request": "true" } })).text(),
    ];
    for (const body of pages) {
      expect(body).not.toContain("<script>");
      expect(body).not.toContain("<img src=x");
    }
    expect(pages[0]).toContain(`<code>smx.&lt;script&gt;alert(1)&lt;/script&gt;</code>`);
    expect(pages[0]).toContain(`db-&lt;script&gt;alert(1)&lt;/script&gt;`);
    expect(pages[0]).toContain(`title="&lt;img src=x onerror=alert(2)&gt;"`);
    expect(pages[1]).toContain(`<code>/etc/&lt;script&gt;alert(1)&lt;/script&gt;</code>`);
    expect(pages[2]).toStartWith('<tbody id="violation-rows">');
    expect(pages[2]).toContain("smx.&lt;script&gt;");
  });

  test("filters: open or all, one host; the htmx filter gets only the violations fragment", async () => {
    const s = await h.userWith(["compliance.view"]);
    const res = await h.send(`/security?state=all&host=${web}`, { session: s, headers: { "hx-request": "true", "hx-target": "security-violations" } });
    const body = await res.text();
    expect(body).toStartWith('<div id="security-violations">');
    expect(body).toContain('<option value="all" selected>');
    expect(body).toContain(`<option value="${web}" selected>web-1</option>`);
    expect(body).toMatch(/data-control="smx.files.passwd">.*<span class="badge ok">resolved<\/span> [\d-]+ [\d:]+ by scan/);
    expect(body).toContain('<span class="badge crit">open</span>');
    const other = await (await h.send(`/security?state=all&host=${db2}`, { session: s, headers: { "hx-request": "true", "hx-target": "security-violations" } })).text();
    expect(other).toContain("No violations match.");
  });
});

describe("acknowledge", () => {
  test("the form carries the CSRF token; acknowledging records who and the note, and is audited", async () => {
    const s = await h.userWith(["compliance.view", "compliance.exceptions.edit"]);
    const page = await (await h.send("/security", { session: s })).text();
    const id = await violationId(web, "smx.ssh.root-login");
    const form = new RegExp(`<form class="inline ack-form" method="post" action="/api/security/posture/violations/${id}/ack" hx-post="/api/security/posture/violations/${id}/ack" hx-target="#violation-${id}" hx-swap="outerHTML"><input type="hidden" name="_csrf" value="${s.csrf}">`);
    expect(page).toMatch(form);
    // a plain form post: the token travels in the _csrf field, not a header
    const res = await h.send(`/api/security/posture/violations/${id}/ack`, { session: s, csrf: null, headers: { "hx-request": "true" }, form: { _csrf: s.csrf, note: `bastion only ${HOSTILE}` } });
    expect(res.status).toBe(200);
    const row = await res.text();
    expect(row).toStartWith(`<tr id="violation-${id}"`);
    expect(row).toContain(`by ${s.username} (${s.userId}): <q>bastion only &lt;script&gt;alert(1)&lt;/script&gt;</q>`);
    expect(row).not.toContain("ack-form");
    const [v] = await h.db.sql`select acknowledged_by, ack_note, acknowledged_at from cis_violations where id = ${id}`;
    expect(v).toMatchObject({ acknowledged_by: `${s.username} (${s.userId})`, ack_note: `bastion only ${HOSTILE}` });
    expect(v!.acknowledged_at).toBeInstanceOf(Date);
    const [a] = await h.db.sql`select actor_name, target, success from audit_log where action = 'cis.violation.acknowledge' order by id desc limit 1`;
    expect(a).toMatchObject({ actor_name: s.username, target: `violation:${id}`, success: true });
    // the page now shows who acknowledged
    expect(await (await h.send("/security", { session: s })).text()).toContain(`by ${s.username} (${s.userId})`);
  });

  test("without a valid CSRF token the acknowledgement is refused, audited and nothing changes", async () => {
    const s = await h.userWith(["compliance.view", "compliance.exceptions.edit"]);
    const id = await violationId(web, `smx.${HOSTILE}`);
    for (const token of [undefined, "x".repeat(s.csrf.length)]) {
      const res = await h.send(`/api/security/posture/violations/${id}/ack`, { session: s, csrf: null, headers: { "hx-request": "true" }, form: token ? { _csrf: token, note: "n" } : { note: "n" } });
      expect(res.status).toBe(403);
      expect(await res.text()).toContain("This form has expired or did not come from this console.");
    }
    const [v] = await h.db.sql`select acknowledged_at from cis_violations where id = ${id}`;
    expect(v!.acknowledged_at).toBeNull();
    const [{ n }] = await h.db.sql`select count(*)::int as n from audit_log where action = 'csrf.rejected' and actor_name = ${s.username}`;
    expect(n).toBe(2);
  });

  test("without compliance.exceptions.edit the acknowledgement is refused", async () => {
    const s = await h.userWith(["compliance.view"]);
    const id = await violationId(web, `smx.${HOSTILE}`);
    const res = await h.send(`/api/security/posture/violations/${id}/ack`, { session: s, form: { note: "n" } });
    expect(res.status).toBe(403);
    expect((await h.db.sql`select acknowledged_at from cis_violations where id = ${id}`)[0]!.acknowledged_at).toBeNull();
  });
});

describe("export", () => {
  test("links for compliance.reports.export; CSV and JSON downloads, audited; refused without the permission", async () => {
    const s = await h.userWith(["compliance.view", "compliance.reports.export"]);
    const page = await (await h.send("/security", { session: s })).text();
    expect(page).toContain('<a class="button" id="export-csv" href="/api/security/posture/export?format=csv" hx-boost="false" download>CSV</a>');
    expect(page).toContain('id="export-json" href="/api/security/posture/export?format=json"');
    const csv = await h.send("/api/security/posture/export?format=csv", { session: s });
    expect(csv.status).toBe(200);
    expect(csv.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(csv.headers.get("content-disposition")).toBe('attachment; filename="compliance-posture.csv"');
    expect(csv.headers.get("content-security-policy")).toContain("default-src 'none'");
    const lines = (await csv.text()).trim().split("\n");
    expect(lines[0]).toBe("id,hostname,agent_id,control_id,severity,observed,first_seen,last_seen,acknowledged_at,acknowledged_by,ack_note,resolved_at,resolved_by");
    expect(lines.some((l) => l.includes('"web-1"') && l.includes('"smx.ssh.root-login"'))).toBe(true);
    const json = (await (await h.send("/api/security/posture/export?format=json", { session: s })).json()) as any;
    expect(json.violations.map((v: any) => v.control_id)).toContain("smx.files.passwd");
    expect(json.controls.find((c: any) => c.control_id === "smx.ssh.root-login")).toMatchObject({ hosts: 2, passed: 1, failed: 1 });
    const [{ n }] = await h.db.sql`select count(*)::int as n from audit_log where action = 'cis.export' and actor_name = ${s.username}`;
    expect(n).toBe(2);
    const viewer = await h.userWith(["compliance.view"]);
    expect((await h.send("/api/security/posture/export?format=csv", { session: viewer })).status).toBe(403);
  });
});

describe("host security section", () => {
  test("the host page lazy-loads it for compliance.view", async () => {
    const s = await h.userWith(["hosts.view", "compliance.view"]);
    const body = await (await h.send(`/hosts/${web}`, { session: s })).text();
    expect(body).toContain(`<div id="host-security" hx-get="/hosts/${web}/security" hx-trigger="load" hx-swap="outerHTML">`);
  });

  test("with every security permission: score card and trend chart, CIS results with rationale, scan, remediation, rollback, FIM events and status, incidents", async () => {
    const s = await h.userWith(["compliance.view", "compliance.scan", "compliance.remediate", "fim.view", "security.events.view"]);
    const res = await h.send(`/hosts/${web}/security`, { session: s, headers: { "hx-request": "true" } });
    expect(res.status).toBe(200);
    const body = await res.text();
    expect(body).toStartWith('<div id="host-security">');
    const [latest] = await h.db.sql`select score from security_scores where agent_id = ${web} order by ts desc limit 1`;
    expect(body).toContain(`<section id="security-score-${web}" class="security-score">`);
    expect(body).toContain(`score-value">${latest!.score}</span>/100`);
    expect(body).toMatch(/<tr data-category="authentication"><th>authentication<\/th>/);
    // the trend is the console's SVG line chart with both stored scores
    expect(body).toContain(`<figure class="chart-box score-trend" id="score-trend-${web}"><svg class="chart"`);
    expect(body).toMatch(/<path class="line s0" d="M[\d.]+,[\d.]+L[\d.]+,[\d.]+"\/>/);
    // CIS results: failed first, title and rationale from the catalog, a checkbox for fixable failures
    expect(body).toContain("<div>SSH refuses direct root logins</div>");
    expect(body).toContain("Direct root logins leave no trail of which person used the account");
    expect(body).toContain('<input type="checkbox" name="controls" value="smx.ssh.root-login" aria-label="Fix smx.ssh.root-login">');
    expect(body).not.toContain('name="controls" value="smx.files.passwd"'); // passes now
    expect(body.indexOf('data-control="smx.ssh.root-login"')).toBeLessThan(body.indexOf('data-control="smx.files.passwd"'));
    expect(body).toContain(`hx-post="/api/security/hosts/${web}/remediate" hx-target="#remediation-output"`);
    expect(body).toContain(`<form method="post" action="/api/security/hosts/${web}/scan"`);
    // rollback of the applied remediation, with the typed confirmation
    expect(body).toContain("<code>snap-20260101-abc</code>");
    expect(body).toContain(`action="/api/security/hosts/${web}/rollback"`);
    expect(body).toContain('<input type="hidden" name="snapshot" value="snap-20260101-abc">');
    expect(body).toContain('<strong class="phrase">rollback web-1</strong>');
    // FIM: events with before/after and the package-manager label; the newest status report
    expect(body).toContain('<span class="badge info">package manager: coreutils (dpkg-log)</span>');
    expect(body).toContain("file · 0640 · 0:42 · 10 B · sha256 aaaaaaaaaaaaaaaa…");
    expect(body).toContain("<dd>412 of at most 8192</dd>");
    expect(body).toContain("<code>/etc/mtab</code> <code>**/*.swp</code>");
    expect(body).toContain("50/s, burst 500; 7 events held back so far");
    expect(body).not.toContain("/old");
    // incidents: the severity-8 change is an incident on the timeline
    expect(body).toContain(`<section id="incidents-${web}" class="incidents"><article class="incident crit">`);
    expect(body).toMatch(/<li data-kind="fim"><time>[\d-]+ [\d:]+<\/time> <b>fim<\/b> modify \/etc\/&lt;script&gt;/);
    expect(body).not.toContain("<b>fim</b> status"); // the periodic status report is no file change
  });

  test("with compliance.view only: read-only (no scan, no remediation, no FIM, no incidents)", async () => {
    const s = await h.userWith(["compliance.view"]);
    const body = await (await h.send(`/hosts/${web}/security`, { session: s, headers: { "hx-request": "true" } })).text();
    expect(body).toContain(`id="security-score-${web}"`);
    expect(body).toContain("smx.ssh.root-login");
    for (const absent of ["Scan now", 'type="checkbox"', "/rollback", "File integrity", "incidents-"]) expect(body).not.toContain(absent);
  });

  test("Scan now issues a signed command and answers with a fragment", async () => {
    const s = await h.userWith(["compliance.view", "compliance.scan"]);
    const res = await h.send(`/api/security/hosts/${web}/scan`, { session: s, headers: { "hx-request": "true" }, form: {} });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('<div class="alert error" role="alert"><p>The scan could not be started: no agent in this test</p></div>\n');
    const [c] = await h.db.sql`select action, status, requested_by from security_commands where agent_id = ${web} and action = 'cis.scan'`;
    expect(c).toMatchObject({ action: "cis.scan", status: "failed", requested_by: `user:${s.userId} ${s.username}` });
  });

  test("a remediation without controls answers with the form-errors fragment, not JSON", async () => {
    const s = await h.userWith(["compliance.view", "compliance.remediate"]);
    const res = await h.send(`/api/security/hosts/${web}/remediate`, { session: s, headers: { "hx-request": "true" }, form: { dryRun: "true" } });
    expect(res.status).toBe(400);
    expect(await res.text()).toBe('<div class="alert error" role="alert"><p>controls must be a list of 1-200 control ids</p></div>\n');
  });
});

describe("auto-remediation setting", () => {
  test("visible with compliance.policies.view; editing takes a typed confirmation and re-authentication", async () => {
    const viewer = await h.userWith(["compliance.view", "compliance.policies.view"]);
    const seen = await (await h.send("/security", { session: viewer })).text();
    expect(seen).toContain('<section id="auto-remediation" class="card">');
    expect(seen).toContain("Automatic remediation is off for every control.");
    expect(seen).not.toContain('id="auto-remediation-form"');

    const s = await h.userWith(["compliance.view", "compliance.policies.edit"]);
    const page = await (await h.send("/security", { session: s })).text();
    expect(page).toContain('id="auto-remediation-form"');
    expect(page).toContain('<option value="smx.files.passwd">');
    expect(page).not.toContain('<option value="smx.packages.no-telnetd">'); // manual fix: not offered
    const bad = await h.send("/security/auto-remediation/confirm?control=nope&hostGroup=bad%20group&enabled=true", { session: s, headers: { "hx-request": "true" } });
    expect(bad.status).toBe(422);
    expect(await bad.text()).toContain("is not a known control");
    const confirm = await (await h.send("/security/auto-remediation/confirm?control=smx.files.passwd&hostGroup=group%3Aweb&enabled=true", { session: s, headers: { "hx-request": "true" } })).text();
    expect(confirm).toContain('<input type="hidden" name="control" value="smx.files.passwd"><input type="hidden" name="hostGroup" value="group:web"><input type="hidden" name="enabled" value="true">');
    expect(confirm).toContain('<strong class="phrase">auto-remediate smx.files.passwd</strong>');

    const form = { control: "smx.files.passwd", hostGroup: "group:web", enabled: "true" };
    const wrong = await h.send("/api/security/auto-remediation", { session: s, headers: { "hx-request": "true" }, form: { ...form, confirm: "yes" } });
    expect(wrong.status).toBe(403);
    expect(await wrong.text()).toContain("Type auto-remediate smx.files.passwd exactly");
    await h.db.sql`update console_sessions set reauth_at = null where id = ${s.sessionId}`; // signed in long ago
    const noAuth = await h.send("/api/security/auto-remediation", { session: s, headers: { "hx-request": "true" }, form: { ...form, confirm: "auto-remediate smx.files.passwd" } });
    expect(await noAuth.text()).toContain("needs you to confirm your identity");
    expect(await h.db.sql`select 1 from cis_auto_remediation`).toHaveLength(0);

    const ok = await h.send("/api/security/auto-remediation", { session: s, headers: { "hx-request": "true" }, form: { ...form, confirm: "auto-remediate smx.files.passwd", reauth: TEST_PASSWORD } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("hx-retarget")).toBe("#auto-remediation");
    const table = await ok.text();
    expect(table).toStartWith('<section id="auto-remediation" class="card">');
    expect(table).toMatch(/<tr data-control="smx.files.passwd" data-group="group:web">.*<span class="badge warn">on<\/span><\/td><td>[^<]+<\/td>/);
    expect(table).toContain("/security/auto-remediation/confirm?control=smx.files.passwd&amp;hostGroup=group%3Aweb&amp;enabled=false");
    const [row] = await h.db.sql`select enabled, set_by from cis_auto_remediation where control_id = 'smx.files.passwd' and host_group = 'group:web'`;
    expect(row).toEqual({ enabled: true, set_by: `${s.username} (${s.userId})` });
  });
});

test("the periodic fim.status report counts neither against the integrity score nor as a file change", async () => {
  const s = await scoreHost(h.db.sql, await host(web));
  // of the three FIM events only the unlabelled change of /etc/<script>… counts (severity 8: 15 points)
  expect(s.categories.integrity).toMatchObject({ score: 85, detail: "1 unexplained file changes in 7 days" });
});
