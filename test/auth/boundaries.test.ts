import { test, expect } from "bun:test";
import {
  canGrant, combineHoldings, coversGrants, describeExcess, excessOf, isEmptyExcess, mergeExcess, roleHolding, scopeCovers,
  type Holding,
} from "../../src/auth/boundaries.ts";
import { BUILTIN_ROLES } from "../../src/auth/permissions.ts";

const h = (permissions: string[], scopeTags: string[] | null): Holding => ({ permissions: new Set(permissions), scopeTags });
const builtin = (name: string) => roleHolding({ permissions: BUILTIN_ROLES.find((r) => r.name === name)!.permissions, scope_tags: [] });

test("scope: unscoped covers everything, is covered only by unscoped; tag lists cover their subsets exactly", () => {
  expect(scopeCovers(null, null)).toBe(true);
  expect(scopeCovers(null, ["a"])).toBe(true);
  expect(scopeCovers(["a", "b"], null)).toBe(false); // an unscoped role is wider than any scoped one
  expect(scopeCovers(["a", "b"], ["a"])).toBe(true);
  expect(scopeCovers(["a", "b"], ["a", "b"])).toBe(true);
  expect(scopeCovers(["a"], ["a", "b"])).toBe(false);
  expect(scopeCovers(["a"], ["A"])).toBe(false); // tags compare exactly, as the host filter does
  expect(scopeCovers(["a"], [])).toBe(true); // no scope at all (a user without roles)
  expect(scopeCovers([], ["a"])).toBe(false);
});

test("covers: permissions a subset and scope no wider", () => {
  const admin = builtin("admin");
  const viewer = builtin("viewer");
  expect(coversGrants(admin, viewer)).toBe(true);
  expect(coversGrants(viewer, admin)).toBe(false);
  expect(coversGrants(admin, admin)).toBe(true);
  const helpdesk = h(["users.view", "users.password.reset", "hosts.view"], null);
  expect(coversGrants(helpdesk, h(["hosts.view"], null))).toBe(true);
  expect(coversGrants(helpdesk, h(["hosts.view", "hosts.edit"], null))).toBe(false);
  // same permissions, wider scope: not covered
  expect(coversGrants(h(["hosts.view"], ["a", "b"]), h(["hosts.view"], null))).toBe(false);
  expect(coversGrants(h(["hosts.view"], ["a", "b"]), h(["hosts.view"], ["b"]))).toBe(true);
  expect(coversGrants(h(["hosts.view"], ["a"]), h(["hosts.view"], ["a", "c"]))).toBe(false);
  // a user with no roles holds nothing and is covered by anyone, even a scoped no-permission actor
  expect(coversGrants(h([], ["x"]), combineHoldings([]))).toBe(true);
  // arrays and sets both work as permission lists
  expect(coversGrants({ permissions: ["a.b", "c.d"], scopeTags: null }, { permissions: new Set(["c.d"]), scopeTags: ["t"] })).toBe(true);
});

test("excess names exactly what the target holds beyond the actor", () => {
  const e = excessOf(h(["hosts.view", "users.edit"], ["a"]), h(["users.delete", "hosts.view", "roles.edit"], ["a", "c", "b"]));
  expect(e).toEqual({ permissions: ["roles.edit", "users.delete"], scope: ["b", "c"] });
  expect(isEmptyExcess(e)).toBe(false);
  expect(describeExcess(e)).toBe("the permissions roles.edit, users.delete and hosts tagged b, c (outside your host scope)");
  const wide = excessOf(h(["hosts.view"], ["a"]), h(["hosts.view"], null));
  expect(wide).toEqual({ permissions: [], scope: "all hosts" });
  expect(describeExcess(wide)).toBe("access to all hosts (your roles are limited to tagged hosts)");
  expect(isEmptyExcess(excessOf(h(["x.y"], null), h(["x.y"], ["q"])))).toBe(true);
  const many = excessOf(h([], null), builtin("admin"));
  expect(describeExcess(many)).toMatch(/^the permissions [a-z._]+(, [a-z._]+){7} and \d+ more$/);
  expect(mergeExcess([{ permissions: ["b"], scope: ["t"] }, { permissions: ["a", "b"], scope: "all hosts" }])).toEqual({ permissions: ["a", "b"], scope: "all hosts" });
  expect(mergeExcess([{ permissions: [], scope: ["u"] }, { permissions: [], scope: ["t", "u"] }])).toEqual({ permissions: [], scope: ["t", "u"] });
});

test("canGrant: a role within the actor's permissions and scope; unscoped needs an unscoped actor", () => {
  const scopedEditor = h(["users.edit", "roles.edit", "hosts.view"], ["a", "b"]);
  expect(canGrant(scopedEditor, ["hosts.view"], ["a"])).toBe(true);
  expect(canGrant(scopedEditor, ["hosts.view"], ["a", "b"])).toBe(true);
  expect(canGrant(scopedEditor, ["hosts.view"], null)).toBe(false); // clearing the scope
  expect(canGrant(scopedEditor, ["hosts.view"], ["c"])).toBe(false);
  expect(canGrant(scopedEditor, ["hosts.edit"], ["a"])).toBe(false);
  expect(canGrant(scopedEditor, [], ["a"])).toBe(true);
  // an empty-permission unscoped role still widens: combined with the holder's other roles it
  // would apply their permissions to every host
  expect(canGrant(scopedEditor, [], null)).toBe(false);
});

test("roleHolding reads the stored form (empty scope_tags = all hosts); combineHoldings unions as userGrants does", () => {
  expect(roleHolding({ permissions: ["a.b"], scope_tags: [] }).scopeTags).toBeNull();
  expect(roleHolding({ permissions: ["a.b"], scope_tags: ["x"] }).scopeTags).toEqual(["x"]);
  const c = combineHoldings([h(["a.b"], ["x"]), h(["c.d"], ["y", "x"])]);
  expect([...c.permissions].sort()).toEqual(["a.b", "c.d"]);
  expect(c.scopeTags).toEqual(["x", "y"]);
  expect(combineHoldings([h(["a.b"], ["x"]), h([], null)]).scopeTags).toBeNull();
  expect(combineHoldings([]).scopeTags).toEqual([]);
  // the union of roles each within the actor is within the actor
  const actor = h(["a.b", "c.d"], ["x", "y"]);
  expect(coversGrants(actor, c)).toBe(true);
});

test("per permission: a holding with roleScopes covers a target only where the roles granting each permission reach", () => {
  // an unscoped helpdesk role next to an operator role scoped to a: the union scope is every host,
  // but logs.view reaches only a
  const actor: Holding = {
    permissions: new Set(["users.edit", "logs.view"]), scopeTags: null,
    roleScopes: [{ permissions: ["users.edit"], tags: [] }, { permissions: ["logs.view"], tags: ["a"] }],
  };
  expect(excessOf(actor, h(["logs.view"], null))).toEqual({ permissions: [], scope: "all hosts" });
  expect(excessOf(actor, h(["logs.view"], ["a", "b"]))).toEqual({ permissions: [], scope: ["b"] });
  expect(coversGrants(actor, h(["logs.view"], ["a"]))).toBe(true);
  expect(coversGrants(actor, h(["users.edit"], null))).toBe(true);
  // a user holding the same two roles is covered; one whose logs.view reaches b is not
  const same = combineHoldings([h(["users.edit"], null), h(["logs.view"], ["a"])]);
  expect(coversGrants(actor, same)).toBe(true);
  expect(coversGrants(actor, combineHoldings([h(["users.edit"], null), h(["logs.view"], ["b"])]))).toBe(false);
});
