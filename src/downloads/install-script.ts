/**
 * The POSIX sh installer served at /install.sh. It downloads SHA256SUMS and the binary for this
 * machine, checks the binary's SHA-256 before installing anything, creates the service users,
 * installs the binary (and a systemd unit when systemd runs), and enrolls when given a token.
 *
 * When the server knows its certificate, the script pins it: every curl call uses
 * --pinnedpubkey (the SHA-256 of the certificate's public key), and enrollment gets the
 * certificate fingerprint. The one-liner (installCommand) pins install.sh itself the same way.
 * `-k` there only skips the CA and name checks a self-signed certificate cannot pass; curl
 * still refuses (exit 90) any server whose public key is not the pinned one, before sending
 * anything. The script is read into a variable and run only when curl succeeded, so a failed or
 * refused download fails the command with curl's exit code (`curl | sh` would run an empty
 * script and exit 0).
 */
export interface InstallScriptOptions {
  /** https://host:port the agent talks to and downloads from. */
  serverUrl: string;
  /** "sha256//base64" public-key pin for curl, or empty when unknown. */
  pubkeyPin: string;
  /** SHA-256 of the server certificate (hex), passed to `enroll --fingerprint`, or empty. */
  fingerprint: string;
}

const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/**
 * The command the console shows, with the pin, the fingerprint and the configured public URL:
 *   s=$(curl -fsS -k --pinnedpubkey 'sha256//PIN' https://HOST:PORT/install.sh) && sh -c "$s" install.sh --token T --fingerprint F
 * POSIX sh, bash and zsh: an assignment's status is its command substitution's.
 */
export function installCommand(o: { serverUrl: string; pubkeyPin: string; fingerprint: string; token: string }): string {
  const curl = o.pubkeyPin ? `curl -fsS -k --pinnedpubkey ${q(o.pubkeyPin)}` : "curl -fsS";
  const fp = o.fingerprint ? ` --fingerprint ${o.fingerprint}` : "";
  return `s=$(${curl} ${o.serverUrl}/install.sh) && sh -c "$s" install.sh --token ${o.token}${fp}`;
}

