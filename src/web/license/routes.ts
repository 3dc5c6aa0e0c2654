/**
 * /settings/license: the installed license (or community mode), seats in use and warnings, for
 * users with system.license.view. Installing goes through `npm run license -- install FILE` on
 * the server: the permission catalog has no system.license.edit (docs/licensing.md).
 */
import type { ConsoleRoute } from "../route.ts";
import type { ConsoleServices } from "../deps.ts";
import type { Pages } from "../respond.ts";

export function licenseRoutes(s: ConsoleServices, pages: Pages): ConsoleRoute[] {
  return [
    {
      method: "GET", path: "/settings/license", access: "system.license.view",
      async handler(req) {
        const st = await s.license.refresh();
        const l = st.license;
        return pages.page(req, "pages/license", "License", {
          licensed: !!l,
          licensee: l?.licensee ?? "", id: l?.id ?? "", issuedAt: l?.issuedAt ?? "", expiresAt: l?.expiresAt ?? "",
          features: l ? l.features.join(", ") || "none listed" : "",
          expired: st.expired, agents: st.agents, seats: st.seats, state: st.state,
          ok: st.state === "valid" || st.state === "community",
          warnings: st.warnings, path: s.license.path,
        });
      },
    },
  ];
}
