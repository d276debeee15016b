#!/bin/sh
# Generate the systemd units of Procfile.prod into deploy/systemd/units (or the folder given), through
# honcho's export with the templates beside this script. Run it after changing Procfile.prod or a template;
# tests/ops/test_deploy_units.py fails while the committed units differ from what it generates.
#   APP (oms), APP_ROOT (/srv/oms) and APP_USER (oms) name the service, where the checkout and its .venv
#   live, and the user it runs as.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$here/units}
rm -rf "$out" && mkdir -p "$out"
# --env /dev/null: the units read /etc/APP/APP.env when they start, nothing of this machine's is baked in.
honcho export systemd --app "${APP:-oms}" --app-root "${APP_ROOT:-/srv/oms}" --user "${APP_USER:-oms}" \
  --procfile "$root/Procfile.prod" --env /dev/null --template-dir "$here/templates" "$out" 2>/dev/null
