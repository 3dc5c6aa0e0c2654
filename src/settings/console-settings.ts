/**
 * Console policy settings (password, MFA, sessions, audit), stored as one JSON value per key in
 * console_settings so every server node reads the same. Read through a 2-second cache.
 */
import type { Sql } from "postgres";

export interface PasswordPolicy {
  minLength: number;
  requireLower: boolean;
  requireUpper: boolean;
  requireDigit: boolean;
  requireSymbol: boolean;
  /** 0 = passwords never expire */
  expiryDays: number;
  /** refuse the last N passwords */
  history: number;
  /** wrong attempts per (account, source IP) before backoff windows start (src/auth/throttle.ts) */
  lockoutThreshold: number;
  /** the longest backoff window, in minutes; never an account-wide lock */
  lockoutMinutes: number;
  /** lowest zxcvbn score (0-4) a new password needs; 0 turns the estimate off */
  minStrength: number;
}

export interface MfaPolicy {
  /** off: optional; all: every local user; roles: users holding one of `roles` */
  enforce: "off" | "all" | "roles";
  roles: string[];
  /** local users holding an administrative permission (src/auth/users.ts ADMIN_PERMISSIONS) need TOTP */
  requireForAdmins: boolean;
}

export interface SessionPolicy {
  idleMinutes: number;
  absoluteHours: number;
}

export interface AuditPolicy {
  retentionDays: number;
  syslogHost: string;
  syslogPort: number;
}

export interface ConsoleSettings {
  password: PasswordPolicy;
  mfa: MfaPolicy;
  session: SessionPolicy;
  audit: AuditPolicy;
}

export const DEFAULT_SETTINGS: ConsoleSettings = {
  password: {
    minLength: 12, requireLower: true, requireUpper: true, requireDigit: true, requireSymbol: false,
    expiryDays: 0, history: 5, lockoutThreshold: 5, lockoutMinutes: 15, minStrength: 3,
  },
  mfa: { enforce: "off", roles: [], requireForAdmins: true },
  session: { idleMinutes: 30, absoluteHours: 12 },
  audit: { retentionDays: 365, syslogHost: "", syslogPort: 514 },
};

export interface SettingsStore {
  get(): Promise<ConsoleSettings>;
  /** Last value read, for code that cannot wait (syslog forwarding). */
  cached(): ConsoleSettings;
  set<K extends keyof ConsoleSettings>(key: K, value: ConsoleSettings[K]): Promise<void>;
}

export function createSettingsStore(sql: Sql, ttlMs = 2000): SettingsStore {
  let value: ConsoleSettings = structuredClone(DEFAULT_SETTINGS);
  let at = 0;
  const store: SettingsStore = {
    async get() {
      if (Date.now() - at < ttlMs) return value;
      const rows = await sql`select key, value from console_settings`;
      const next = structuredClone(DEFAULT_SETTINGS) as unknown as Record<string, Record<string, unknown>>;
      for (const r of rows) if (r.key in next) next[r.key] = { ...next[r.key], ...(r.value as Record<string, unknown>) };
      value = next as unknown as ConsoleSettings;
      at = Date.now();
      return value;
    },
    cached: () => value,
    async set(key, v) {
      await sql`insert into console_settings (key, value) values (${key}, ${sql.json(v as never)})
        on conflict (key) do update set value = excluded.value, updated_at = now()`;
      at = 0;
    },
  };
  return store;
}
