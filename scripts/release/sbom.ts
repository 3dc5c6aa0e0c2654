/**
 * CycloneDX 1.5 JSON SBOM of one artifact: every npm package whose files the bundle compiled in
 * (from Bun's build metafile), with the version in its package.json, plus the Bun runtime.
 */
import { existsSync, readFileSync } from "node:fs";
import { createHash, randomUUID } from "node:crypto";
import { join } from "node:path";

export interface Component {
  name: string;
  version: string;
}

/** Package names under node_modules/ of the metafile's inputs. */
export function packagesOfMetafile(metafile: { inputs: Record<string, unknown> }, root: string): Component[] {
  const names = new Set<string>();
  for (const path of Object.keys(metafile.inputs)) {
    const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(path);
    if (m) names.add(m[1]!);
  }
  return [...names].sort().map((name) => {
    const pj = join(root, "node_modules", name, "package.json");
    const version = existsSync(pj) ? (JSON.parse(readFileSync(pj, "utf8")) as { version: string }).version : "unknown";
    return { name, version };
  });
}

function purl(c: Component): string {
  const [scope, n] = c.name.startsWith("@") ? c.name.split("/") : [undefined, c.name];
  return `pkg:npm/${scope ? encodeURIComponent(scope) + "/" : ""}${n}@${c.version}`;
}

export function cyclonedx(artifact: { name: string; file: string; version: string }, packages: Component[], bunVersion: string): object {
  const sha = createHash("sha256").update(readFileSync(artifact.file)).digest("hex");
  return {
    bomFormat: "CycloneDX",
    specVersion: "1.5",
    serialNumber: `urn:uuid:${randomUUID()}`,
    version: 1,
    metadata: {
      timestamp: new Date().toISOString(),
      tools: { components: [{ type: "application", name: "servermind scripts/release.ts" }] },
      component: { type: "application", name: artifact.name, version: artifact.version, hashes: [{ alg: "SHA-256", content: sha }] },
    },
    components: [
      { type: "platform", name: "bun", version: bunVersion, purl: `pkg:npm/bun@${bunVersion}`, description: "the Bun runtime compiled into the executable" },
      ...packages.map((c) => ({ type: "library", name: c.name, version: c.version, purl: purl(c) })),
    ],
  };
}
