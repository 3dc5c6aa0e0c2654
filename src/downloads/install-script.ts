/**
 * The POSIX sh installer served at /install.sh. It downloads SHA256SUMS and the binary for this
 * machine, checks the binary's SHA-256 before installing anything, creates the service users,
 * installs the binary (and a systemd unit when systemd runs), and enrolls when given a token.
 *
 * When the server knows its certificate, the script pins it: every curl call uses
 * --pinnedpubkey (the SHA-256 of the certificate's public key), and enrollment gets the
 * certificate fingerprint. The one-liner pins install.sh itself the same way:
 *   curl -fsS -k --pinnedpubkey sha256//PIN https://HOST:PORT/install.sh | sh -s -- --token TOKEN
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

export function renderInstallScript(o: InstallScriptOptions): string {
  return `#!/bin/sh
# ServerMind agent installer. Usage:
#   curl -fsS -k --pinnedpubkey ${o.pubkeyPin || "sha256//PIN"} ${o.serverUrl}/install.sh | sh -s -- --token TOKEN
# Environment: PREFIX (default /usr/local/bin), SERVERMIND_NO_SERVICE=1 to skip users and service.
set -eu

SERVER=${q(o.serverUrl)}
PIN=${q(o.pubkeyPin)}
FINGERPRINT=${q(o.fingerprint)}
PREFIX="\${PREFIX:-/usr/local/bin}"
TOKEN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --token) TOKEN="$2"; shift 2 ;;
    --server) SERVER="$2"; shift 2 ;;
    *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

fail() { echo "install.sh: $*" >&2; exit 1; }

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
  if [ -n "$TOKEN" ]; then
    if [ -n "$FINGERPRINT" ]; then "$PREFIX/servermind-agent" enroll --server "$SERVER" --token "$TOKEN" --fingerprint "$FINGERPRINT"
    else "$PREFIX/servermind-agent" enroll --server "$SERVER" --token "$TOKEN"; fi
  fi
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
