#!/usr/bin/env bash
# Installs the desktop .deb on this Debian machine (apt resolves its Depends), starts the
# installed app under Xvfb with a private keyring and a fresh data directory, checks that its
# window opens and that it keeps running, then removes the package again. Needs root.
#   packaging/deb/check-desktop.sh target/release/bundle/deb/Mailroom_<version>_<arch>.deb
set -euo pipefail
deb=$(readlink -f "$1")
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$deb" >/dev/null
trap 'DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq mailroom >/dev/null' EXIT
test -x /usr/bin/mailroom-app
test -f /usr/share/applications/Mailroom.desktop
data=$(mktemp -d)
xvfb-run -a -s "-screen 0 1280x800x24" dbus-run-session -- bash -c '
  printf mailroom | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1
  MAILROOM_DATA_DIR="$1" /usr/bin/mailroom-app >"$1/app.log" 2>&1 &
  app=$!
  for _ in $(seq 1 30); do
    if xdotool search --name "^Mailroom" >/dev/null 2>&1; then break; fi
    sleep 1
  done
  xdotool search --name "^Mailroom" >/dev/null || { echo "no Mailroom window"; cat "$1/app.log"; exit 1; }
  sleep 5
  kill -0 "$app" || { echo "the app exited"; cat "$1/app.log"; exit 1; }
  kill "$app"; wait "$app" 2>/dev/null || true
  echo "the installed app opened its window and kept running"
' _ "$data"
rm -rf "$data"
