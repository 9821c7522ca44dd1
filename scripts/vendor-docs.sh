#!/bin/sh
# Rebuild static/vendor/swagger-ui and static/vendor/redoc from their npm distributions, so
# /docs and /redoc need no CDN (fleet hosts are often offline). Versions are pinned here;
# bump them, run this, and commit what changed.
set -eu
SWAGGER=swagger-ui-dist@5.35.0
REDOC=redoc@2.5.4
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm pack --silent "$SWAGGER" "$REDOC" >/dev/null
mkdir swagger redoc
tar -xzf swagger-ui-dist-*.tgz -C swagger --strip-components=1
tar -xzf redoc-*.tgz -C redoc --strip-components=1
S="$ROOT/static/vendor/swagger-ui" R="$ROOT/static/vendor/redoc"
rm -rf "$S" "$R"
mkdir -p "$S" "$R"
cp swagger/swagger-ui-bundle.js swagger/swagger-ui.css swagger/favicon-32x32.png \
   swagger/oauth2-redirect.html swagger/LICENSE swagger/NOTICE "$S/"
cp redoc/bundles/redoc.standalone.js redoc/LICENSE "$R/"
# ReDoc's sidebar draws its maker's logo from their CDN: an empty local image instead (the
# "API docs by Redocly" link stays).
sed -i 's#https://cdn.redoc.ly/redoc/logo-mini.svg#data:image/svg+xml,%3Csvg xmlns=%22http://www.w3.org/2000/svg%22/%3E#' \
  "$R/redoc.standalone.js"
! grep -q 'https://cdn\.' "$R/redoc.standalone.js" "$S/swagger-ui-bundle.js"
echo "$SWAGGER" >"$S/VERSION"
echo "$REDOC" >"$R/VERSION"
echo "vendored $SWAGGER and $REDOC into static/vendor/"
