#!/usr/bin/env bash
# Copy the console's JavaScript libraries from web/node_modules (pinned by web/package-lock.json)
# into src/smartpole/web/static/vendor/, with their licences. The copies are committed: nothing
# runs npm when smartpole serves the console. Run after changing web/package.json:
#   scripts/vendor-web.sh            (npm ci, then copy)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
web="$root/web"
out="$root/src/smartpole/web/static/vendor"
(cd "$web" && npm ci --no-audit --no-fund --silent)
# devDependencies (supercluster) are for bench/map_libraries.py only: not copied
mods="$web/node_modules"
version() { node -p "require('$mods/$1/package.json').version"; }

copy() {  # copy <package> <dest dir> <files...>
  local pkg="$1" dest="$out/$2"; shift 2
  rm -rf "$dest" && mkdir -p "$dest"
  for f in "$@"; do cp "$mods/$pkg/$f" "$dest/"; done
  cp "$mods/$pkg"/LICENSE* "$dest/"
  echo "$pkg $(version "$pkg")" > "$dest/VERSION"
}

copy uplot uplot dist/uPlot.iife.min.js dist/uPlot.min.css
copy leaflet leaflet dist/leaflet.js dist/leaflet.css
# the base map from a MapLibre style (only loaded when one is configured): the CSP build, whose
# worker is a file of this host rather than a blob, and its Leaflet binding
copy maplibre-gl maplibre-gl dist/maplibre-gl-csp.js dist/maplibre-gl-csp-worker.js dist/maplibre-gl.css
copy @maplibre/maplibre-gl-leaflet maplibre-gl-leaflet leaflet-maplibre-gl.js
echo "vendored into $out:"; cat "$out"/*/VERSION
