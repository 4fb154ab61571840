#!/bin/sh
# Bundles src/main.js into dist/workbench.js (one minified IIFE, no CDN, no sourcemap).
# Rebuild: cd assets/workbench && npm ci && npm run build
set -e
cd "$(dirname "$0")"
mkdir -p dist
./node_modules/.bin/esbuild src/main.js --bundle --minify --format=iife \
  --target=es2020 --legal-comments=none --outfile=dist/workbench.js
