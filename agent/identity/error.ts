/** The identity store or its secret is missing, tampered with or from another machine. */
export class IdentityError extends Error {}