export function renderInstallScript(o: InstallScriptOptions): string {
  return `#!/bin/sh
# ServerMind agent installer. Usage (as root):
#   ${installCommand({ serverUrl: o.serverUrl, pubkeyPin: o.pubkeyPin, fingerprint: o.fingerprint || "SHA256", token: "TOKEN" })}
# Arguments: --token TOKEN (enroll), --fingerprint SHA256 (must be this server's certificate),
#   --server URL (another address of this server).
# Environment: PREFIX (default /usr/local/bin), SERVERMIND_NO_SERVICE=1 to skip users and service
#   (the agent's own variables, e.g. SERVERMIND_AGENT_DIR, reach its enroll step).
set -eu

SERVER=${q(o.serverUrl)}
PIN=${q(o.pubkeyPin)}
FINGERPRINT=${q(o.fingerprint)}
PREFIX="\${PREFIX:-/usr/local/bin}"
TOKEN=""
GIVEN_FP=""
while [ $# -gt 0 ]; do
  case "$1" in
    --token) [ $# -ge 2 ] || { echo "install.sh: --token needs a value" >&2; exit 2; }; TOKEN="$2"; shift 2 ;;
    --fingerprint) [ $# -ge 2 ] || { echo "install.sh: --fingerprint needs a value" >&2; exit 2; }; GIVEN_FP="$2"; shift 2 ;;
    --server) [ $# -ge 2 ] || { echo "install.sh: --server needs a value" >&2; exit 2; }; SERVER="$2"; shift 2 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

fail() { echo "install.sh: $*" >&2; exit 1; }

# a fingerprint given on the command line must be this server's (hex, any case, colons allowed)
if [ -n "$GIVEN_FP" ]; then
  GIVEN_FP=$(printf '%s' "$GIVEN_FP" | tr -d ':' | tr 'A-F' 'a-f')
  if [ -z "$FINGERPRINT" ]; then FINGERPRINT="$GIVEN_FP"
  elif [ "$GIVEN_FP" != "$FINGERPRINT" ]; then fail "--fingerprint $GIVEN_FP is not the certificate of $SERVER ($FINGERPRINT); nothing was installed"; fi
fi

command -v curl >/dev/null 2>&1 || fail "curl is required (it pins the server's key; wget cannot)"
if [ -n "$PIN" ]; then
  fetch() { curl -fsS -k --pinnedpubkey "$PIN" -o "$2" "$SERVER$1"; }
else
  fetch() { curl -fsS -o "$2" "$SERVER$1"; }
fi

os=$(uname -s)
arch=$(uname -m)
case "$os" in
  Linux) os=linux ;;
  Darwin) os=darwin ;;
  *) fail "unsupported OS $os" ;;
esac
case "$arch" in
  x86_64|amd64) arch=x64 ;;
  aarch64|arm64) arch=arm64 ;;
  *) fail "unsupported CPU $arch" ;;
esac
target="$os-$arch"
if [ "$os" = linux ] && [ "$arch" = x64 ]; then
  if ls /lib/ld-musl-* >/dev/null 2>&1 || (ldd --version 2>&1 | grep -qi musl); then target="linux-x64-musl"; fi
fi
case "$target" in
  *-musl) command -v apk >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && apk add --no-cache libstdc++ libgcc >/dev/null 2>&1 || true ;;
esac

if command -v sha256sum >/dev/null 2>&1; then sha() { sha256sum "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then sha() { shasum -a 256 "$1" | cut -d' ' -f1; }
else fail "sha256sum or shasum is required to verify the download"; fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
fetch /api/v1/agent/SHA256SUMS "$tmp/SHA256SUMS" || fail "cannot download SHA256SUMS from $SERVER"
fetch "/api/v1/agent/download/$target" "$tmp/agent" || fail "cannot download the $target binary from $SERVER"
want=$(awk -v f="servermind-agent-$target" '$2 == f { print $1 }' "$tmp/SHA256SUMS")
[ -n "$want" ] || fail "SHA256SUMS lists no binary for $target"
got=$(sha "$tmp/agent")
[ "$got" = "$want" ] || fail "checksum mismatch for $target: got $got, expected $want; nothing was installed"
echo "install.sh: $target binary verified (sha256 $got)"

mkdir -p "$PREFIX"
chmod 0755 "$tmp/agent"
mv "$tmp/agent" "$PREFIX/servermind-agent"

if [ "\${SERVERMIND_NO_SERVICE:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || fail "run as root to create the service users and the service (or set SERVERMIND_NO_SERVICE=1)"
  if [ "$os" = linux ]; then
    for u in servermind-platform servermind-collector servermind-monitor; do
      id "$u" >/dev/null 2>&1 || useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$u"
    done
  fi
fi
if [ -n "$TOKEN" ]; then
  # the token reaches the agent through its environment, not its argv (ps)
  if [ -n "$FINGERPRINT" ]; then SERVERMIND_AGENT_TOKEN="$TOKEN" "$PREFIX/servermind-agent" enroll --server "$SERVER" --fingerprint "$FINGERPRINT"
  else SERVERMIND_AGENT_TOKEN="$TOKEN" "$PREFIX/servermind-agent" enroll --server "$SERVER"; fi
fi
if [ "\${SERVERMIND_NO_SERVICE:-}" != 1 ]; then
  if [ -d /run/systemd/system ]; then
    cat > /etc/systemd/system/servermind-agent.service <<UNIT
[Unit]
Description=ServerMind agent
After=network-online.target
Wants=network-online.target

[Service]
ExecStart=$PREFIX/servermind-agent run
Restart=always
RestartSec=5
KillMode=mixed
TimeoutStopSec=15

[Install]
WantedBy=multi-user.target
UNIT
    systemctl daemon-reload
    systemctl enable --now servermind-agent.service
    echo "install.sh: servermind-agent.service started"
  else
    echo "install.sh: no systemd; start the agent with: $PREFIX/servermind-agent run"
  fi
fi
echo "install.sh: installed $PREFIX/servermind-agent"
`;
}
