#!/usr/bin/env bash
# Builds the service's Debian package: the `mailroom` binary, its systemd unit, a `mailroom`
# system user, /etc/mailroom with an environment file and a secrets key made at install.
#   packaging/deb/service.sh BINARY OUT_DIR      (./dev package runs it)
# Depends are read from the binary's shared libraries (ldd + dpkg -S), as dpkg-shlibdeps would.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$1
out=$2
version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
arch=$(dpkg --print-architecture)
root=$(mktemp -d)
chmod 0755 "$root"
trap 'rm -rf "$root"' EXIT

install -D -m 0755 "$bin" "$root/usr/bin/mailroom"
strip --strip-unneeded "$root/usr/bin/mailroom" 2>/dev/null || true
install -D -m 0644 packaging/systemd/mailroom.service "$root/lib/systemd/system/mailroom.service"
install -D -m 0640 packaging/deb/mailroom.env "$root/etc/mailroom/mailroom.env"
install -D -m 0644 README.md "$root/usr/share/doc/mailroom-service/README.md"
install -d "$root/DEBIAN"
for script in postinst prerm postrm; do
  install -m 0755 "packaging/deb/$script" "$root/DEBIAN/$script"
done
echo /etc/mailroom/mailroom.env > "$root/DEBIAN/conffiles"

depends=$(
  ldd "$bin" | awk '/=>/ {print $3}' | while read -r lib; do
    dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true
  done | cut -d: -f1 | sort -u | paste -sd, | sed 's/,/, /g'
)
size=$(du -sk "$root/usr" "$root/etc" "$root/lib" | awk '{s+=$1} END {print s}')
cat > "$root/DEBIAN/control" <<CONTROL
Package: mailroom-service
Version: $version
Architecture: $arch
Maintainer: Mailroom <support@mailroom.invalid>
Installed-Size: $size
Depends: ${depends}, passwd
Section: mail
Priority: optional
Description: Mailroom as a service: Microsoft 365 mail into HaloPSA tickets
 Runs Mailroom's engine without a desktop session (mailroom serve): connected
 mailboxes are synced, their mail becomes HaloPSA tickets and replies, with
 health and Prometheus metrics endpoints and JSON logs. Secrets are sealed in
 the database with the key in /etc/mailroom/secrets.key, made at install.
CONTROL

mkdir -p "$out"
deb="$out/mailroom-service_${version}_${arch}.deb"
# MAILROOM_DEB_COMPRESSION=gzip|none packs faster (the tests); xz, dpkg's default, is smaller.
dpkg-deb --build --root-owner-group -Z"${MAILROOM_DEB_COMPRESSION:-xz}" "$root" "$deb" >/dev/null
echo "$deb"
