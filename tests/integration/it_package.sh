#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Debian package: deploy/package.sh builds it with cpack; it declares its
# dependencies from the shared libraries; installed with dpkg -i it gives the
# binaries, the example configs under /etc/lineagent (conffiles), the units
# (systemd-analyze verify passes on the installed files), the lineagent and
# provisiond users and /var/lib/lineagent mode 0700; `lineagent --version`
# and `check-config` on the installed example work, as the lineagent user
# too; dpkg --purge removes it all.
source "$(dirname "$0")/lib.sh"
for tool in dpkg dpkg-deb cpack systemd-analyze; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (deploy/deps.sh test installs it)"
done
[ "$(id -u)" -eq 0 ] || fail "this test must run as root (it installs the package with dpkg -i)"
if dpkg-query -W -f='${Status}' lineagent 2>/dev/null | grep -q "install ok installed"; then
  fail "a lineagent package is already installed on this machine; this test would replace it"
fi

deb=$("$SRC/deploy/package.sh" "$SRC/build/package" 2>"$T/package.log") || { tail -20 "$T/package.log"; fail "package.sh"; }
[ -f "$deb" ] || fail "package.sh printed no .deb ($deb)"
version=$(sed -n 's/^project(lineagent VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "package version $(dpkg-deb -f "$deb" Version), want $version"
deps=$(dpkg-deb -f "$deb" Depends)
for lib in librdkafka libsqlite3 libpaho-mqtt libmicrohttpd libsystemd libjansson libprotobuf-c adduser; do
  grep -q "$lib" <<<"$deps" || fail "Depends lacks $lib: $deps"
done
pass "built $(basename "$deb"); Depends from the shared libraries: $deps"

purge() { dpkg --purge lineagent >/dev/null 2>&1 || true; }
trap 'rc=$?; purge; (exit $rc); cleanup' EXIT
dpkg -i "$deb" >"$T/dpkg.log" 2>&1 || { cat "$T/dpkg.log"; fail "dpkg -i"; }
[ "$(/usr/bin/lineagent --version)" = "lineagent $version" ] || fail "lineagent --version: $(/usr/bin/lineagent --version)"
[ "$(/usr/bin/provisiond --version)" = "provisiond $version" ] || fail "provisiond --version"
/usr/bin/lineagent check-config -c /etc/lineagent/lineagent.conf >"$T/check.out" 2>&1 || { cat "$T/check.out"; fail "check-config on the installed example"; }
runuser -u lineagent -- /usr/bin/lineagent check-config -c /etc/lineagent/lineagent.conf >/dev/null 2>&1 \
  || fail "the lineagent user cannot read the installed config"
pass "installed: lineagent --version, provisiond --version, check-config (as root and as lineagent)"

id lineagent >/dev/null 2>&1 && id provisiond >/dev/null 2>&1 || fail "postinst did not create the users"
[ "$(stat -c '%a %U' /var/lib/lineagent)" = "700 lineagent" ] || fail "/var/lib/lineagent is $(stat -c '%a %U' /var/lib/lineagent)"
[ "$(stat -c '%a %U' /var/lib/provisiond)" = "700 provisiond" ] || fail "/var/lib/provisiond is $(stat -c '%a %U' /var/lib/provisiond)"
dpkg-query --showformat='${Conffiles}\n' --show lineagent | grep -q /etc/lineagent/lineagent.conf \
  || fail "/etc/lineagent/lineagent.conf is not a conffile"
for u in lineagent provisiond; do
  systemd-analyze verify "/lib/systemd/system/$u.service" >"$T/verify.out" 2>&1 || { cat "$T/verify.out"; fail "verify $u.service"; }
  [ -s "$T/verify.out" ] && { cat "$T/verify.out"; fail "systemd-analyze verify $u.service complained"; }
done
pass "postinst: users, /var/lib/lineagent 0700; conffiles; installed units pass systemd-analyze verify"

dpkg --purge lineagent >"$T/dpkg.log" 2>&1 || { cat "$T/dpkg.log"; fail "dpkg --purge"; }
[ ! -e /usr/bin/lineagent ] && [ ! -e /etc/lineagent/lineagent.conf ] && [ ! -e /var/lib/lineagent ] \
  || fail "purge left files behind"
pass "dpkg --purge removed binaries, configs and state"
