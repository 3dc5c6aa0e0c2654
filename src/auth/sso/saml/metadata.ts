/**
 * IdP metadata import: entity ID, SingleSignOnService (HTTP-Redirect), SingleLogoutService and
 * signing certificates from an EntityDescriptor. Metadata is configuration an administrator
 * supplies (or fetches from a trusted URL); its own signature is not checked here.
 */
import { DOMParser, type Element } from "@xmldom/xmldom";
import type { SamlSettings } from "./settings.ts";

const MD = "urn:oasis:names:tc:SAML:2.0:metadata";
const DS = "http://www.w3.org/2000/09/xmldsig#";
const REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";

export type IdpMetadata = Pick<SamlSettings, "idpEntityId" | "idpSsoUrl" | "idpCerts" | "idpSloUrl">;

function children(el: Element, ns: string, name: string): Element[] {
  return Array.from(el.getElementsByTagNameNS(ns, name) as unknown as Iterable<Element>);
}

export function importIdpMetadata(xml: string): IdpMetadata {
  if (xml.length > 1_000_000) throw new Error(`IdP metadata is ${xml.length} bytes; at most 1 MB is accepted`);
  if (/<!DOCTYPE/i.test(xml)) throw new Error("IdP metadata with a DOCTYPE is refused");
  const doc = new DOMParser().parseFromString(xml, "text/xml");
  const root = doc.documentElement;
  if (!root) throw new Error("IdP metadata is not XML");
  const entities = root.localName === "EntityDescriptor" ? [root as unknown as Element] : children(root as unknown as Element, MD, "EntityDescriptor");
  const entity = entities.find((e) => children(e, MD, "IDPSSODescriptor").length > 0);
  if (!entity) throw new Error("IdP metadata has no EntityDescriptor with an IDPSSODescriptor");
  const idp = children(entity, MD, "IDPSSODescriptor")[0]!;
  const sso = children(idp, MD, "SingleSignOnService").find((s) => s.getAttribute("Binding") === REDIRECT);
  if (!sso) throw new Error("IdP metadata offers no SingleSignOnService with the HTTP-Redirect binding");
  const slo = children(idp, MD, "SingleLogoutService").find((s) => s.getAttribute("Binding") === REDIRECT);
  const certs = children(idp, MD, "KeyDescriptor")
    .filter((k) => !k.getAttribute("use") || k.getAttribute("use") === "signing")
    .flatMap((k) => children(k, DS, "X509Certificate"))
    .map((c) => (c.textContent ?? "").replace(/\s+/g, ""))
    .filter(Boolean);
  if (!certs.length) throw new Error("IdP metadata has no signing certificate");
  const entityId = entity.getAttribute("entityID");
  if (!entityId) throw new Error("IdP metadata has no entityID");
  return { idpEntityId: entityId, idpSsoUrl: sso.getAttribute("Location")!, idpSloUrl: slo?.getAttribute("Location") ?? undefined, idpCerts: [...new Set(certs)] };
}
