/** The confirmation form every dangerous action uses: typed phrase plus password or TOTP code. */
import type { Pages } from "./respond.ts";
import type { SafeHtml } from "./render.ts";

export interface DangerFormOptions {
  id: string;
  action: string;
  phrase: string;
  button: string;
  description: string;
  csrf: string;
  /** extra hidden fields (e.g. the settings being saved are in the same form instead) */
  hidden?: Array<{ name: string; value: string }>;
}

export function dangerForm(pages: Pages, o: DangerFormOptions): SafeHtml {
  return pages.render("partials/danger-form", { ...o, hidden: o.hidden ?? [] });
}
