#!/usr/bin/env bash
# Refresh static/vendor/ from npm: the browser builds the chat page loads (no CDN at run time).
# Versions come from package.json / package-lock.json beside this script. Usage: bash vendor.sh
# (`npm install <pkg>@<version>` first to move a version, then run this and commit static/vendor/).
set -euo pipefail
cd "$(dirname "$0")"
# Install into a throw-away directory, so no node_modules is left inside the package.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp package.json package-lock.json "$work/"
(cd "$work" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
nm="$work/node_modules"
out=static/vendor
rm -rf "$out"
mkdir -p "$out"
cp "$nm"/marked/lib/marked.umd.js "$out/marked.js"
cp "$nm"/dompurify/dist/purify.min.js "$out/purify.min.js"
cp "$nm"/vega/build/vega.min.js "$out/vega.min.js"
cp "$nm"/vega-lite/build/vega-lite.min.js "$out/vega-lite.min.js"
cp "$nm"/vega-embed/build/vega-embed.min.js "$out/vega-embed.min.js"
# Swagger UI for the API's interactive docs at /api/v1/docs (FastAPI's default is a CDN).
cp "$nm"/swagger-ui-dist/swagger-ui-bundle.js "$out/swagger-ui-bundle.js"
cp "$nm"/swagger-ui-dist/swagger-ui.css "$out/swagger-ui.css"
sed -i '/^\/\/# sourceMappingURL=/d; s#/\*\# sourceMappingURL=[^*]*\*/##' "$out/swagger-ui-bundle.js" "$out/swagger-ui.css"
# vega-interpreter (the CSP-safe expression evaluator: no eval / new Function) ships only as an
# ES module importing vega-util; the vega UMD build exports those same functions, so wrap it as
# a classic script that reads them from window.vega and adds vega.expressionInterpreter.
node - "$nm/vega-interpreter/build/vega-interpreter.js" "$out/vega-interpreter.js" "$nm/vega-interpreter/package.json" <<'JS'
const fs = require("fs");
const [src, dest, pkgJson] = process.argv.slice(2);
let code = fs.readFileSync(src, "utf8").replace(/\/\/# sourceMappingURL=.*$/m, "");
const imp = /^import \{([^}]*)\} from 'vega-util';$/m;
const exp = /^export \{ expression as expressionInterpreter \};$/m;
if (!imp.test(code) || !exp.test(code)) throw new Error("vega-interpreter layout changed: update vendor.sh");
code = code.replace(imp, "const {$1} = globalThis.vega;")
           .replace(exp, "globalThis.vega.expressionInterpreter = expression;");
const version = JSON.parse(fs.readFileSync(pkgJson, "utf8")).version;
fs.writeFileSync(dest, `/* vega-interpreter ${version} (BSD-3-Clause), wrapped by vendor.sh */\n(function () {\n${code}\n})();\n`);
JS
# Licenses travel with the code.
for pkg in marked dompurify vega vega-lite vega-embed vega-interpreter swagger-ui-dist; do
  for f in LICENSE LICENSE.md; do
    [ -f "$nm/$pkg/$f" ] && cp "$nm/$pkg/$f" "$out/LICENSE.$pkg" && break
  done
done
node -e '
const lock = require("./package-lock.json").packages;
const names = ["marked","dompurify","vega","vega-lite","vega-embed","vega-interpreter","swagger-ui-dist"];
console.log(names.map(n => n + "@" + lock["node_modules/" + n].version).join("\n"));
' > "$out/VERSIONS"
echo "vendored into $out:"; cat "$out/VERSIONS"
